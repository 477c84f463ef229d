"""Learning CartPole from pixels: a batched NumPy rasteriser of Gymnasium's scene (raster), the
views S1 and dqnlab crop from it (view), per-environment frame histories (frames), and the
vector env / wrapper that turn state observations into frame stacks (env)."""

from dqnlab.envs.pixels.env import PixelObservation, PixelVectorEnv
from dqnlab.envs.pixels.view import render_view

__all__ = ["PixelObservation", "PixelVectorEnv", "render_view"]
