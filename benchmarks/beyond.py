"""The presets beyond CartPole (acrobot, mountaincar, lunarlander) against Stable-Baselines3 DQN with
the RL Zoo's hyperparameters for each environment (issue #17).

    pip install -e ".[bench,box2d]"     # stable-baselines3, matplotlib, Box2D for LunarLander
    python benchmarks/beyond.py --presets acrobot,mountaincar --seeds 1000-1009 --no-sb3

Each run in its own fresh process on one torch thread, one run at a time, the systems alternating
seed by seed. Training time is reported as wall seconds and as the process's CPU seconds (which a
machine shared with other work inflates less). Both delivered policies are evaluated alike: 100 greedy episodes on seeds neither
system trained or evaluated on (the same start states for both). A seed meets the goal when that
mean is at or above the environment's goal. SB3 trains for the Zoo's budget; the presets for half
of it or less. Tune on seeds below 1000 and report seeds from 1000 up. Writes OUT/rows.json (per
run, rewritten after each) and OUT/results.md (the tables for BENCHMARKS.md: per system, the issue's
goals beside the Zoo's published figures, per run); the runs go to RUNS/<time>-<pid>/<preset>-s<seed>.
`--table A/rows.json B/rows.json --out OUT` makes one table from runs split over processes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_cartpole import this_checkout_first  # benchmarks/bench_cartpole.py, next to this script

HERE = Path(__file__).resolve().parent
EVAL_SEED = 2_000_000  # evaluation episodes start from EVAL_SEED + 1000 * seed, unseen by both systems

# env id, the goal of issue #17 for every seed's delivered policy
GOALS = {
    "acrobot": ("Acrobot-v1", -77.0),
    "mountaincar": ("MountainCar-v0", -101.0),
    "lunarlander": ("LunarLander-v3", 200.0),
}

# rl-baselines3-zoo hyperparams/dqn.yml (commit ce95481; LunarLander tuned on v2, run here on v3)
_ZOO_SMALL = dict(
    learning_rate=6.3e-4,
    batch_size=128,
    buffer_size=50_000,
    learning_starts=0,
    gamma=0.99,
    target_update_interval=250,
    train_freq=4,
    gradient_steps=-1,
    exploration_fraction=0.12,
    exploration_final_eps=0.1,
    policy_kwargs=dict(net_arch=[256, 256]),
)
SB3_ZOO: dict[str, tuple[int, dict]] = {
    "Acrobot-v1": (100_000, _ZOO_SMALL),
    "LunarLander-v3": (100_000, _ZOO_SMALL),
    "MountainCar-v0": (
        120_000,
        dict(
            learning_rate=4e-3,
            batch_size=128,
            buffer_size=10_000,
            learning_starts=1000,
            gamma=0.98,
            target_update_interval=600,
            train_freq=16,
            gradient_steps=8,
            exploration_fraction=0.2,
            exploration_final_eps=0.07,
            policy_kwargs=dict(net_arch=[256, 256]),
        ),
    ),
}


# The RL Zoo's own benchmark table (rl-baselines3-zoo benchmark.md, DQN, one run each; LunarLander on
# v2), as issue #17 quotes it: mean and std of the evaluation return, and its env steps.
ZOO_PUBLISHED: dict[str, tuple[float, float, int]] = {
    "Acrobot-v1": (-76.6, 11.8, 100_000),
    "MountainCar-v0": (-100.8, 9.9, 120_000),
    "LunarLander-v3": (154.4, 79.2, 100_000),
}
SPEEDUP_GOAL = 5.0  # issue #17: at least 5x faster than SB3 in wall time, same machine, same run


def eval_seed(seed: int) -> int:
    return EVAL_SEED + 1000 * seed


# -- workers: each runs in a fresh interpreter (python beyond.py --worker ...) -------------------


def worker_dqnlab(preset: str, seed: int, run_dir: str, overrides: list[str]) -> dict:
    import torch

    import dqnlab

    torch.set_num_threads(1)
    cfg = dqnlab.build_config(preset, seed=seed, overrides=overrides)
    cpu = time.process_time()
    res = dqnlab.train(cfg, run_dir, progress=False)
    cpu = time.process_time() - cpu
    ev = dqnlab.evaluate(res.policy, episodes=100, seed=eval_seed(seed))
    s = res.summary
    return {
        "system": "dqnlab",
        "preset": preset,
        "env_id": cfg.env.id,
        "seed": seed,
        "train_seconds": s["train_seconds"],
        "cpu_seconds": cpu,
        "env_steps": s["env_steps"],
        "eval_mean": ev.mean,
        "eval_std": ev.std,
        "run_dir": run_dir,
        "dqnlab_path": str(Path(dqnlab.__file__).parent),  # which checkout was measured
    }


def worker_sb3(preset: str, seed: int) -> dict:
    import gymnasium as gym
    import torch
    from stable_baselines3 import DQN

    from dqnlab.config import EnvConfig
    from dqnlab.runtime.evaluation import Evaluator

    torch.set_num_threads(1)
    env_id = GOALS[preset][0]
    steps, hyper = SB3_ZOO[env_id]
    t0, cpu = time.perf_counter(), time.process_time()
    model = DQN("MlpPolicy", gym.make(env_id), seed=seed, verbose=0, device="cpu", **hyper)
    model.learn(total_timesteps=steps)
    train_seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu

    def act(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=True)[0]

    ev = Evaluator(EnvConfig(id=env_id), 100).run(act, 100, eval_seed(seed))
    return {
        "system": "sb3",
        "preset": preset,
        "env_id": env_id,
        "seed": seed,
        "train_seconds": train_seconds,
        "cpu_seconds": cpu,
        "env_steps": steps,
        "eval_mean": ev.mean,
        "eval_std": ev.std,
        "versions": {"sb3": __import__("stable_baselines3").__version__},
    }


def spawn(kind: str, *args) -> dict:
    """Run one worker in a fresh process; return its JSON result."""
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, json.dumps(args)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": this_checkout_first()},
    )
    if out.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the table ---------------------------------------------------------------------------------


def goal_verdicts(rows: list[dict]) -> list[dict]:
    """Issue #17's three goals per environment, from the rows of one run: every dqnlab seed at or
    above the goal; at most half the Zoo's env steps on every seed; SB3 / dqnlab wall seconds at
    least SPEEDUP_GOAL on every seed that has both systems (None where SB3 was not run)."""
    out = []
    for preset, (env_id, goal) in GOALS.items():
        mine = [r for r in rows if r["preset"] == preset and r["system"] == "dqnlab"]
        if not mine:
            continue
        sb3 = {r["seed"]: r for r in rows if r["preset"] == preset and r["system"] == "sb3"}
        ratios = [sb3[r["seed"]]["train_seconds"] / r["train_seconds"] for r in mine if r["seed"] in sb3]
        half = ZOO_PUBLISHED[env_id][2] // 2
        out.append(
            {
                "env_id": env_id,
                "goal": goal,
                "seeds": len(mine),
                "at_goal": sum(r["eval_mean"] >= goal for r in mine),
                "max_steps": max(r["env_steps"] for r in mine),
                "half_zoo_steps": half,
                "ratio_min": min(ratios) if ratios else None,
                "ratio_median": float(np.median(ratios)) if ratios else None,
                "ratio_seeds": len(ratios),
            }
        )
    return out


def goal_lines(rows: list[dict]) -> list[str]:
    """The goals table for BENCHMARKS.md, with the Zoo's published figure beside each env."""
    lines = [
        "| env | Zoo published (one run) | dqnlab seeds ≥ goal | env steps ≤ half the Zoo's | "
        f"SB3 / dqnlab wall s ≥ {SPEEDUP_GOAL:g}× on every seed |",
        "| --- | --- | --- | --- | --- |",
    ]
    for v in goal_verdicts(rows):
        mean, std, steps = ZOO_PUBLISHED[v["env_id"]]
        met = v["at_goal"] == v["seeds"]
        steps_met = v["max_steps"] <= v["half_zoo_steps"]
        if v["ratio_min"] is None:
            speed = "not measured (no SB3 runs)"
        else:
            speed_met = v["ratio_min"] >= SPEEDUP_GOAL and v["ratio_seeds"] == v["seeds"]
            speed = (
                f"{'met' if speed_met else '**missed**'}: lowest {v['ratio_min']:.1f}×, median "
                f"{v['ratio_median']:.1f}× ({v['ratio_seeds']} seeds)"
            )
        lines.append(
            f"| {v['env_id']} (goal {v['goal']:g}) | {mean:g} ± {std:g} at {steps // 1000}k steps "
            f"| {'met' if met else '**missed**'}: {v['at_goal']}/{v['seeds']} "
            f"| {'met' if steps_met else '**missed**'}: at most {v['max_steps']} (half: {v['half_zoo_steps']}) "
            f"| {speed} |"
        )
    return lines


