"""What part of the screen a pixel observation shows, and drawing it from observations.

Both views take S1's rows, 40% to 80% of Gymnasium's 400-row screen (the cart and the pole; the
empty sky above and the floor below carry nothing). ``tutorial`` then takes S1's window of 60% of
the width centred on the cart, clamped at the screen's edges; ``track`` takes the whole width.
"""

from __future__ import annotations

import numpy as np

from dqnlab.config import PixelConfig
from dqnlab.envs.pixels import raster

TOP, BOTTOM = int(raster.SCREEN_H * 0.4), int(raster.SCREEN_H * 0.8)  # screen rows 160..320
TUTORIAL_VIEW_W = int(raster.SCREEN_W * 0.6)  # 360 screen columns


def tutorial_left(x: np.ndarray) -> np.ndarray:
    """S1's crop: the left screen column of a window of 360 columns around the cart. (N,) float64

    As in the tutorial, the cart's column is truncated to an integer and the window is clamped to
    the screen, so near an edge the cart is off centre (and the window stops following it)."""
    cart = raster.cart_column(x).astype(np.int64)  # the tutorial's int(...)
    half = TUTORIAL_VIEW_W // 2
    left = np.where(
        cart < half, 0, np.where(cart > raster.SCREEN_W - half, raster.SCREEN_W - TUTORIAL_VIEW_W, cart - half)
    )
    return left.astype(np.float64)


def render_view(cfg: PixelConfig, obs: np.ndarray) -> np.ndarray:
    """Frames (N, C, height, width) uint8 of CartPole observations `obs` (N, 4): the scene at
    each cart position obs[:, 0] and pole angle obs[:, 2], seen through `cfg`'s view."""
    obs = np.asarray(obs)
    x, theta = obs[:, 0], obs[:, 2]
    if cfg.mode == "tutorial":
        left, view_w = tutorial_left(x), TUTORIAL_VIEW_W
    elif cfg.mode == "track":
        left, view_w = np.zeros(len(x)), raster.SCREEN_W
    else:
        raise ValueError("pixel observations are off (env.pixels.mode 'off')")
    return raster.render(
        x, theta, left, TOP, view_w / cfg.width, (BOTTOM - TOP) / cfg.height, cfg.height, cfg.width, cfg.color
    )
