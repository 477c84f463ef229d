"""A NumPy rasteriser of Gymnasium's CartPole scene, batched over environments.

Gymnasium draws CartPole with pygame on a 600 x 400 surface (about 0.8 ms a frame, one
environment at a time) and a pixel agent then throws most of those pixels away by cropping and
downscaling. Here the same scene is drawn straight into the small frame the agent sees, for all
environments at once, as a pure function of (cart x, pole angle).

The scene, in Gymnasium's screen units (``CartPoleEnv.render``; y up before its final flip):
a white background, a black cart 50 x 30 centred at height 100, a pole 10 wide and
``2 * length * scale`` long pivoting 7.5 above the cart's centre, a circular axle of radius 5
and a one-pixel black track line at height 100, drawn in that order. Coordinates below are
*screen* coordinates after the flip: ``u`` columns left to right (0..600), ``s`` rows top to
bottom (0..400), so a drawing height ``y`` is the row ``400 - y``.

Each output pixel is a window of the screen (``pixel_w`` x ``pixel_h`` screen units) and takes the
share of that window each shape covers (area coverage, i.e. a box-filtered downscale), composited
in drawing order. Cart and track, axis-aligned, are covered exactly; the rotated pole and the
axle use a ramp of one pixel footprint across their edges (exact for an upright pole; tested to
agree with Gymnasium's frame downscaled by Pillow).
"""

from __future__ import annotations

import numpy as np

SCREEN_W, SCREEN_H = 600, 400
X_THRESHOLD = 2.4  # m: Gymnasium's CartPole shows the track from -2.4 to 2.4
SCALE = SCREEN_W / (2 * X_THRESHOLD)  # screen units per metre (125)
POLE_HALF_LENGTH = 0.5  # m: Gymnasium's `length` (half the pole)
POLE_W = 10.0
POLE_LEN = SCALE * 2 * POLE_HALF_LENGTH  # 125
CART_W, CART_H = 50.0, 30.0
CART_Y = 100.0  # drawing height of the cart's centre and of the track line
AXLE_Y = CART_Y + CART_H / 4.0  # the pole's pivot
AXLE_R = POLE_W / 2

# Colours (RGB) as Gymnasium draws them, and their grayscale value as Pillow's "L" conversion
# (ITU-R 601-2 luma) gives it, so a gray frame equals Pillow's conversion of a colour frame.
BACKGROUND = (255.0, 255.0, 255.0)
CART_RGB = (0.0, 0.0, 0.0)
POLE_RGB = (202.0, 152.0, 101.0)
AXLE_RGB = (129.0, 132.0, 203.0)
TRACK_RGB = (0.0, 0.0, 0.0)
_LUMA = np.array([0.299, 0.587, 0.114])
# pygame fills every pixel that a polygon's (truncated) vertices reach, both ends included, so its
# shapes come out about one screen pixel wider and taller than the ideal ones: half a pixel a side.
_GROW = 0.5


def cart_column(x: np.ndarray) -> np.ndarray:
    """Screen column of the cart's centre for cart positions `x` (m). (N,) float64"""
    return np.asarray(x, dtype=np.float64) * SCALE + SCREEN_W / 2.0


def _interval_coverage(
    centre: np.ndarray, half: float | np.floating | np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float
) -> np.ndarray:
    """Share of the window [centre - half, centre + half] that lies inside [lo, hi]."""
    overlap = np.minimum(centre + half, hi) - np.maximum(centre - half, lo)
    overlap *= 1 / (2 * half)
    return np.clip(overlap, 0, 1, out=overlap)


