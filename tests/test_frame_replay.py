"""FrameReplayBuffer (pixels, each frame stored once) against ReplayBuffer (full stacks), the
reference: the same stream of transitions gives the same stored observations and the same
samples, slot for slot; plus hand-checked edge cases, checkpoints and conversion."""

import io

import numpy as np
import pytest
import torch

from dqnlab.algos.dqn import NStepCollector
from dqnlab.algos.replay import TOO_FEW_SHARED, FrameReplayBuffer, ReplayBuffer, frame_pool_size
from dqnlab.envs.pixels.frames import FrameStack

FRAME = (1, 2, 3)  # (C, H, W): tiny frames, so that equal frames (a still scene) are common


class Stream:
    """N environments producing FrameStack observations with NEXT_STEP autoreset, as
    PixelVectorEnv does: random frames from a small alphabet (equal frames happen, also in a
    row), episodes ended at random by termination or truncation (one-step episodes included)."""

    def __init__(self, num_envs, frames, seed, p_end=0.2, values=3):
        self.rng = np.random.default_rng(seed)
        self.n, self.p_end, self.values = num_envs, p_end, values
        self.history = FrameStack(num_envs, frames, FRAME)
        self.history.restart(self._frames())
        self.ended = np.zeros(num_envs, dtype=bool)

    def _frames(self):
        return self.rng.integers(0, self.values, size=(self.n, *FRAME), dtype=np.uint8)

    def obs(self):
        return self.history.observation()

    def step(self):
        """(valid, next_obs, actions, rewards, terminated, truncated) of one vector step."""
        frames = self._frames()
        self.history.push(frames)
        valid = ~self.ended
        if self.ended.any():
            which = np.flatnonzero(self.ended)
            self.history.restart(frames[which], which)
        end = (self.rng.random(self.n) < self.p_end) & valid
        terminated = end & (self.rng.random(self.n) < 0.5)
        truncated = end & ~terminated
        self.ended = terminated | truncated
        actions = self.rng.integers(0, 2, self.n)
        rewards = self.rng.normal(size=self.n).astype(np.float32)
        return valid, self.history.observation(), actions, rewards, terminated, truncated


class Pair:
    """The reference (ReplayBuffer of stacks) and FrameReplayBuffer fed as DQNLoop feeds them."""

    def __init__(self, capacity, num_envs, frames, n_step, gamma=0.9):
        obs_shape = (frames * FRAME[0], *FRAME[1:])
        self.ref = ReplayBuffer(capacity, obs_shape, torch.uint8)
        self.new = FrameReplayBuffer(capacity, frames, FRAME, num_envs, n_step)
        self.gammas = np.full(num_envs, gamma, dtype=np.float32)
        self.ref_nstep = self.new_nstep = None
        if n_step > 1:
            self.ref_nstep = NStepCollector(n_step, gamma, num_envs, obs_shape, np.uint8)
            self.new_nstep = NStepCollector(n_step, gamma, num_envs, (frames,), np.int32)
        self.obs = None
        self.ids = None

    def start(self, obs):
        self.obs, self.ids = obs, self.new.observe(obs, None, None)

    def step(self, valid, next_obs, actions, rewards, terminated, truncated):
        next_ids = self.new.observe(next_obs, self.ids, valid)
        for buf, nstep, o, n in (
            (self.ref, self.ref_nstep, self.obs, next_obs),
            (self.new, self.new_nstep, self.ids, next_ids),
        ):
            v = valid  # the NEXT_STEP autoreset step is no transition
            if not v.any():
                continue
            if nstep is None:
                buf.add(o[v], actions[v], rewards[v], n[v], terminated[v], self.gammas[: int(v.sum())])
                continue
            out = nstep.push(np.flatnonzero(v), o[v], actions[v], rewards[v], n[v], terminated[v], truncated[v])
            if out is not None:
                buf.add(*out)
        self.obs, self.ids = next_obs, next_ids

    def assert_same(self, seed):
        ref, new = self.ref, self.new
        assert (ref.size, ref.pos) == (new.size, new.pos)
        slots = torch.arange(ref.size)
        assert torch.equal(new.observations(slots), ref.obs[slots])
        assert torch.equal(new.stacks(new.next_ids[slots]), ref.next_obs[slots])
        for name in ("actions", "rewards", "terminated", "discounts"):
            assert torch.equal(getattr(new, name), getattr(ref, name))
        for sequential in (False, True):
            a = ref.sample(16, torch.Generator().manual_seed(seed), sequential)
            b = new.sample(16, torch.Generator().manual_seed(seed), sequential)
            for x, y in zip(a, b, strict=True):
                assert (x is None and y is None) or (x.dtype == y.dtype and torch.equal(x, y))


