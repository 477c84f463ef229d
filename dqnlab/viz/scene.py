"""CartPole frames for episode animations, drawn from the environment's state at the output size.

Gymnasium draws CartPole with pygame on a 600 x 400 screen, and an animation then shrinks every
frame (to 300 px for episode.gif): about 15 ms a frame, most of an artifact's cost. Here
dqnlab's own rasteriser (dqnlab.envs.pixels.raster, the one pixel observations use) draws the
same scene straight at the output size from (cart x, pole angle): each output pixel takes the
share of its window of the 600 x 400 screen that each shape covers, i.e. Gymnasium's frame
box-filtered down (tests/test_viz.py checks this against Gymnasium's frames).

Positions are drawn at about the precision pygame draws them: the cart at whole screen pixels
(pygame truncates its corners to integers) and the pole's tip at whole output pixels (at most
TIP_STEP screen pixels). Finer motion
would show as faint edge shimmer from frame to frame that the eye cannot follow but the GIF
must store (a third more bytes); at this precision a frame changes only when the picture does.

Only a window around the cart and pole is rasterised; the rest of a frame is the white background
and the track line, the same in every frame. For ``dqnlab/CartPoleTarget-v0`` the target's red
line is painted over the scene, as its render() does. Environments this module does not know
(anything but CartPole-v0/v1 and the target task, including their subclasses, which may draw
differently) keep Gymnasium's render().
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from dqnlab.envs.pixels import raster
from dqnlab.envs.target import TARGET_RGB, CartPoleTargetEnv, target_columns

TIP_STEP = 2.0  # screen pixels: the pole's tip moves in steps of at most this (and one output pixel)
CHUNK = 32  # frames rasterised at once: enough to amortise NumPy's per-call cost, little memory
_MARGIN = 1.0  # screen units around each shape's ideal outline (pygame draws about half a unit wider)


def can_draw(env: Any) -> bool:
    """Whether this module draws `env`'s frames (a single Gymnasium env, possibly wrapped): its
    unwrapped environment is Gymnasium's CartPoleEnv or dqnlab's CartPoleTargetEnv, with
    Gymnasium's screen (600 x 400, the track from -2.4 to 2.4 m)."""
    base = env.unwrapped
    if type(base) is CartPoleEnv:
        screen_ok = (base.screen_width, base.screen_height) == (raster.SCREEN_W, raster.SCREEN_H)
    elif type(base) is CartPoleTargetEnv:
        screen_ok = True  # it draws with a default CartPoleEnv
    else:
        return False
    return screen_ok and base.x_threshold == raster.X_THRESHOLD


def scene_state(env: Any) -> tuple[float, float, float]:
    """(cart x in m, pole angle in rad, target x in m or NaN) of `env` now (see ``can_draw``)."""
    base = env.unwrapped
    target = float(base.target) if isinstance(base, CartPoleTargetEnv) else math.nan
    return float(base.state[0]), float(base.state[2]), target


def pole_length(env: Any) -> float:
    """The pole's drawn length in screen units, as Gymnasium computes it (twice env.length)."""
    return raster.SCALE * 2 * float(env.unwrapped.length)


def draw_frames(states: np.ndarray, size: tuple[int, int], pole_len: float = raster.POLE_LEN) -> np.ndarray:
    """Frames (N, height, width, 3) uint8 of the scene in each row (x, theta, target) of `states`
    (N, 3) (see ``scene_state``), at `size` (width, height)."""
    width, height = size
    n = len(states)
    pw, ph = raster.SCREEN_W / width, raster.SCREEN_H / height  # screen units per output pixel
    # pygame's precision (see the module docstring): the cart's centre column as its truncated
    # corners place it, and the angle on the grid that moves the tip by one output pixel (or
    # TIP_STEP screen pixels, if less)
    x = (np.floor(raster.cart_column(states[:, 0])) + 0.5 - raster.SCREEN_W / 2) / raster.SCALE
    step = min(pw, TIP_STEP) / pole_len
    theta = np.round(states[:, 1] / step) * step
    background = _background(width, height, ph)
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    frames[:] = background
    for start in range(0, n, CHUNK):
        part = slice(start, start + CHUNK)
        _draw_windows(frames[part], x[part], theta[part], pw, ph, pole_len)
    for frame, target in zip(frames, states[:, 2], strict=True):
        if not math.isnan(target):
            _paint_target(frame, float(target), pw)
    return frames


