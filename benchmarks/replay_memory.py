"""Replay memory and sampling time of pixel observations: ReplayBuffer (full frame stacks in obs
and next_obs) against FrameReplayBuffer (each frame once), on the `pixels` preset (issue #16).

    python benchmarks/replay_memory.py [--buffer-size N] [--reps 3000] [--json OUT.json]

Both buffers are filled with the same real transitions: the preset's PixelVectorEnv (8
environments, random actions, NEXT_STEP autoreset) through its n-step collector, until the ring has
wrapped. Reported: the bytes of each buffer's arrays, the bytes DQNLoop.memory_estimate reports,
frames stored per transition, the time of one ``sample(batch_size)``, median and 90th
percentile over `reps` calls of each, interleaved (old, new, old, ...) so that a busy machine
slows both alike, and the median time to store one vector step (while filling). Both buffers return the same batches for the same generator seed (checked).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import dqnlab
from dqnlab.algos.dqn import DQNLoop, NStepCollector
from dqnlab.algos.replay import FrameReplayBuffer, ReplayBuffer
from dqnlab.envs.make import check_spaces, make_vec_env


def nbytes(*arrays) -> int:
    return sum(int(a.nbytes) for a in arrays)


def fill(cfg, wraps: float = 1.2) -> tuple[ReplayBuffer, FrameReplayBuffer, dict[str, list[float]]]:
    """Both buffers fed the same transitions, until `wraps` times the capacity were added; and the
    seconds each spent storing one vector step (n-step collector and add; for frame replay also
    ``observe``)."""
    d, pixels, n_envs = cfg.dqn, cfg.env.pixels, cfg.env.num_envs
    envs = make_vec_env(cfg.env, n_envs)
    obs_shape, _ = check_spaces(envs, cfg.env.id)
    ref = ReplayBuffer(d.buffer_size, obs_shape, torch.uint8)
    new = FrameReplayBuffer(
        d.buffer_size, pixels.frames, (pixels.channels, pixels.height, pixels.width), n_envs, d.n_step
    )
    ref_nstep = NStepCollector(d.n_step, d.gamma, n_envs, obs_shape, np.uint8)
    new_nstep = NStepCollector(d.n_step, d.gamma, n_envs, (pixels.frames,), np.int32)
    rng = np.random.default_rng(0)
    obs, _ = envs.reset(seed=0)
    ids = new.observe(obs, None, None)
    done = np.zeros(n_envs, dtype=bool)
    store: dict[str, list[float]] = {"ReplayBuffer": [], "FrameReplayBuffer": []}
    while new.added < wraps * d.buffer_size:
        actions = rng.integers(0, 2, n_envs)
        next_obs, reward, terminated, truncated, _ = envs.step(actions)
        valid = ~done
        env_ids = np.flatnonzero(valid)
        t0 = time.perf_counter()
        next_ids = new.observe(next_obs, ids, valid)
        t_observe = time.perf_counter() - t0
        for name, buf, nstep, o, n in (
            ("ReplayBuffer", ref, ref_nstep, obs, next_obs),
            ("FrameReplayBuffer", new, new_nstep, ids, next_ids),
        ):
            t0 = time.perf_counter()
            out = nstep.push(
                env_ids, o[valid], actions[valid], reward[valid], n[valid], terminated[valid], truncated[valid]
            )
            if out is not None:
                buf.add(*out)
            store[name].append(time.perf_counter() - t0 + (t_observe if buf is new else 0.0))
        obs, ids, done = next_obs, next_ids, terminated | truncated
    envs.close()
    return ref, new, store


def time_samples(ref, new, batch_size: int, reps: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"ReplayBuffer": [], "FrameReplayBuffer": []}
    for i in range(reps):
        for name, buf in (("ReplayBuffer", ref), ("FrameReplayBuffer", new)):
            gen = torch.Generator().manual_seed(i)
            t0 = time.perf_counter()
            buf.sample(batch_size, gen)
            times[name].append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="pixels")
    parser.add_argument("--buffer-size", type=int, default=None, help="dqn.buffer_size (default: the preset's)")
    parser.add_argument("--reps", type=int, default=3000, help="sample() calls timed per buffer")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as training runs (torch_threads 1)
    overrides = {} if args.buffer_size is None else {"dqn.buffer_size": args.buffer_size}
    cfg = dqnlab.build_config(args.preset, **overrides)
    d = cfg.dqn
    t0 = time.perf_counter()
    ref, new, store = fill(cfg)
    fill_seconds = time.perf_counter() - t0
    for seed in range(5):  # the same batches
        a = ref.sample(d.batch_size, torch.Generator().manual_seed(seed))
        b = new.sample(d.batch_size, torch.Generator().manual_seed(seed))
        assert all(torch.equal(x, y) for x, y in zip(a[:6], b[:6], strict=True)), "the buffers' batches differ"
    ref_bytes = nbytes(ref.obs, ref.next_obs, ref.actions, ref.rewards, ref.terminated, ref.discounts)
    new_bytes = nbytes(new.pool, new.last_use, new.obs_ids, new.next_ids, new.actions, new.rewards)
    new_bytes += nbytes(new.terminated, new.discounts)
    obs_shape = ref.obs_shape
    estimate_new = DQNLoop.memory_estimate(cfg, obs_shape, 2)["replay buffer"]
    estimate_old = d.buffer_size * (2 * float(np.prod(obs_shape)) + 8 + 4 + 4 + 4)  # main's formula
    times = time_samples(ref, new, d.batch_size, args.reps)
    med = {k: float(np.median(v)) for k, v in times.items()}
    p90 = {k: float(np.percentile(v, 90)) for k, v in times.items()}
    store_med = {k: float(np.median(v)) for k, v in store.items()}
    result = {
        "preset": args.preset,
        "buffer_size": d.buffer_size,
        "num_envs": cfg.env.num_envs,
        "n_step": d.n_step,
        "obs_shape": list(obs_shape),
        "batch_size": d.batch_size,
        "transitions_added": new.added,
        "frames_written": new.written,
        "pool_size": new.pool_size,
        "bytes": {"ReplayBuffer": ref_bytes, "FrameReplayBuffer": new_bytes},
        "memory_estimate": {"ReplayBuffer": estimate_old, "FrameReplayBuffer": estimate_new},
        "sample_seconds_median": med,
        "sample_seconds_p90": p90,
        "store_step_seconds_median": store_med,
        "reps": args.reps,
        "fill_seconds": fill_seconds,
    }
    print(
        f"{args.preset}: buffer {d.buffer_size}, {cfg.env.num_envs} envs, n-step {d.n_step}, obs {tuple(obs_shape)} "
        f"uint8, batch {d.batch_size}; {new.added} transitions added, {new.written} frames written "
        f"({new.written / new.added:.3f} per transition), pool of {new.pool_size}"
    )
    print()
    print("| buffer | bytes of its arrays | memory_estimate | sample() median | p90 | storing a step, median |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("ReplayBuffer", "FrameReplayBuffer"):
        print(
            f"| {name} | {result['bytes'][name] / 1e6:,.1f} MB | {result['memory_estimate'][name] / 1e6:,.1f} MB "
            f"| {med[name] * 1e6:,.1f} µs | {p90[name] * 1e6:,.1f} µs | {store_med[name] * 1e6:,.1f} µs |"
        )
    print(
        f"\nratio old / new: bytes {ref_bytes / new_bytes:.3f}x, estimate {estimate_old / estimate_new:.3f}x, "
        f"sample median {med['ReplayBuffer'] / med['FrameReplayBuffer']:.2f}x"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