def run_pair(pair, stream, steps):
    pair.start(stream.obs())
    for t in range(steps):
        pair.step(*stream.step())
        if pair.ref.size:
            pair.assert_same(t)


@pytest.mark.parametrize(
    ("num_envs", "frames", "n_step", "p_end"),
    [(4, 2, 3, 0.2), (3, 3, 3, 0.1), (5, 2, 1, 0.2), (2, 1, 2, 0.3), (4, 2, 3, 1.0)],
)
def test_same_stored_observations_and_samples_as_full_stacks(num_envs, frames, n_step, p_end):
    """Several envs, terminated and truncated episode ends (p_end 1: every episode one step,
    the case that needs the most frames), n-step flushes, many wraps of a small ring."""
    pair = Pair(37, num_envs, frames, n_step)
    stream = Stream(num_envs, frames, seed=num_envs * 10 + frames, p_end=p_end)
    run_pair(pair, stream, 300)
    assert pair.new.added > 4 * pair.new.capacity  # the ring wrapped
    assert pair.new.written > 2 * pair.new.pool_size  # and so did the pool


def test_pixels_preset_sizes_at_a_small_scale():
    """The pixels preset's shape of stream (8 envs, K 2, n 3) and a ring of 64."""
    pair = Pair(64, 8, 2, 3)
    run_pair(pair, Stream(8, 2, seed=3, p_end=0.05, values=4), 200)


def test_restart_stores_one_frame_and_a_step_one_frame_by_hand():
    buf = FrameReplayBuffer(4, 2, FRAME, 2, 1)
    a, b, c, d = (np.full(FRAME, v, dtype=np.uint8) for v in (1, 2, 3, 4))
    first = np.stack([np.concatenate([a, a]), np.concatenate([b, b])])  # (2, 2, 2, 3): two restarts
    ids = buf.observe(first, None, None)
    assert ids.tolist() == [[0, 0], [1, 1]] and buf.written == 2
    # env 0 steps (frame c pushed), env 1 restarts with frame d
    nxt = np.stack([np.concatenate([a, c]), np.concatenate([d, d])])
    ids2 = buf.observe(nxt, ids, np.array([True, False]))
    assert ids2.tolist() == [[0, 2], [3, 3]] and buf.written == 4
    buf.add(ids[:1], np.array([1]), np.array([0.5]), ids2[:1], np.array([False]), np.array([0.9]))
    batch = buf.sample(1, torch.Generator().manual_seed(0))
    assert torch.equal(batch.obs[0], torch.from_numpy(first[0]))
    assert torch.equal(batch.next_obs[0], torch.from_numpy(nxt[0]))
    assert batch.obs.shape == (1, 2, 2, 3) and batch.obs.dtype == torch.uint8 and batch.obs.is_contiguous()
    # A stack that is not the previous one pushed by one frame is refused.
    with pytest.raises(ValueError, match="not the previous one pushed"):
        buf.observe(np.stack([np.concatenate([b, d]), np.concatenate([d, d])]), ids2, np.array([True, True]))