def _background(width: int, height: int, ph: float) -> np.ndarray:
    """(height, width, 3) uint8: white with the track line, composited as in every window."""
    empty = np.zeros((1, height, 1), dtype=np.float32)
    cov = {"cart": empty, "pole": empty, "axle": empty, "track": raster.track_coverage(0.0, ph, height)}
    column = raster.composite(cov, color=True)[0].transpose(1, 2, 0)  # (height, 1, 3)
    return np.ascontiguousarray(np.broadcast_to(column, (height, width, 3)))


def _draw_windows(out: np.ndarray, x: np.ndarray, theta: np.ndarray, pw: float, ph: float, pole_len: float) -> None:
    """Rasterise the cart, pole and axle of each frame in `out` (n, H, W, 3) in place, in one
    window of the same size for all n frames: the box (in pixels, relative to each cart) holding
    every frame's pole, cart and axle, plus two pixels."""
    height, width = out.shape[1:3]
    # Pole corners relative to the pivot, in screen units (u right, s down), as Gymnasium places
    # them: corner c at pivot + R(-theta) c in drawing coordinates (y up).
    half = raster.POLE_W / 2 + _MARGIN
    top = pole_len - raster.POLE_W / 2 + _MARGIN
    lx = np.array([-half, -half, half, half])
    ly = np.array([-half, top, top, -half])
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]  # (n, 1)
    du = lx * cos + ly * sin  # (n, 4)
    ds = -(-lx * sin + ly * cos)
    cart_half_w, cart_half_h = raster.CART_W / 2 + _MARGIN, raster.CART_H / 2 + _MARGIN
    u_lo = min(float(du.min()), -cart_half_w) - 2 * pw  # relative to the cart's centre column
    u_hi = max(float(du.max()), cart_half_w) + 2 * pw
    pivot_s = raster.SCREEN_H - raster.AXLE_Y
    cart_s = raster.SCREEN_H - raster.CART_Y
    s_lo = min(pivot_s + float(ds.min()), cart_s - cart_half_h) - 2 * ph
    s_hi = max(pivot_s + float(ds.max()), cart_s + cart_half_h) + 2 * ph
    row0, row1 = max(0, math.floor(s_lo / ph)), min(height, math.ceil(s_hi / ph))
    win_w = math.ceil((u_hi - u_lo) / pw) + 1
    col0 = np.floor((raster.cart_column(x) + u_lo) / pw).astype(np.int64)  # (n,) each window's first column
    if row1 <= row0:
        return
    cov = raster.coverage(x, theta, col0 * pw, row0 * ph, pw, ph, row1 - row0, win_w, pole_len)
    windows = raster.composite(cov, color=True).transpose(0, 2, 3, 1)  # (n, rows, win_w, 3)
    for frame, window, c0 in zip(out, windows, col0.tolist(), strict=True):
        lo, hi = max(c0, 0), min(c0 + win_w, width)
        if lo < hi:
            frame[row0:row1, lo:hi] = window[:, lo - c0 : hi - c0]


def _paint_target(frame: np.ndarray, target: float, pw: float) -> None:
    """Paint the target task's line over `frame` (H, W, 3) in place: Gymnasium's screen columns
    [lo, hi) in TARGET_RGB, each output column covered by its share of them."""
    lo, hi = target_columns(target, raster.SCREEN_W)
    width = frame.shape[1]
    for col in range(max(0, math.floor(lo / pw)), min(width, math.ceil(hi / pw))):
        share = (min(hi, (col + 1) * pw) - max(lo, col * pw)) / pw
        if share > 0:
            column = frame[:, col].astype(np.float32)
            column += share * (np.asarray(TARGET_RGB, dtype=np.float32) - column)
            frame[:, col] = np.rint(column).astype(np.uint8)