def coverage(
    x: np.ndarray,
    theta: np.ndarray,
    left: np.ndarray,
    top: float,
    pixel_w: float,
    pixel_h: float,
    height: int,
    width: int,
    pole_len: float = POLE_LEN,
) -> dict[str, np.ndarray]:
    """Per-shape area coverage in [0, 1] of each output pixel: {"cart", "pole", "axle"} of shape
    (N, height, width) and "track" of shape (1, height, 1).

    `x` and `theta` (N,) are the cart positions (m) and pole angles (rad, positive leaning right);
    `left` (N,) the screen column of each frame's left edge, `top` the screen row of the top edge;
    each output pixel spans `pixel_w` x `pixel_h` screen units. `pole_len` is the pole's drawn
    length (Gymnasium: ``SCALE * 2 * env.length``).
    """
    # float32 throughout: a frame needs no more, and the (N, H, W) temporaries dominate the cost.
    f32 = np.float32
    theta = np.asarray(theta, dtype=f32)
    cx = cart_column(x).astype(f32)[:, None, None]  # (N, 1, 1)
    # Pixel-centre coordinates: u (N, 1, W) per environment (crops may differ), s (1, H, 1).
    u = np.asarray(left, dtype=f32)[:, None, None] + ((np.arange(width, dtype=f32) + f32(0.5)) * f32(pixel_w))
    s = f32(top) + (np.arange(height, dtype=f32) + f32(0.5))[None, :, None] * f32(pixel_h)
    pw, ph = f32(pixel_w), f32(pixel_h)
    hu, hs = pw / f32(2), ph / f32(2)

    # Cart: an axis-aligned rectangle, so its coverage is a product of two interval overlaps.
    half_w, half_h = CART_W / 2 + _GROW, CART_H / 2 + _GROW
    cart_rows = _interval_coverage(s, hs, SCREEN_H - CART_Y - half_h, SCREEN_H - CART_Y + half_h)
    cart = _interval_coverage(u, hu, cx - half_w, cx + half_w) * cart_rows  # (N, H, W)

    # Pole: pixel centres in the pole's own frame (pivot at the origin, along +ly), where it is the
    # box |lx| <= 5, -5 <= ly <= len - 5. Gymnasium places a corner c at pivot + R(-theta) c.
    dx = u - cx  # (N, 1, W)
    dy = (SCREEN_H - AXLE_Y) - s  # (1, H, 1): drawing height above the pivot
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    lx = dx * cos - dy * sin
    ly = dx * sin + dy * cos
    # Half the pixel's extent along each pole axis (its projection; exact when upright).
    hx = (pw * np.abs(cos) + ph * np.abs(sin)) / f32(2)
    hy = (pw * np.abs(sin) + ph * np.abs(cos)) / f32(2)
    pole = _interval_coverage(lx, hx, -POLE_W / 2 - _GROW, POLE_W / 2 + _GROW) * _interval_coverage(
        ly, hy, -POLE_W / 2 - _GROW, pole_len - POLE_W / 2 + _GROW
    )

    # Axle: pygame's filled_circle at integer pixel (int(cx), int(AXLE_Y)), i.e. centred on that
    # pixel's middle; coverage ramps over one pixel footprint across the rim.
    ax = np.floor(cx) + f32(0.5)
    ay = f32(SCREEN_H - (np.floor(AXLE_Y) + 0.5))
    dist = np.sqrt(np.square(u - ax) + np.square(s - ay))
    foot = (pw + ph) / f32(2)
    axle = np.clip((f32(AXLE_R + _GROW) - dist) / foot + f32(0.5), 0, 1)

    return {"cart": cart, "pole": pole, "axle": axle, "track": track_coverage(top, pixel_h, height)}


def track_coverage(top: float, pixel_h: float, height: int) -> np.ndarray:
    """Coverage (1, height, 1) of the track line: pygame's hline at drawing height 100 fills pixel
    row 100, i.e. screen rows [299, 300]."""
    f32 = np.float32
    s = f32(top) + (np.arange(height, dtype=f32) + f32(0.5))[None, :, None] * f32(pixel_h)
    return _interval_coverage(s, f32(pixel_h) / f32(2), SCREEN_H - CART_Y - 1.0, SCREEN_H - CART_Y)


def composite(cov: dict[str, np.ndarray], color: bool) -> np.ndarray:
    """Paint the shapes over a white background in Gymnasium's drawing order.
    Returns (N, C, H, W) uint8 with C = 3 (RGB) or 1 (gray)."""
    layers = (("cart", CART_RGB), ("pole", POLE_RGB), ("axle", AXLE_RGB), ("track", TRACK_RGB))
    if color:
        colours: dict[str, np.ndarray | np.floating] = {
            name: np.asarray(rgb, dtype=np.float32)[None, :, None, None] for name, rgb in layers
        }  # (1, 3, 1, 1)
        img = np.full((1, 3, 1, 1), BACKGROUND[0], dtype=np.float32)
    else:
        colours = {name: np.float32(np.asarray(rgb) @ _LUMA) for name, rgb in layers}
        img = np.full((1, 1, 1, 1), BACKGROUND[0], dtype=np.float32)
    for name, _ in layers:
        c = cov[name][:, None]  # (N or 1, 1, H, W or 1)
        img = img + c * (colours[name] - img)  # "over" compositing, linear in intensity
    n = cov["cart"].shape[0]
    out = np.broadcast_to(img, (n, 3 if color else 1, *cov["cart"].shape[1:]))
    return np.rint(out).astype(np.uint8)


def render(
    x: np.ndarray,
    theta: np.ndarray,
    left: np.ndarray,
    top: float,
    pixel_w: float,
    pixel_h: float,
    height: int,
    width: int,
    color: bool,
    pole_len: float = POLE_LEN,
) -> np.ndarray:
    """Frames (N, C, height, width) uint8 of the scene for each (x, theta); see ``coverage``."""
    return composite(coverage(x, theta, left, top, pixel_w, pixel_h, height, width, pole_len), color)