def test_a_frame_a_live_transition_uses_is_never_overwritten():
    buf = FrameReplayBuffer(2, 1, FRAME, 1, 1)  # a pool of 2 * 2 + 1 * (3 + 2 + 1) = 10 frames
    assert buf.pool_size == frame_pool_size(2, 1, 1, 1) == 10
    frame = np.zeros((1, *FRAME), dtype=np.uint8)
    ids = buf.observe(frame, None, None)
    buf.add(ids, np.array([0]), np.array([0.0]), ids, np.array([False]), np.array([1.0]))
    for _ in range(9):
        buf.observe(frame, None, None)
    with pytest.raises(RuntimeError, match="would be overwritten"):
        buf.observe(frame, None, None)
    # Once its transition is evicted (two newer ones), the slot may be reused.
    for _ in range(2):
        buf.add(np.array([[5]]), np.array([0]), np.array([0.0]), np.array([[5]]), np.array([False]), np.array([1.0]))
    buf.observe(frame, None, None)


def _round_trip(state):
    f = io.BytesIO()
    torch.save(state, f)
    f.seek(0)
    return torch.load(f, weights_only=True)


def test_checkpoint_round_trip_is_exact_and_continues_identically():
    pair = Pair(37, 4, 2, 3)
    stream = Stream(4, 2, seed=7)
    run_pair(pair, stream, 120)
    state = _round_trip(pair.new.state_dict())
    other = FrameReplayBuffer(37, 2, FRAME, 4, 3)
    other.load_state_dict(state)
    again = other.state_dict()
    assert state.keys() == again.keys()
    assert all(torch.equal(v, again[k]) if isinstance(v, torch.Tensor) else v == again[k] for k, v in state.items())
    # Loaded, it continues the same stream exactly as the original (the pool's guard included).
    pair2 = Pair(37, 4, 2, 3)
    pair2.ref.load_state_dict(pair.ref.state_dict())
    pair2.new = other
    pair2.ref_nstep.load_state_dict(pair.ref_nstep.state_dict())
    pair2.new_nstep.load_state_dict(pair.new_nstep.state_dict())
    pair2.obs, pair2.ids = pair.obs.copy(), pair.ids.copy()
    for t in range(150):
        step = stream.step()
        pair.step(*step)
        pair2.step(*step)
        pair2.assert_same(t)
    a, b = pair.new.state_dict(), pair2.new.state_dict()
    assert all(torch.equal(v, b[k]) if isinstance(v, torch.Tensor) else v == b[k] for k, v in a.items())


def test_load_refuses_damaged_states():
    buf = FrameReplayBuffer(8, 2, FRAME, 2, 1)
    pair = Pair(8, 2, 2, 1)
    run_pair(pair, Stream(2, 2, seed=1), 10)
    state = pair.new.state_dict()
    with pytest.raises(ValueError, match="capacity"):
        FrameReplayBuffer(9, 2, FRAME, 2, 1).load_state_dict(state)
    with pytest.raises(ValueError, match="frame pool"):
        FrameReplayBuffer(8, 2, FRAME, 3, 1).load_state_dict(state)  # another pool size
    bad = dict(state, obs_ids=state["obs_ids"] + 1000)
    with pytest.raises(ValueError, match="out of range"):
        buf.load_state_dict(bad)


def test_full_stack_state_converts_exactly():
    """A ReplayBuffer state (what checkpoints held before frame replay, uint8 or 0.1.0's float32
    stacks) loads into a FrameReplayBuffer with the same observations in every slot."""
    pair = Pair(37, 4, 2, 3)
    run_pair(pair, Stream(4, 2, seed=11, p_end=0.1), 100)
    for dtype in (torch.uint8, torch.float32):
        state = pair.ref.state_dict()
        state = dict(state, obs=state["obs"].to(dtype), next_obs=state["next_obs"].to(dtype))
        buf = FrameReplayBuffer(37, 2, FRAME, 4, 3)
        buf.load_state_dict(state)
        assert buf.converting is not None
        buf.convert_stacks(pair.obs)  # the loop's current observations
        buf.finish_conversion()
        slots = torch.arange(buf.size)
        assert torch.equal(buf.observations(slots), pair.ref.obs[slots])
        assert torch.equal(buf.stacks(buf.next_ids[slots]), pair.ref.next_obs[slots])
        assert buf.written < 2 * buf.size  # frames were shared
        a = pair.ref.sample(16, torch.Generator().manual_seed(0))
        b = buf.sample(16, torch.Generator().manual_seed(0))
        assert all(torch.equal(x, y) for x, y in zip(a[:6], b[:6], strict=True))


