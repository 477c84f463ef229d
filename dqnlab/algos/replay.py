"""Experience replay: a preallocated ring buffer of transitions.

Arrays, not a deque of tuples: adding a batch of transitions is one slice copy per field and
sampling is one tensor index per field. Only real transitions are stored: the training loop
drops the NEXT_STEP autoreset step of vector environments before calling ``add``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    obs: torch.Tensor  # (B, *obs_shape) float32
    actions: torch.Tensor  # (B,) int64
    rewards: torch.Tensor  # (B,) float32
    next_obs: torch.Tensor  # (B, *obs_shape) float32
    terminated: torch.Tensor  # (B,) float32, 1.0 where the episode ended in a terminal state
    discounts: torch.Tensor  # (B,) float32, gamma^k for a k-step transition (gamma for 1-step)
    weights: torch.Tensor | None = None  # (B,) float32 importance weights (prioritised replay only)
    indices: torch.Tensor | None = None  # (B,) int64 buffer slots, for update_priorities (prioritised only)


_FIELDS = ("obs", "next_obs", "actions", "rewards", "terminated", "discounts")


class ReplayBuffer:
    """Ring buffer with `pos` (next slot to write) and `size` (filled slots, <= capacity).

    ``terminated`` is stored apart from time-limit truncation: a truncated transition keeps
    terminated = 0, so its TD target bootstraps from the next observation.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: torch.dtype = torch.float32):
        self.capacity = int(capacity)
        self.obs_shape = tuple(obs_shape)
        self.obs = torch.zeros((self.capacity, *self.obs_shape), dtype=obs_dtype)
        self.next_obs = torch.zeros((self.capacity, *self.obs_shape), dtype=obs_dtype)
        self.actions = torch.zeros(self.capacity, dtype=torch.int64)
        self.rewards = torch.zeros(self.capacity, dtype=torch.float32)
        self.terminated = torch.zeros(self.capacity, dtype=torch.float32)
        self.discounts = torch.zeros(self.capacity, dtype=torch.float32)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        discounts: np.ndarray,
    ) -> None:
        """Append n transitions (leading axis n), overwriting the oldest once full."""
        n = len(actions)
        if n == 0:
            return
        if n > self.capacity:  # only the newest `capacity` survive anyway
            obs, actions, rewards = obs[-self.capacity :], actions[-self.capacity :], rewards[-self.capacity :]
            next_obs, terminated = next_obs[-self.capacity :], terminated[-self.capacity :]
            discounts = discounts[-self.capacity :]
            n = self.capacity
        first = min(n, self.capacity - self.pos)  # slots before the wrap
        for lo, hi, dst in ((0, first, self.pos), (first, n, 0)):
            if hi <= lo:
                continue
            sl = slice(dst, dst + hi - lo)
            self.obs[sl] = torch.from_numpy(np.asarray(obs[lo:hi]))
            self.next_obs[sl] = torch.from_numpy(np.asarray(next_obs[lo:hi]))
            self.actions[sl] = torch.from_numpy(np.asarray(actions[lo:hi], dtype=np.int64))
            self.rewards[sl] = torch.from_numpy(np.asarray(rewards[lo:hi], dtype=np.float32))
            self.terminated[sl] = torch.from_numpy(np.asarray(terminated[lo:hi], dtype=np.float32))
            self.discounts[sl] = torch.from_numpy(np.asarray(discounts[lo:hi], dtype=np.float32))
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample_indices(self, batch_size: int, generator: torch.Generator, sequential: bool = False) -> torch.Tensor:
        """Uniform indices with replacement, or one contiguous slice in insertion order."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        if not sequential:
            return torch.randint(0, self.size, (batch_size,), generator=generator)
        length = min(batch_size, self.size)
        oldest = self.pos if self.size == self.capacity else 0  # insertion order starts here
        start = int(torch.randint(0, self.size - length + 1, (1,), generator=generator))
        return (oldest + start + torch.arange(length)) % self.capacity

    def sample(self, batch_size: int, generator: torch.Generator, sequential: bool = False) -> Batch:
        idx = self.sample_indices(batch_size, generator, sequential)
        return Batch(self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.terminated[idx],
                     self.discounts[idx])

    # -- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        n = self.size
        return {
            "capacity": self.capacity,
            "pos": self.pos,
            "size": n,
            "obs": self.obs[:n].clone(),
            "next_obs": self.next_obs[:n].clone(),
            "actions": self.actions[:n].clone(),
            "rewards": self.rewards[:n].clone(),
            "terminated": self.terminated[:n].clone(),
            "discounts": self.discounts[:n].clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"replay capacity {state['capacity']} != {self.capacity}")
        n, pos = int(state["size"]), int(state["pos"])
        # A damaged or crafted checkpoint must not leave a write position outside the ring.
        if not 0 <= n <= self.capacity or not 0 <= pos < self.capacity or (n < self.capacity and pos != n):
            raise ValueError(f"replay size {n} and position {pos} do not fit a ring of {self.capacity}")
        for name in _FIELDS:
            getattr(self, name)[:n] = state[name]
        self.pos, self.size = pos, n
