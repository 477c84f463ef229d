"""Experience replay: a preallocated ring buffer of transitions, sampled uniformly or in
proportion to priorities.

Sections: the ``Batch`` a sample returns; ``ReplayBuffer``, the uniform ring; frame replay
(``FrameReplayBuffer``: the uniform ring for pixel frame stacks, each frame stored once);
prioritised replay (``beta_at``, ``importance_weights``, ``SumTree``, ``PrioritizedReplayBuffer``).

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


def ring_indices(
    size: int, pos: int, capacity: int, batch_size: int, generator: torch.Generator, sequential: bool
) -> torch.Tensor:
    """Slots of a ring holding `size` transitions whose next write goes to `pos`: uniform with
    replacement, or one contiguous slice in insertion order. (batch_size,) or fewer, int64"""
    if size == 0:
        raise ValueError("cannot sample from an empty replay buffer")
    if not sequential:
        return torch.randint(0, size, (batch_size,), generator=generator)
    length = min(batch_size, size)
    oldest = pos if size == capacity else 0  # insertion order starts here
    start = int(torch.randint(0, size - length + 1, (1,), generator=generator))
    return (oldest + start + torch.arange(length)) % capacity


# NumPy's name of each dtype a replay column can have, for converting its incoming rows.
_NUMPY_DTYPE = {torch.float32: np.float32, torch.uint8: np.uint8, torch.int64: np.int64, torch.int32: np.int32}


def write_ring(columns: list[tuple[torch.Tensor, np.ndarray]], pos: int, capacity: int) -> int:
    """Write the n rows of each source into its ring column from slot `pos` on, wrapping at
    `capacity`; with n > capacity only the newest `capacity` rows (the others would be
    overwritten anyway). Returns the number of rows written. Each pair: (ring (capacity, ...),
    rows (n, ...), converted to the ring's dtype)."""
    n = len(columns[0][1])
    skip = max(0, n - capacity)
    n -= skip
    first = min(n, capacity - pos)  # slots before the wrap
    for ring, rows in columns:
        rows = np.asarray(rows[skip:] if skip else rows, dtype=_NUMPY_DTYPE[ring.dtype])
        if n == first:  # the common case on the per-step path: no wrap
            ring[pos : pos + n] = torch.from_numpy(rows)
        else:
            ring[pos : pos + first] = torch.from_numpy(rows[:first])
            ring[: n - first] = torch.from_numpy(rows[first:])
    return n


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
        if len(actions) == 0:
            return
        n = write_ring(
            [
                (self.obs, obs),
                (self.next_obs, next_obs),
                (self.actions, actions),
                (self.rewards, rewards),
                (self.terminated, terminated),
                (self.discounts, discounts),
            ],
            self.pos,
            self.capacity,
        )
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample_indices(self, batch_size: int, generator: torch.Generator, sequential: bool = False) -> torch.Tensor:
        """Uniform indices with replacement, or one contiguous slice in insertion order."""
        return ring_indices(self.size, self.pos, self.capacity, batch_size, generator, sequential)

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

    def observations(self, idx: torch.Tensor) -> torch.Tensor:
        """The stored obs of slots `idx`. (len(idx), *obs_shape)"""
        return self.obs[idx]

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
# Frame replay: pixel observations, each frame stored once
# ---------------------------------------------------------------------------------------------
# An observation from pixels is the stack of its environment's last K frames (FrameStack), so
# consecutive observations share K - 1 frames and a transition's next_obs shares frames with later
# transitions' obs: ReplayBuffer holds each frame up to 2 K times. FrameReplayBuffer holds a ring
# `pool` of single frames and, per transition, the pool slots of the K frames of obs and of
# next_obs; sampling gathers the frames back into stacks, bit for bit what ReplayBuffer returns.
#
# Unlike Dopamine's circular replay (stacks rebuilt from consecutive steps of one trajectory, with
# zero frames across episode starts) or SB3's optimize_memory_usage (next_obs read from slot i + 1,
# wrong across episode ends and at the ring's write position), nothing here depends on the order in
# which transitions arrive: n-step transitions of N environments arrive interleaved, flushed at
# episode ends with shorter horizons, and each keeps exactly the frames it was given.
#
# Why the pool never loses a frame a transition still uses (``frame_pool_size``): every vector step
# writes one frame per environment (its newest; an episode's restart stack is one frame repeated).
# A transition added at step u uses frames written at steps >= u - n - (K - 1) (its obs was
# observed at most n steps earlier, holding frames from K - 1 steps before that). Per environment
# at most one autoreset step follows each real step, so S steps hold at least (S - 1) / 2 real
# ones, and the n-step windows keep at most n - 1 of those pending: while S steps add fewer than
# `capacity` transitions, they write N S <= 2 (capacity - 1) + N (2 n - 1) frames, and the next
# step writes its N frames before its transitions evict any. So at most 2 (capacity - 1) +
# N (3 n + K) frames are written after a frame while a transition using it lives (N (n + K) of them
# up to the step that adds it), which the pool exceeds. It is the worst case, episodes of one
# step, where a transition's obs and next_obs share no frame with any other transition: 2 frames
# per transition are then the least any exact scheme can hold, so the pool is about half of the
# 2 K frames per transition of full stacks for K = 2 (a typical CartPole episode of L steps writes
# (L + 1) / L frames per transition). A runtime check (``last_use``) still refuses to overwrite a
# frame that a live transition uses, so a broken bound would fail loudly, never replay wrong frames.


UNUSED = -(2**62)
"""FrameReplayBuffer.last_use of a pool slot that no transition uses: older than any."""


def frame_pool_size(capacity: int, num_envs: int, frames: int, n_step: int) -> int:
    """Frames the pool of a FrameReplayBuffer holds: 2 per transition slot plus those in flight
    (see the derivation above), and N (K + 1) spare, room to convert a checkpoint written before
    frame replay (see ``convert_stacks``)."""
    return 2 * capacity + num_envs * (3 * n_step + 2 * frames + 1)


def exact_uint8(values: np.ndarray, what: str) -> np.ndarray:
    """`values` as uint8, refused unless every value is a whole number in 0..255 (release 0.1.0
    kept some frame stacks as float32: they convert exactly)."""
    values = np.asarray(values)
    if values.dtype == np.uint8:
        return values
    with np.errstate(invalid="ignore"):
        exact = (values >= 0) & (values <= 255) & (np.floor(values) == values)  # NaN: False
    if not exact.all():
        raise ValueError(f"{what} are not uint8 frames")
    return values.astype(np.uint8)


class FrameReplayBuffer:
    """The uniform ring of ReplayBuffer (same `pos`, `size`, sampling and Batch) for frame-stack
    observations, storing each frame once in a ring `pool` (see the section comment above).

    Observations enter as stacks through ``observe``, once per environment step, which stores
    their new frames and returns their pool slots (N, K) int32; transitions are added with those
    slots in place of obs and next_obs. ``sample`` returns the stacks themselves.
    """

    def __init__(self, capacity: int, frames: int, frame_shape: tuple[int, int, int], num_envs: int, n_step: int):
        self.capacity = int(capacity)
        self.frames = int(frames)  # K, frames per observation
        self.frame_shape = tuple(frame_shape)  # (C, H, W)
        c, h, w = self.frame_shape
        self.obs_shape = (self.frames * c, h, w)
        self.num_envs, self.n_step = int(num_envs), int(n_step)
        self.pool_size = frame_pool_size(self.capacity, self.num_envs, self.frames, self.n_step)
        self.pool = torch.zeros((self.pool_size, c, h, w), dtype=torch.uint8)
        self.written = 0  # frames written so far; the next goes to slot written % pool_size
        # The number of the newest transition using each pool slot (transitions are numbered from
        # 0 in the order added; UNUSED: none). Transition t is live while t >= added - capacity.
        self.last_use = np.full(self.pool_size, UNUSED, dtype=np.int64)
        self.added = 0  # transitions added so far
        self.obs_ids = torch.zeros((self.capacity, self.frames), dtype=torch.int32)  # pool slots of obs
        self.next_ids = torch.zeros((self.capacity, self.frames), dtype=torch.int32)  # and of next_obs
        self.actions = torch.zeros(self.capacity, dtype=torch.int64)
        self.rewards = torch.zeros(self.capacity, dtype=torch.float32)
        self.terminated = torch.zeros(self.capacity, dtype=torch.float32)
        self.discounts = torch.zeros(self.capacity, dtype=torch.float32)
        self.pos = 0
        self.size = 0
        self.converting: dict[int, int] | None = None  # during a conversion: a frame's hash -> its newest number
        self.first_frame = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return self.size

    # -- frames ----------------------------------------------------------------------------------
    def _write(self, frames: np.ndarray) -> np.ndarray:
        """Store frames (m, C, H, W) in the next m pool slots; return the slots. (m,) int32"""
        m = len(frames)
        slots = (self.written + np.arange(m)) % self.pool_size
        if (self.last_use[slots] >= self.added - self.capacity).any():
            raise RuntimeError("frame replay: a frame that a stored transition uses would be overwritten")
        self.pool.numpy()[slots] = frames  # a NumPy view of the pool: cheaper than torch's index_put
        self.last_use[slots] = UNUSED
        self.written += m
        return slots.astype(np.int32)

    def observe(self, stacks: np.ndarray, prev: np.ndarray | None, continued: np.ndarray | None) -> np.ndarray:
        """Store the new frames of one observation per environment; return each observation's
        pool slots. (N, K * C, H, W) uint8 -> (N, K) int32

        Where `continued` (the environment took a real step from the observation whose slots are
        `prev`, (N, K)), the stack must be that one pushed by one frame, as FrameStack does: only
        its newest frame is stored (anything else is refused: these are not frame stacks).
        Elsewhere (a first observation, an episode's restart), each frame is stored unless it
        equals the one before it in the stack: a restart repeats its first frame K times, stored once.
        """
        n, k = len(stacks), self.frames
        frames = np.asarray(stacks).reshape(n, k, *self.frame_shape)  # (N, K, C, H, W)
        ids = np.empty((n, k), dtype=np.int32)
        go_on = np.zeros(n, dtype=bool) if continued is None or prev is None else np.asarray(continued, dtype=bool)
        rows = np.flatnonzero(go_on)
        if len(rows):
            assert prev is not None
            kept = prev[rows, 1:]  # (r, K - 1): the slots that move down one place
            if not np.array_equal(self.pool.numpy()[kept], frames[rows, :-1]):
                raise ValueError("frame replay: an observation is not the previous one pushed by one frame")
            ids[rows, :-1] = kept
            ids[rows, -1] = self._write(frames[rows, -1])
        for i in np.flatnonzero(~go_on):
            for j in range(k):
                if j and np.array_equal(frames[i, j], frames[i, j - 1]):
                    ids[i, j] = ids[i, j - 1]
                else:
                    ids[i, j] = self._write(frames[i, j][None])[0]
        return ids

    def check_slots(self, ids: np.ndarray, what: str) -> None:
        """Refuse pool slots (from a checkpoint) that hold no frame."""
        ids = np.asarray(ids)
        if ids.size and not 0 <= int(ids.min()) <= int(ids.max()) < min(self.written, self.pool_size):
            raise ValueError(f"{what}: frame slots out of range")

    def stacks(self, ids: torch.Tensor) -> torch.Tensor:
        """The observations whose frames are at pool slots `ids`. (B, K) -> (B, K * C, H, W) uint8"""
        return self.pool.index_select(0, ids.reshape(-1)).view(len(ids), *self.obs_shape)

    # -- transitions -----------------------------------------------------------------------------
    def add(
        self,
        obs_ids: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_ids: np.ndarray,
        terminated: np.ndarray,
        discounts: np.ndarray,
    ) -> None:
        """Append n transitions (leading axis n) whose observations are given by their pool slots
        (from ``observe``), overwriting the oldest once full."""
        n = len(actions)
        if n == 0:
            return
        obs_ids, next_ids = np.asarray(obs_ids, dtype=np.int32), np.asarray(next_ids, dtype=np.int32)
        # Transition added + i uses these slots (np.maximum.at: a slot used twice keeps the newest).
        numbers = np.repeat(self.added + np.arange(n), self.frames)
        np.maximum.at(self.last_use, obs_ids.reshape(-1), numbers)
        np.maximum.at(self.last_use, next_ids.reshape(-1), numbers)
        self.added += n
        n = write_ring(
            [
                (self.obs_ids, obs_ids),
                (self.next_ids, next_ids),
                (self.actions, actions),
                (self.rewards, rewards),
                (self.terminated, terminated),
                (self.discounts, discounts),
            ],
            self.pos,
            self.capacity,
        )
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample_indices(self, batch_size: int, generator: torch.Generator, sequential: bool = False) -> torch.Tensor:
        """Uniform indices with replacement, or one contiguous slice in insertion order (as ReplayBuffer)."""
        return ring_indices(self.size, self.pos, self.capacity, batch_size, generator, sequential)

    def sample(self, batch_size: int, generator: torch.Generator, sequential: bool = False) -> Batch:
        idx = self.sample_indices(batch_size, generator, sequential)
        return Batch(
            self.stacks(self.obs_ids[idx]),
            self.actions[idx],
            self.rewards[idx],
            self.stacks(self.next_ids[idx]),
            self.terminated[idx],
            self.discounts[idx],
        )

    def observations(self, idx: torch.Tensor) -> torch.Tensor:
        """The stored obs of slots `idx`. (len(idx), K * C, H, W) uint8"""
        return self.stacks(self.obs_ids[idx])

    def _live_ids(self) -> np.ndarray:
        """The pool slots of the stored transitions, oldest first. (size, 2, K) int32"""
        oldest = self.pos if self.size == self.capacity else 0
        order = torch.from_numpy((oldest + np.arange(self.size)) % self.capacity)
        return torch.stack([self.obs_ids[order], self.next_ids[order]], dim=1).numpy()

    # -- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        n = self.size
        return {
            "capacity": self.capacity,
            "pos": self.pos,
            "size": n,
            "pool_size": self.pool_size,
            "pool": self.pool[: min(self.written, self.pool_size)].clone(),
            "written": self.written,
            "added": self.added,
            "obs_ids": self.obs_ids[:n].clone(),
            "next_ids": self.next_ids[:n].clone(),
            "actions": self.actions[:n].clone(),
            "rewards": self.rewards[:n].clone(),
            "terminated": self.terminated[:n].clone(),
            "discounts": self.discounts[:n].clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Load a state of this class, or convert one of ReplayBuffer (full frame stacks, as every
        release up to 0.1.x wrote them for pixels)."""
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"replay capacity {state['capacity']} != {self.capacity}")
        n, pos = int(state["size"]), int(state["pos"])
        # A damaged or crafted checkpoint must not leave a write position outside the ring.
        if not 0 <= n <= self.capacity or not 0 <= pos < self.capacity or (n < self.capacity and pos != n):
            raise ValueError(f"replay size {n} and position {pos} do not fit a ring of {self.capacity}")
        if "obs" in state:
            self._convert_stacks(state, n, pos)
            return
        written, held = int(state["written"]), len(state["pool"])
        if int(state["pool_size"]) != self.pool_size:  # slots are frame numbers modulo the pool size
            raise ValueError(f"frame pool of {state['pool_size']} slots != {self.pool_size}")
        if held != min(written, self.pool_size) or tuple(state["pool"].shape[1:]) != self.frame_shape:
            raise ValueError(f"frame pool of {held} frames, {written} written, does not fit {self.pool_size} slots")
        ids = (state["obs_ids"], state["next_ids"])
        if any(tuple(t.shape) != (n, self.frames) or (n and not 0 <= int(t.min()) <= int(t.max()) < held) for t in ids):
            raise ValueError("replay frame slots out of range")
        self.pool[:held] = state["pool"]
        self.written, self.added = written, int(state["added"])
        self.obs_ids[:n], self.next_ids[:n] = ids
        for name in ("actions", "rewards", "terminated", "discounts"):
            getattr(self, name)[:n] = state[name]
        self.pos, self.size = pos, n
        # The newest transition using each slot, as add recorded it (slots of evicted ones need none).
        self.last_use[:] = UNUSED
        live = self._live_ids().reshape(n, -1)
        np.maximum.at(self.last_use, live.reshape(-1), np.repeat(self.added - n + np.arange(n), 2 * self.frames))

    # -- converting full stacks -----------------------------------------------------------------
    # A checkpoint written before frame replay holds ReplayBuffer's state (full stacks), and the
    # training loop's n-step windows and current observations as stacks too. ``load_state_dict``
    # starts a conversion, the loop converts its stacks with ``convert_stacks`` and ends it with
    # ``finish_conversion``. Frames are shared with any equal frame stored a moment before (the
    # same frame in a neighbouring transition), found by a hash of their bytes.

    def _convert_stacks(self, state: dict, n: int, pos: int) -> None:
        for name in ("actions", "rewards", "terminated", "discounts"):
            getattr(self, name)[:n] = state[name]
        self.pos, self.size = pos, n
        self.written, self.added = 0, n
        self.last_use[:] = UNUSED
        self.converting = {}
        oldest = pos if n == self.capacity else 0
        self.first_frame = np.zeros(n, dtype=np.int64)  # per transition, oldest first: its oldest frame's number
        for t in range(n):  # transition t (numbered from 0, oldest first) is in ring slot `slot`
            slot = (oldest + t) % self.capacity
            obs = self.convert_stacks(state["obs"][slot : slot + 1].numpy())
            next_obs = self.convert_stacks(state["next_obs"][slot : slot + 1].numpy())
            self.obs_ids[slot], self.next_ids[slot] = torch.from_numpy(obs[0]), torch.from_numpy(next_obs[0])
            used = np.concatenate([obs[0], next_obs[0]])
            np.maximum.at(self.last_use, used, t)
            self.first_frame[t] = min(self._number(used))

    def _number(self, slots: np.ndarray) -> np.ndarray:
        """The frame numbers (0 for the first written) of frames now in pool `slots`."""
        newest = self.written - 1
        return newest - (newest - slots) % self.pool_size

    def convert_stacks(self, stacks: np.ndarray) -> np.ndarray:
        """Pool slots of full stacks (m, K * C, H, W), storing the frames not stored a moment
        before, during a conversion. (m, K) int32"""
        assert self.converting is not None, "convert_stacks outside a conversion"
        m, k = len(stacks), self.frames
        frames = exact_uint8(stacks, "replay observations").reshape(m, k, *self.frame_shape)
        pool = self.pool.numpy()
        window = 4 * self.num_envs * (self.n_step + k)  # "a moment before", in frames written
        ids = np.empty((m, k), dtype=np.int32)
        for i in range(m):
            for j in range(k):
                key = hash(frames[i, j].tobytes())
                g = self.converting.get(key)
                if g is None or g < self.written - window or not np.array_equal(pool[g % self.pool_size], frames[i, j]):
                    try:
                        self._write(frames[i, j][None])
                    except RuntimeError:  # a converted transition's frame would be overwritten
                        raise ValueError(TOO_FEW_SHARED) from None
                    g = self.written - 1
                    self.converting[key] = g
                ids[i, j] = g % self.pool_size
        return ids

    def finish_conversion(self) -> None:
        """End a conversion: refuse, with one line, a replay whose frames the pool could lose while
        their transitions live (never for the stacks a FrameStack produces)."""
        self.converting = None
        # From the next environment step on, at most 2 (capacity - n + t) + 2 N n frames are written
        # while transition t lives (the bound derived above); all must fit after its oldest frame.
        n = self.size
        ahead = self.written - 1 - self.first_frame + 2 * (self.capacity - n + np.arange(n))
        if n and (ahead + 2 * self.num_envs * self.n_step >= self.pool_size).any():
            raise ValueError(TOO_FEW_SHARED)


TOO_FEW_SHARED = (
    "replay of full frame stacks (written before frame replay) shares too few frames to convert; start a new run"
)


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