def markdown(rows: list[dict], command: str, load: str) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, one torch "
        f"thread, one run at a time, seeds alternating between the systems; load average at the start: {load}.",
        "",
        "| env | system | seeds at or above the goal | eval mean: min / median / max | env steps: median "
        "| train s: median | CPU s: median |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for preset, (env_id, goal) in GOALS.items():
        for system in ("dqnlab", "sb3"):
            rs = [r for r in rows if r["preset"] == preset and r["system"] == system]
            if not rs:
                continue
            means = [r["eval_mean"] for r in rs]
            label = f"dqnlab `{preset}`" if system == "dqnlab" else "SB3 DQN, RL Zoo"
            lines.append(
                f"| {env_id} (goal {goal:g}) | {label} | {sum(m >= goal for m in means)}/{len(rs)} "
                f"| {min(means):.1f} / {np.median(means):.1f} / {max(means):.1f} "
                f"| {np.median([r['env_steps'] for r in rs]):.0f} | {np.median([r['train_seconds'] for r in rs]):.1f} "
                f"| {np.median([r['cpu_seconds'] for r in rs]):.1f} |"
            )
        by = {(r["system"], r["seed"]): r for r in rows if r["preset"] == preset}
        both = sorted(s for system, s in by if system == "dqnlab" and ("sb3", s) in by)
        ratios = [by["sb3", s]["train_seconds"] / by["dqnlab", s]["train_seconds"] for s in both]
        cpu_ratios = [by["sb3", s]["cpu_seconds"] / by["dqnlab", s]["cpu_seconds"] for s in both]
        if ratios:
            lines.append(
                f"| {env_id} | SB3 / dqnlab, median per seed | | | | {np.median(ratios):.1f}× "
                f"| {np.median(cpu_ratios):.1f}× |"
            )
    lines += ["", *goal_lines(rows)]
    lines += ["", "Per run (eval mean ± std over 100 fresh episodes, training seconds, env steps):", ""]
    lines += [
        "| env | seed | system | eval mean | train s | CPU s | env steps |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['env_id']} | {r['seed']} | {r['system']} | {r['eval_mean']:.1f} ± {r['eval_std']:.1f} "
            f"| {r['train_seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['env_steps']} |"
        )
    return "\n".join(lines) + "\n"