def test_conversion_refuses_unshared_frames_and_non_frames():
    ref = ReplayBuffer(20, (2, *FRAME[1:]), torch.uint8)
    rng = np.random.default_rng(0)
    for _ in range(20):  # every frame different: 4 frames per transition do not fit 2 per slot
        o, n = rng.integers(0, 256, size=(2, 1, 2, 2, 3), dtype=np.uint8)
        ref.add(o, np.array([0]), np.array([0.0]), n, np.array([False]), np.array([1.0]))
    with pytest.raises(ValueError) as err:
        FrameReplayBuffer(20, 2, FRAME, 1, 1).load_state_dict(ref.state_dict())
    assert str(err.value) == TOO_FEW_SHARED and "\n" not in TOO_FEW_SHARED
    state = ref.state_dict()
    state["obs"] = state["obs"].float() + 0.5
    with pytest.raises(ValueError, match="not uint8 frames"):
        FrameReplayBuffer(20, 2, FRAME, 1, 1).load_state_dict(state)


def _as_full_stacks(algo_state):
    """A pixel run's DQN state as checkpoints held it before frame replay: replay as
    ReplayBuffer's state, the n-step windows as stacks, no frame slots."""
    buf = FrameReplayBuffer(algo_state["buffer"]["capacity"], 2, (1, 32, 96), 4, 3)
    buf.load_state_dict(algo_state["buffer"])
    state = buf.state_dict()
    n = state["size"]
    full = {k: state[k] for k in ("capacity", "pos", "size", "actions", "rewards", "terminated", "discounts")}
    full["obs"], full["next_obs"] = buf.stacks(state["obs_ids"][:n]), buf.stacks(state["next_ids"][:n])
    nstep = dict(algo_state["nstep"])
    slots = nstep["obs"]  # (n, N, K)
    nstep["obs"] = buf.stacks(slots.reshape(-1, slots.shape[-1])).reshape(*slots.shape[:2], 2, 32, 96)
    old = {k: v for k, v in algo_state.items() if k != "frame_ids"}
    return {**old, "buffer": full, "nstep": nstep}


