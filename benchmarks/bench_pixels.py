"""Frames per second of CartPole pixel observations: dqnlab's NumPy rasteriser (batched over
environments) against Gymnasium's pygame renderer, and of the whole pixel pipeline.

    python benchmarks/bench_pixels.py [--seconds 2] [--json OUT.json]

Rows:
- gymnasium render: ``CartPoleEnv(render_mode="rgb_array").render()``, one 600x400 frame;
- gymnasium render + S1 preprocessing: that frame cropped as the tutorial does and resized to
  3x40x90 with Pillow (bicubic), i.e. what S1 paid per frame;
- dqnlab rasteriser: frames drawn straight at the view's size for N environments at once;
- pipeline: PixelVectorEnv.step over N environments (physics, drawing, frame stack), random actions.
All single-threaded; frames per second count one frame of one environment.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import gymnasium as gym
import numpy as np

from dqnlab.config import EnvConfig, PixelConfig
from dqnlab.envs.make import make_vec_env
from dqnlab.envs.pixels.view import BOTTOM, TOP, TUTORIAL_VIEW_W, render_view, tutorial_left

VIEWS = {
    "tutorial 3x40x90": PixelConfig(mode="tutorial", height=40, width=90, color=True, frames=2, input="difference"),
    "track 1x32x96": PixelConfig(mode="track"),
}


def _rate(fn, frames_per_call: int, seconds: float) -> float:
    fn()  # warm up (imports, caches)
    calls, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        fn()
        calls += 1
    return calls * frames_per_call / elapsed


def bench(seconds: float) -> list[dict]:
    os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    rows = []
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    base = env.unwrapped

    def gym_frame():
        base.state = np.array([rng.uniform(-2, 2), 0.0, rng.uniform(-0.2, 0.2), 0.0])
        return env.render()

    rows.append({"what": "gymnasium render 3x400x600", "envs": 1, "fps": _rate(gym_frame, 1, seconds)})

    from PIL import Image

    def gym_s1():
        frame = gym_frame()[TOP:BOTTOM]
        left = int(tutorial_left(np.array([base.state[0]]))[0])
        patch = Image.fromarray(np.ascontiguousarray(frame[:, left : left + TUTORIAL_VIEW_W]))
        return np.asarray(patch.resize((90, 40), Image.Resampling.BICUBIC))

    rows.append({"what": "gymnasium render + S1 crop/resize (PIL)", "envs": 1, "fps": _rate(gym_s1, 1, seconds)})
    env.close()

    for name, cfg in VIEWS.items():
        for n in (1, 8, 100):
            obs = np.zeros((n, 4))
            obs[:, 0], obs[:, 2] = rng.uniform(-2, 2, n), rng.uniform(-0.2, 0.2, n)
            rows.append(
                {
                    "what": f"dqnlab rasteriser {name}",
                    "envs": n,
                    "fps": _rate(lambda cfg=cfg, obs=obs: render_view(cfg, obs), n, seconds),
                }
            )
    for name, cfg in VIEWS.items():
        for n in (1, 8, 100):
            envs = make_vec_env(EnvConfig(id="CartPole-v1", pixels=cfg), n)
            envs.reset(seed=0)
            acts = rng.integers(0, 2, size=(64, n))
            k = [0]

            def step(envs=envs, acts=acts, k=k):  # bound now: the loop moves on
                k[0] += 1
                envs.step(acts[k[0] % 64])

            rows.append({"what": f"pipeline PixelVectorEnv.step {name}", "envs": n, "fps": _rate(step, n, seconds)})
            envs.close()
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    rows = bench(args.seconds)
    ref = rows[0]["fps"]
    print("| what | envs | frames/s | vs gymnasium render |\n| --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['what']} | {r['envs']} | {r['fps']:,.0f} | {r['fps'] / ref:.1f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