def write_table(out: Path, files: list[str]) -> None:
    """OUT/results.md and OUT/rows.json from the rows.json of earlier runs, their commands listed."""
    runs = [json.loads(Path(f).read_text()) for f in files]
    rows = [row for run in runs for row in run["rows"]]
    command = " ; ".join(run["command"] for run in runs)
    load = " ; ".join(run["load"] for run in runs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rows.json").write_text(json.dumps({"command": command, "load": load, "rows": rows}, indent=1))
    md = markdown(rows, command, load)
    (out / "results.md").write_text(md)
    print(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default=",".join(GOALS), help="comma-separated, of: " + ", ".join(GOALS))
    ap.add_argument("--seeds", default="1000-1009")
    ap.add_argument("--out", default=str(HERE / "results" / "beyond"), help="rows.json and results.md")
    ap.add_argument("--runs", default="runs/beyond", help="the run directories (default runs/beyond)")
    ap.add_argument("--no-sb3", action="store_true", help="only dqnlab (also when SB3 is not installed)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="override dqnlab's config")
    ap.add_argument(
        "--table",
        nargs="+",
        metavar="ROWS_JSON",
        help="train nothing: write OUT/results.md (and OUT/rows.json) from the rows of earlier runs "
        "(several files: one table, e.g. seeds split over two processes)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("args", nargs="?", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        fn = {"dqnlab": worker_dqnlab, "sb3": worker_sb3}[a.worker]
        print(json.dumps(fn(*json.loads(a.args))))
        return

    if a.table:
        write_table(Path(a.out), a.table)
        return

    from dqnlab.experiments.multiseed import parse_seeds

    presets = [p.strip() for p in a.presets.split(",") if p.strip()]
    unknown = [p for p in presets if p not in GOALS]
    if unknown:
        ap.error(f"unknown preset {unknown[0]!r} (choose from {', '.join(GOALS)})")
    with_sb3 = not a.no_sb3 and importlib.util.find_spec("stable_baselines3") is not None
    if not a.no_sb3 and not with_sb3:
        print("stable-baselines3 is not installed: dqnlab only", file=sys.stderr)
    seeds = parse_seeds(a.seeds)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"  # two benchmarks started in one second: two folders
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    command = "python benchmarks/beyond.py " + " ".join(sys.argv[1:])
    rows: list[dict] = []

    def record(row: dict) -> None:
        # rows.json after every run: an hours-long benchmark that dies keeps what it measured
        rows.append(row)
        (out / "rows.json").write_text(json.dumps({"command": command, "load": load, "rows": rows}, indent=1))
        print(
            f"{row['preset']} seed {row['seed']} {row['system']}: {row['eval_mean']:.1f} in {row['train_seconds']:.1f} s"
        )

    for preset in presets:
        for seed in seeds:
            record(spawn("dqnlab", preset, seed, str(Path(a.runs) / stamp / f"{preset}-s{seed}"), a.overrides))
            if with_sb3:
                record(spawn("sb3", preset, seed))
    md = markdown(rows, command, load)
    (out / "results.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
