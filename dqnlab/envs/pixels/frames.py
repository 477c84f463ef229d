"""The frame history of N environments: the last K frames of each, restarted at episode starts."""

from __future__ import annotations

import numpy as np
import torch


class FrameStack:
    """Preallocated (N, K, C, H, W) uint8 ring of the last K frames per environment, oldest first.

    ``observation()`` is a fresh (N, K * C, H, W) array: callers keep observations (the training
    loop holds obs and next_obs of a transition at once), so the history must not alias them.
    """

    def __init__(self, num_envs: int, frames: int, frame_shape: tuple[int, int, int]):
        self.frames = frames
        self.buf = np.zeros((num_envs, frames, *frame_shape), dtype=np.uint8)

    def restart(self, frames: np.ndarray, which: np.ndarray | None = None) -> None:
        """Fill the whole history of the environments `which` (all if None) with their first frame
        `frames` (n, C, H, W): a new episode has no earlier frames to show."""
        if which is None:
            self.buf[:] = frames[:, None]
        else:
            self.buf[which] = frames[:, None]

    def push(self, frames: np.ndarray) -> None:
        """Append one frame (N, C, H, W) per environment, dropping each oldest one."""
        self.buf[:, :-1] = self.buf[:, 1:]
        self.buf[:, -1] = frames

    def observation(self) -> np.ndarray:
        n, k, c, h, w = self.buf.shape
        return self.buf.reshape(n, k * c, h, w).copy()

    def state_dict(self) -> dict:
        return {"buf": torch.from_numpy(self.buf.copy())}

    def load_state_dict(self, state: dict) -> None:
        self.buf[:] = state["buf"].numpy()
