"""Experience replay: a preallocated ring buffer of transitions, sampled uniformly or in
proportion to priorities.

Sections: the ``Batch`` a sample returns; ``ReplayBuffer``, the uniform ring; prioritised replay
(``beta_at``, ``importance_weights``, ``SumTree``, ``PrioritizedReplayBuffer``).

Arrays, not a deque of tuples: adding a batch of transitions is one slice copy per field and
sampling is one tensor index per field. Only real transitions are stored: the training loop
drops the NEXT_STEP autoreset step of vector environments before calling ``add``.

Prioritised experience replay (Schaul et al. 2016, proportional variant): transition i is
sampled with probability P(i) = p_i / sum_k p_k, where p_i = (|delta_i| + eps)^alpha and delta_i
is its TD error at its last update; its loss is scaled by the importance weight
w_i = (N * P(i))^-beta / max_j w_j (j over the batch), which undoes the sampling bias as beta -> 1.
The priorities live in a sum tree (a binary tree whose every node holds the sum of its two
children), so that sampling by prefix sum and updating a priority both cost O(log capacity). All
tree operations act on a whole batch at once: one NumPy operation per tree level, never a Python
loop per sample.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    obs: torch.Tensor  # (B, *obs_shape) the buffer's dtype: float32, or uint8 frames (the network scales them)
    actions: torch.Tensor  # (B,) int64
    rewards: torch.Tensor  # (B,) float32
    next_obs: torch.Tensor  # (B, *obs_shape) as obs
    terminated: torch.Tensor  # (B,) float32, 1.0 where the episode ended in a terminal state
    discounts: torch.Tensor  # (B,) float32, gamma^k for a k-step transition (gamma for 1-step)
    weights: torch.Tensor | None = None  # (B,) float32 importance weights (prioritised replay only)
    indices: torch.Tensor | None = None  # (B,) int64 buffer slots, for update_priorities (prioritised only)


# ---------------------------------------------------------------------------------------------
# Uniform replay: the ring buffer
# ---------------------------------------------------------------------------------------------

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
        return Batch(
            self.obs[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_obs[idx],
            self.terminated[idx],
            self.discounts[idx],
        )

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


# ---------------------------------------------------------------------------------------------
# Prioritised replay
# ---------------------------------------------------------------------------------------------
# Sampled with probability P(i) = p_i / sum_k p_k from a sum tree; see the module docstring.


def beta_at(step: int, start: float, steps: int) -> float:
    """Importance-sampling exponent: `start` at step 0, linearly to 1 at `steps`, 1 after."""
    return start + min(1.0, step / steps) * (1.0 - start)


def importance_weights(probs: np.ndarray, n: int, beta: float) -> np.ndarray:
    """(n * P(i))^-beta for each sampled probability, divided by the batch's largest, so that
    weights only ever scale an update down (the paper's normalisation, for stability). (B,)"""
    w = (n * probs) ** -beta
    return w / w.max()


class SumTree:
    """Priorities of `capacity` slots in a complete binary tree stored as one float64 array.

    Node 1 is the root, node k has children 2k and 2k + 1, and the leaves (slot i at node
    ``leaf0 + i``) fill the last level; leaf0 is capacity rounded up to a power of two, and the
    padding leaves stay 0. Internal nodes are always recomputed as the sum of their children,
    never adjusted by differences, so no rounding error accumulates and a tree rebuilt from its
    leaves is bit-for-bit the same.
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("a sum tree needs capacity >= 1")
        self.capacity = int(capacity)
        self.leaf0 = 1 << (self.capacity - 1).bit_length()  # first leaf node, a power of two
        self.depth = self.leaf0.bit_length() - 1  # levels below the root
        self.nodes = np.zeros(2 * self.leaf0, dtype=np.float64)  # nodes[0] is unused

    @property
    def total(self) -> float:
        return float(self.nodes[1])

    def get(self, slots: np.ndarray) -> np.ndarray:
        return self.nodes[self.leaf0 + np.asarray(slots)]

    def leaves(self) -> np.ndarray:
        """A view of the `capacity` slot priorities."""
        return self.nodes[self.leaf0 : self.leaf0 + self.capacity]

    def set(self, slots: np.ndarray, priorities: np.ndarray) -> None:
        """Set the priority of each slot (a repeated slot must come with the same priority)."""
        node = self.leaf0 + np.asarray(slots, dtype=np.int64)
        self.nodes[node] = priorities
        nodes = self.nodes
        for _ in range(self.depth):  # walk every touched path up to the root, one level at a time
            node >>= 1
            left = node << 1
            nodes[node] = nodes.take(left) + nodes.take(left + 1)

    def rebuild(self) -> None:
        """Recompute every internal node from the leaves (after writing `leaves()` directly)."""
        lo = self.leaf0 >> 1
        while lo >= 1:  # level [lo, 2 lo) from level [2 lo, 4 lo)
            self.nodes[lo : 2 * lo] = self.nodes[2 * lo : 4 * lo : 2] + self.nodes[2 * lo + 1 : 4 * lo : 2]
            lo >>= 1

    def find(self, mass: np.ndarray) -> np.ndarray:
        """For each prefix mass u in [0, total), the slot i with prefix(i) <= u < prefix(i + 1),
        where prefix(i) is the sum of the priorities of slots 0..i-1. (B,) int64"""
        u = np.array(mass, dtype=np.float64)  # a copy: it is reduced in place on the way down
        node = np.ones(u.shape, dtype=np.int64)
        nodes = self.nodes
        for _ in range(self.depth):
            node <<= 1  # the left child
            left = nodes.take(node)
            right = u >= left  # the mass lies beyond the left subtree: go right, minus its sum
            u -= left * right
            node += right
        return node - self.leaf0


class PrioritizedReplayBuffer(ReplayBuffer):
    """A ReplayBuffer sampled in proportion to priorities, with importance weights.

    Same interface as ReplayBuffer; ``sample`` fills the batch's ``weights`` and ``indices``, and
    the caller passes the batch's new absolute TD errors to ``update_priorities``. ``beta`` (the
    importance-sampling exponent) is an attribute the caller sets before sampling, from
    ``beta_at``. New transitions get the largest priority seen so far, so each is replayed at
    least about as often as the currently most surprising one until its own TD error is known.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        alpha: float,
        eps: float,
        obs_dtype: torch.dtype = torch.float32,
    ):
        super().__init__(capacity, obs_shape, obs_dtype)
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.beta = 1.0
        self.tree = SumTree(self.capacity)
        self.max_priority = 1.0  # in tree units, (|delta| + eps)^alpha; never decreases

    def add(self, obs, actions, rewards, next_obs, terminated, discounts) -> None:
        n = min(len(actions), self.capacity)  # the buffer keeps only the newest `capacity`
        slots = (self.pos + np.arange(n)) % self.capacity
        super().add(obs, actions, rewards, next_obs, terminated, discounts)
        self.tree.set(slots, np.full(n, self.max_priority))

    def sample_indices(self, batch_size: int, generator: torch.Generator, sequential: bool = False) -> torch.Tensor:
        """Stratified proportional sampling: the total priority mass is cut into `batch_size`
        equal segments and one uniform draw is taken in each, which covers the distribution
        more evenly than independent draws and keeps P(i) exact. Draws come from `generator`,
        so its state alone (checkpointed by the training loop) fixes the samples."""
        if sequential:
            raise ValueError("prioritised replay cannot sample sequential slices")
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        r = torch.rand(batch_size, generator=generator, dtype=torch.float64).numpy()
        mass = (np.arange(batch_size) + r) * (self.tree.total / batch_size)  # (B,), one per segment
        # Rounding can push a draw past the last filled slot into the zero-priority padding.
        slots = np.minimum(self.tree.find(mass), self.size - 1)
        return torch.from_numpy(slots)

    def sample(self, batch_size: int, generator: torch.Generator, sequential: bool = False) -> Batch:
        idx = self.sample_indices(batch_size, generator, sequential)
        probs = self.tree.get(idx.numpy()) / self.tree.total
        weights = torch.from_numpy(importance_weights(probs, self.size, self.beta).astype(np.float32))
        return Batch(
            self.obs[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_obs[idx],
            self.terminated[idx],
            self.discounts[idx],
            weights,
            idx,
        )

    def update_priorities(self, indices: torch.Tensor, td_abs: torch.Tensor) -> None:
        """Set the priorities of sampled slots from their new absolute TD errors. (B,), (B,)"""
        p = (np.abs(np.asarray(td_abs, dtype=np.float64)) + self.eps) ** self.alpha
        if not np.isfinite(p).all():  # one NaN in the tree would corrupt every later sample
            raise ValueError("non-finite TD error given as a replay priority")
        self.tree.set(np.asarray(indices), p)
        self.max_priority = max(self.max_priority, float(p.max()))

    def priorities(self) -> np.ndarray:
        """Sampling weight p_i of each filled slot (a view). (size,)"""
        return self.tree.leaves()[: self.size]

    # -- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = super().state_dict()
        state["priorities"] = torch.from_numpy(self.priorities().copy())
        state["max_priority"] = self.max_priority
        state["beta"] = self.beta
        return state

    def load_state_dict(self, state: dict) -> None:
        if "priorities" not in state:
            raise ValueError("replay state has no priorities: it was saved without prioritised replay")
        super().load_state_dict(state)
        leaves = self.tree.leaves()
        leaves[:] = 0.0
        leaves[: self.size] = state["priorities"].numpy()
        self.tree.rebuild()
        self.max_priority = float(state["max_priority"])
        self.beta = float(state["beta"])
