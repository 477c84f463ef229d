"""One step of N environments: dqnlab's NumPy Acrobot-v1 and MountainCar-v0 against the
SyncVectorEnv of Gymnasium's classes that they replace (issue #17), side by side in one process.

    python benchmarks/vector_envs.py [--envs 8 100] [--steps 400] [--rounds 5] [--json OUT.json]

For each environment and count N (8: a training run's envs; 100: an evaluation's), both kinds
step with the same actions (a fixed pattern over the three actions), episodes ending and
autoresetting as they come; each round's figure is the median microseconds of a step over
`steps` steps, rounds alternate the kinds, reported: the median over rounds. Both kinds are
checked to return the same observations on the first 50 steps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import gymnasium as gym
import numpy as np

from dqnlab.config import EnvConfig
from dqnlab.envs.make import make_vec_env

ENV_IDS = ("Acrobot-v1", "MountainCar-v0")


def step_us(envs: gym.vector.VectorEnv, actions: np.ndarray, steps: int) -> float:
    times = []
    for t in range(steps):
        a = actions[t % len(actions)]
        t0 = time.perf_counter()
        envs.step(a)
        times.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(times)


def measure(env_id: str, n: int, steps: int, rounds: int) -> dict:
    kinds = {
        "sync": gym.make_vec(env_id, num_envs=n, vectorization_mode="sync"),
        "numpy": make_vec_env(EnvConfig(id=env_id), n),
    }
    assert type(kinds["numpy"].unwrapped).__name__ != "SyncVectorEnv"
    actions = np.random.default_rng(0).integers(0, 3, size=(64, n))
    first = [envs.reset(seed=0)[0] for envs in kinds.values()]
    assert np.array_equal(*first)
    for t in range(50):  # the same episodes, before timing
        obs = [envs.step(actions[t % 64])[0] for envs in kinds.values()]
        assert np.array_equal(*obs)
    out: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(rounds):
        for name, envs in kinds.items():
            out[name].append(step_us(envs, actions, steps))
    for envs in kinds.values():
        envs.close()
    med = {k: statistics.median(v) for k, v in out.items()}
    return {"rounds_us": out, "median_us": med, "ratio": med["sync"] / med["numpy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", type=int, nargs="+", default=[8, 100])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    result: dict[str, dict] = {}
    for env_id in ENV_IDS:
        for n in args.envs:
            r = measure(env_id, n, args.steps, args.rounds)
            result[f"{env_id} x{n}"] = r
            print(
                f"{env_id} x{n}: one step {r['median_us']['sync']:.0f} us as a SyncVectorEnv, "
                f"{r['median_us']['numpy']:.0f} us in NumPy ({r['ratio']:.1f}x)"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