def test_a_full_stack_checkpoint_resumes_as_the_run_never_stopped(tmp_path):
    """A pixels checkpoint written before frame replay (full stacks in replay and in the n-step
    windows, the ring wrapped) converts on resume, and the run continues exactly as one never stopped."""
    import dqnlab
    from dqnlab.core.fileio import safe_torch_load

    cfg = dqnlab.build_config(
        preset="pixels",
        seed=2,
        total_steps=600,
        checkpoint_every=300,
        artifacts=False,
        **{
            "dqn.learning_starts": 200,
            "dqn.buffer_size": 200,
            "eval.every_steps": 300,
            "eval.episodes": 2,
            "eval.final_episodes": 2,
            "eval.early_stop": False,
            "env.num_envs": 4,
        },
    )
    dqnlab.train(cfg, tmp_path / "straight", progress=False)
    dqnlab.train(cfg, tmp_path / "split", progress=False, total_steps=300)
    path = tmp_path / "split" / "checkpoint.pt"
    state = safe_torch_load(path, "checkpoint")
    assert state["algo_state"]["buffer"]["size"] == 200  # the ring wrapped
    torch.save({**state, "algo_state": _as_full_stacks(state["algo_state"])}, path)
    dqnlab.train(run_dir=tmp_path / "split", resume=True, progress=False, total_steps=600)

    def rows(run):
        lines = (run / "metrics.csv").read_text().splitlines()
        return [line.rsplit(",", 1)[0] for line in lines]  # without wall_seconds

    assert rows(tmp_path / "straight") == rows(tmp_path / "split")
    a = safe_torch_load(tmp_path / "straight" / "checkpoint.pt", "checkpoint")["algo_state"]["learner"]["online"]
    b = safe_torch_load(tmp_path / "split" / "checkpoint.pt", "checkpoint")["algo_state"]["learner"]["online"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_memory_estimate_is_the_frame_buffers_bytes_and_half_the_full_stacks():
    import dqnlab
    from dqnlab.algos.dqn import DQNLoop

    cfg = dqnlab.build_config("pixels", **{"dqn.buffer_size": 3000})
    obs_shape = cfg.env.pixels.obs_shape()
    p = cfg.env.pixels
    buf = FrameReplayBuffer(3000, p.frames, (p.channels, p.height, p.width), cfg.env.num_envs, cfg.dqn.n_step)
    arrays = (
        buf.pool,
        buf.last_use,
        buf.obs_ids,
        buf.next_ids,
        buf.actions,
        buf.rewards,
        buf.terminated,
        buf.discounts,
    )
    assert DQNLoop.memory_estimate(cfg, obs_shape, 2)["replay buffer"] == sum(a.nbytes for a in arrays)
    full = ReplayBuffer(3000, obs_shape, torch.uint8)
    full_bytes = sum(
        a.nbytes for a in (full.obs, full.next_obs, full.actions, full.rewards, full.terminated, full.discounts)
    )
    # Prioritised replay keeps full stacks (and adds its sum tree).
    per = dqnlab.build_config("pixels", **{"dqn.buffer_size": 3000, "dqn.prioritized": True})
    assert DQNLoop.memory_estimate(per, obs_shape, 2)["replay buffer"] == full_bytes + 2 * 2 * 3000 * 8
    # The pixels preset's own buffer (25,000): 2 frames per slot plus those in flight, against 4.
    preset = dqnlab.build_config("pixels")
    ratio = (25_000 * (2 * np.prod(obs_shape) + 20)) / DQNLoop.memory_estimate(preset, obs_shape, 2)["replay buffer"]
    assert 1.97 < ratio < 2.0 and full_bytes / DQNLoop.memory_estimate(cfg, obs_shape, 2)["replay buffer"] > 1.9


def test_an_episode_by_hand_truncated_then_restarted():
    """One env, K 2, 3-step returns: reset frame a; steps b, c (truncated): both pending entries
    flushed with shorter horizons and terminated 0; the autoreset step (restart frame d) is no
    transition; the next step (e) stays pending. Five frames stored, each once."""
    a, b, c, d, e = (np.full((1, *FRAME), v, dtype=np.uint8) for v in (1, 2, 3, 4, 5))
    stack = lambda x, y: np.concatenate([x, y], axis=1)  # noqa: E731  (1, 2, 2, 3)
    buf = FrameReplayBuffer(8, 2, FRAME, 1, 3)
    nstep = NStepCollector(3, 0.5, 1, (2,), np.int32)
    ids = buf.observe(stack(a, a), None, None)
    steps = [  # next stack, valid, reward, terminated, truncated
        (stack(a, b), True, 1.0, False, False),
        (stack(b, c), True, 2.0, False, True),
        (stack(d, d), False, 0.0, False, False),
        (stack(d, e), True, 4.0, False, False),
    ]
    for nxt, valid, reward, term, trunc in steps:
        next_ids = buf.observe(nxt, ids, np.array([valid]))
        if valid:
            out = nstep.push(
                np.array([0]), ids, np.array([0]), np.array([reward]), next_ids, np.array([term]), np.array([trunc])
            )
            if out is not None:
                buf.add(*out)
        ids = next_ids
    assert buf.written == 5 and buf.size == 2 and nstep.count.tolist() == [1]
    slots = torch.arange(2)
    obs, nxt = buf.observations(slots), buf.stacks(buf.next_ids[slots])
    assert torch.equal(obs, torch.from_numpy(np.concatenate([stack(a, a), stack(a, b)])))
    assert torch.equal(nxt, torch.from_numpy(np.concatenate([stack(b, c), stack(b, c)])))
    assert buf.rewards.tolist()[:2] == [1.0 + 0.5 * 2.0, 2.0]
    assert buf.discounts.tolist()[:2] == [0.25, 0.5] and buf.terminated.tolist()[:2] == [0.0, 0.0]
    assert buf.obs_ids[:2].tolist() == [[0, 0], [0, 1]] and buf.next_ids[:2].tolist() == [[1, 2], [1, 2]]
