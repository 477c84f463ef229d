"""dqnlab's `default` preset against Stable-Baselines3 DQN (RL Zoo config) on CartPole-v1.

    pip install -e ".[bench]"          # stable-baselines3 and matplotlib
    python benchmarks/bench_cartpole.py --seeds 0-19 --out bench-out

One run, seeds alternating between the systems, each run in its own fresh process on one torch
thread, one run at a time. Both delivered policies are evaluated with the same protocol: 100
greedy episodes on seeds neither system trained on (the same start states for both). Writes
bench-out/rows.json (per seed), results.json (aggregates), results.md (the table for
BENCHMARKS.md) and seconds.png.

`--command` also times the whole `dqnlab train` command as the README runs it (process start,
imports, training, final evaluation, curves, GIF and report written, and no process of its
session left behind when it returns). `--stability` adds, per seed, a run with early stopping
off for 60k steps and an evaluation of 100 episodes every 2k steps (benchmarks/stability.py):
the share of evaluations >= 475 from the first solve on, and the lowest of them. Issue #16's
goals (`--goals`): 20/20 solved, training median <= 1 s, whole command median <= 3 s, >= 25x
SB3 on every seed, and on every seed a share >= 0.9 with no evaluation below 300.

    python benchmarks/bench_cartpole.py --seeds 1000-1019 --command --stability --goals --out bench-out
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EVAL_SEED = 1_000_000  # evaluation episodes start from EVAL_SEED + 1000 * seed, unseen by both systems
THRESHOLD = 475.0

# rl-baselines3-zoo hyperparams/dqn.yml, CartPole-v1
SB3_ZOO = dict(
    learning_rate=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1000,
    gamma=0.99,
    target_update_interval=10,
    train_freq=256,
    gradient_steps=128,
    exploration_fraction=0.16,
    exploration_final_eps=0.04,
    policy_kwargs=dict(net_arch=[256, 256]),
)
SB3_STEPS = 50_000
STABILITY_STEPS, STABILITY_EVERY = 60_000, 2_000  # issue #16: early stopping off, 100 episodes each
GOALS = {"train_median": 1.0, "command_median": 3.0, "speedup_min": 25.0, "share": 0.9, "floor": 300.0}


def this_checkout_first() -> str:
    """PYTHONPATH for the runs this script starts: the checkout that holds it first, so they
    benchmark its dqnlab, not whichever one is installed (an editable install of another
    checkout would otherwise be measured silently)."""
    root = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))


def eval_seed(seed: int) -> int:
    return EVAL_SEED + 1000 * seed


# -- workers: each runs in a fresh interpreter (python bench_cartpole.py --worker ...) -----------


def worker_dqnlab(seed: int, run_dir: str, overrides: list[str], preset: str = "default") -> dict:
    t0 = time.perf_counter()
    import torch

    import dqnlab

    t_import = time.perf_counter() - t0
    torch.set_num_threads(1)
    cfg = dqnlab.build_config(preset, seed=seed, overrides=overrides)
    res = dqnlab.train(cfg, run_dir, progress=False)
    ev = dqnlab.evaluate(res.policy, episodes=100, seed=eval_seed(seed))
    s = res.summary
    return {
        "system": "dqnlab",
        "seed": seed,
        "train_seconds": s["train_seconds"],
        "import_seconds": t_import,
        "env_steps": s["env_steps"],
        "eval_mean": ev.mean,
        "eval_min": float(ev.returns.min()),
        "solved": ev.mean >= THRESHOLD,
        "run_dir": run_dir,
    }


def worker_sb3(seed: int) -> dict:
    t0 = time.perf_counter()
    import torch
    from stable_baselines3 import DQN

    import dqnlab
    from dqnlab.config import EnvConfig
    from dqnlab.runtime.evaluation import Evaluator

    t_import = time.perf_counter() - t0
    torch.set_num_threads(1)
    import gymnasium as gym

    t1 = time.perf_counter()
    model = DQN("MlpPolicy", gym.make("CartPole-v1"), seed=seed, verbose=0, device="cpu", **SB3_ZOO)
    model.learn(total_timesteps=SB3_STEPS)
    train_seconds = time.perf_counter() - t1

    def act(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=True)[0]

    ev = Evaluator(EnvConfig(id="CartPole-v1"), 100).run(act, 100, eval_seed(seed))
    return {
        "system": "sb3",
        "seed": seed,
        "train_seconds": train_seconds,
        "import_seconds": t_import,
        "env_steps": SB3_STEPS,
        "eval_mean": float(ev.returns.mean()),
        "eval_min": float(ev.returns.min()),
        "solved": float(ev.returns.mean()) >= THRESHOLD,
        "versions": {"sb3": __import__("stable_baselines3").__version__, "dqnlab": dqnlab.__version__},
    }


def worker_stability(seed: int, overrides: list[str], preset: str, steps: int, every: int) -> dict:
    import torch
    from stability import run_one  # benchmarks/stability.py, next to this script

    torch.set_num_threads(1)
    row = run_one(preset, overrides, seed, steps, every)
    keep = ("seed", "first_solve", "share_after", "min_after", "q_max", "q_bound", "evals")
    return {**{k: row[k] for k in keep}, "steps": steps, "every": every}


def sessions_alive(sid: int) -> list[int]:
    """Processes still in session `sid` (a command started with start_new_session=True): what
    it left behind."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # after ") state ppid pgrp session": session is the 4th field
            alive.append(int(stat.parent.name))
    return alive


def time_command(seed: int, run_dir: str, overrides: list[str], preset: str = "default") -> dict:
    """The whole `dqnlab train` command, timed from here: what a user waits for."""
    exe = Path(sys.executable).with_name("dqnlab")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "dqnlab"]
    cmd += ["train", "--seed", str(seed), "--run-dir", run_dir]
    if preset != "default":
        cmd += ["--preset", preset]
    for o in overrides:
        cmd += ["--set", o]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": this_checkout_first()}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"dqnlab train failed:\n{err[-3000:]}")
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    return {
        "seed": seed,
        "command_seconds": wall,
        "train_seconds": summary["train_seconds"],
        "solved": bool(summary["solved"]),
        "artifacts": sorted(p.name for p in Path(run_dir).iterdir() if p.suffix in (".png", ".gif", ".html")),
        "left_behind": sessions_alive(proc.pid),
    }


def spawn(kind: str, *args) -> dict:
    """Run one worker in a fresh process; return its JSON result plus the process wall time."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, json.dumps(args)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": this_checkout_first()},
    )
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["process_seconds"] = wall
    return row


# -- aggregation and report ---------------------------------------------------------------------


def aggregate(rows: list[dict]) -> dict:
    from dqnlab.experiments.stats import summarize

    out = {}
    for system in sorted({r["system"] for r in rows}):
        rs = [r for r in rows if r["system"] == system]
        out[system] = {
            "runs": len(rs),
            "solved": sum(r["solved"] for r in rs),
            "train_seconds": summarize([r["train_seconds"] for r in rs]),
            "process_seconds": summarize([r["process_seconds"] for r in rs]),
            "import_seconds": summarize([r["import_seconds"] for r in rs]),
            "env_steps": summarize([r["env_steps"] for r in rs]),
            "eval_mean": summarize([r["eval_mean"] for r in rs]),
        }
    if {"dqnlab", "sb3"} <= out.keys():
        # per seed, side by side: the ratio of SB3's to dqnlab's training time
        by = {(r["system"], r["seed"]): r for r in rows}
        ratios = [
            by["sb3", s]["train_seconds"] / by["dqnlab", s]["train_seconds"]
            for s in sorted({r["seed"] for r in rows})
            if ("sb3", s) in by and ("dqnlab", s) in by
        ]
        out["speedup_train_seconds"] = summarize(ratios)
        out["speedup_of_medians"] = out["sb3"]["train_seconds"]["median"] / out["dqnlab"]["train_seconds"]["median"]
    return out


def holds(st: dict) -> bool:
    """Issue #16's "no collapse" on one seed: solved within the budget, then at least 90% of the
    evaluations from the first solve on at >= 475 and none below 300."""
    return st["share_after"] is not None and st["share_after"] >= GOALS["share"] and st["min_after"] >= GOALS["floor"]


def markdown(
    agg: dict,
    rows: list[dict],
    stability: list[dict] | None,
    command: str,
    overrides: list[str] = (),
    preset: str = "default",
    commands: list[dict] | None = None,
    goals: bool = False,
) -> str:
    def ci(s, fmt="{:.1f}"):
        return f"{fmt.format(s['iqm'])} [{fmt.format(s['iqm_ci_low'])}, {fmt.format(s['iqm_ci_high'])}]"

    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"one torch thread, one run at a time, seeds alternating.",
        "",
        "| system | solved (mean ≥ 475 over 100 fresh episodes) | eval mean: median | eval mean: IQM [95% CI] "
        "| env steps: median | train s: median | train s: IQM [95% CI] | process s: median | import s: median |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    dqnlab_label = f"dqnlab {preset}" + (f" with {' '.join(overrides)}" if overrides else "")
    for system in ("dqnlab", "sb3"):
        if system not in agg:
            continue
        a = agg[system]
        lines.append(
            f"| {dqnlab_label if system == 'dqnlab' else 'SB3 DQN, RL Zoo'} | {a['solved']}/{a['runs']} "
            f"| {a['eval_mean']['median']:.1f} | {ci(a['eval_mean'])} | {a['env_steps']['median']:.0f} "
            f"| {a['train_seconds']['median']:.2f} | {ci(a['train_seconds'], '{:.2f}')} "
            f"| {a['process_seconds']['median']:.2f} | {a['import_seconds']['median']:.2f} |"
        )
    if "speedup_train_seconds" in agg:
        s = agg["speedup_train_seconds"]
        lines += [
            "",
            f"Speed-up in training time (SB3 / dqnlab, per seed): median {s['median']:.1f}×, "
            f"IQM {ci(s)}×, min {s['min']:.1f}×; ratio of medians {agg['speedup_of_medians']:.1f}×.",
        ]
    by = {(r["system"], r["seed"]): r for r in rows}
    cmd_by = {c["seed"]: c for c in commands or []}
    st_by = {st["seed"]: st for st in stability or []}
    seeds = sorted({r["seed"] for r in rows})
    header = ["seed", "dqnlab: eval / train s / env steps"]
    header += ["`dqnlab train` command s"] if commands else []
    header += ["SB3: eval / train s", "SB3 / dqnlab train s"] if "sb3" in agg else []
    header += ["stability: first solve / share ≥ 475 after / lowest after"] if stability else []
    lines += ["", "Per seed (eval: mean over 100 fresh episodes):", "", "| " + " | ".join(header) + " |"]
    lines.append("| " + " | ".join("---" for _ in header) + " |")
    for seed in seeds:
        d = by[("dqnlab", seed)]
        cells = [str(seed), f"{d['eval_mean']:.1f} / {d['train_seconds']:.2f} / {d['env_steps']}"]
        if commands:
            c = cmd_by.get(seed)
            cells.append("-" if c is None else f"{c['command_seconds']:.2f}")
        if "sb3" in agg:
            b = by.get(("sb3", seed))
            cells += (
                ["-", "-"]
                if b is None
                else [
                    f"{b['eval_mean']:.1f} / {b['train_seconds']:.2f}",
                    f"{b['train_seconds'] / d['train_seconds']:.1f}×",
                ]
            )
        if stability:
            st = st_by.get(seed)
            if st is None or st["first_solve"] is None:
                cells.append("never solved" if st else "-")
            else:
                mark = "" if holds(st) else " **✗**"
                cells.append(f"{st['first_solve']} / {st['share_after']:.2f} / {st['min_after']:.0f}{mark}")
        lines.append("| " + " | ".join(cells) + " |")
    if commands:
        secs = [c["command_seconds"] for c in commands]
        left = sum(bool(c["left_behind"]) for c in commands)
        full = sum(c["artifacts"] == ["curves.png", "episode.gif", "report.html"] for c in commands)
        lines += [
            "",
            f"`dqnlab train` as the README runs it: median {np.median(secs):.2f} s (fastest {min(secs):.2f}, "
            f"slowest {max(secs):.2f}); curves, GIF and report written in {full} of {len(commands)} runs; "
            f"processes left behind: {left}.",
        ]
    if stability:
        held = sum(holds(st) for st in stability)
        lines += [
            "",
            f"Stability (early stopping off, {stability[0]['steps']} steps, 100 evaluation episodes every "
            f"{stability[0]['every']} steps; ✗: the seed misses share ≥ {GOALS['share']} or lowest ≥ "
            f"{GOALS['floor']:.0f}): {held} of {len(stability)} seeds hold.",
        ]
    if goals:
        lines += ["", *goal_table(agg, commands, stability)]
    return "\n".join(lines) + "\n"


def goal_table(agg: dict, commands: list[dict] | None, stability: list[dict] | None) -> list[str]:
    """Issue #16's goals against this run, each met or missed."""
    d = agg["dqnlab"]
    out = ["| goal (issue #16) | target | measured | |", "| --- | --- | --- | --- |"]

    def row(goal: str, target: str, measured: str, met: bool | None) -> None:
        out.append(f"| {goal} | {target} | {measured} | {'–' if met is None else 'met' if met else '**missed**'} |")

    row(
        "seeds solved (≥ 475 over 100 fresh episodes)",
        f"{d['runs']}/{d['runs']}",
        f"{d['solved']}/{d['runs']}",
        d["solved"] == d["runs"],
    )
    t = d["train_seconds"]["median"]
    row(
        "training, start of `dqnlab.train` to the delivered policy, median",
        f"≤ {GOALS['train_median']} s",
        f"{t:.2f} s",
        t <= GOALS["train_median"],
    )
    if commands:
        c = float(np.median([x["command_seconds"] for x in commands]))
        ok = c <= GOALS["command_median"] and not any(x["left_behind"] for x in commands)
        row("whole `dqnlab train` command, median", f"≤ {GOALS['command_median']} s", f"{c:.2f} s", ok)
    else:
        row("whole `dqnlab train` command, median", f"≤ {GOALS['command_median']} s", "not run", None)
    if "speedup_train_seconds" in agg:
        s = agg["speedup_train_seconds"]
        row(
            "speed-up over SB3 (RL Zoo), per seed",
            f"≥ {GOALS['speedup_min']:.0f}× on every seed",
            f"min {s['min']:.1f}×, median {s['median']:.1f}×",
            s["min"] >= GOALS["speedup_min"],
        )
    else:
        row("speed-up over SB3 (RL Zoo), per seed", f"≥ {GOALS['speedup_min']:.0f}×", "not run", None)
    if stability:
        held = sum(holds(st) for st in stability)
        shares = [st["share_after"] for st in stability if st["share_after"] is not None]
        lows = [st["min_after"] for st in stability if st["min_after"] is not None]
        measured = f"{held}/{len(stability)} seeds hold" + (
            f" (shares {min(shares):.2f}–{max(shares):.2f}, lowest evaluation {min(lows):.0f})" if shares else ""
        )
        row(
            "no collapse: share ≥ 475 after the first solve, lowest",
            f"≥ {GOALS['share']} and ≥ {GOALS['floor']:.0f} on every seed",
            measured,
            held == len(stability),
        )
    else:
        row("no collapse after solving", "every seed", "not run", None)
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    systems = [s for s in ("dqnlab", "sb3") if any(r["system"] == s for r in rows)]
    for ax, key, label in (
        (axes[0], "train_seconds", "training seconds (log)"),
        (axes[1], "eval_mean", "eval mean, 100 fresh episodes"),
    ):
        for i, system in enumerate(systems):
            ys = [r[key] for r in rows if r["system"] == system]
            xs = np.full(len(ys), i) + np.random.default_rng(0).uniform(-0.15, 0.15, len(ys))
            ax.scatter(xs, ys, alpha=0.7)
            ax.hlines(np.median(ys), i - 0.3, i + 0.3, color="k")
        ax.set_xticks(range(len(systems)), ["dqnlab" if s == "dqnlab" else "SB3 (RL Zoo)" for s in systems])
        ax.set_ylabel(label)
        if key == "train_seconds":
            ax.set_yscale("log")
        else:
            ax.axhline(THRESHOLD, ls="--", color="gray")
    fig.suptitle("CartPole-v1: dqnlab vs Stable-Baselines3 DQN, one seed per point")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0-19")
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--preset", default="default", help="dqnlab's preset (default: default)")
    ap.add_argument("--no-sb3", action="store_true", help="only dqnlab")
    ap.add_argument("--command", action="store_true", help="also time the whole `dqnlab train` command per seed")
    ap.add_argument("--stability", action="store_true", help="also measure stability after the first solve")
    ap.add_argument("--stability-steps", type=int, default=STABILITY_STEPS, help=argparse.SUPPRESS)  # smoke test
    ap.add_argument("--stability-every", type=int, default=STABILITY_EVERY, help=argparse.SUPPRESS)
    ap.add_argument("--goals", action="store_true", help="add the table of issue #16's goals")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="override dqnlab's config")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("args", nargs="?", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        fn = {"dqnlab": worker_dqnlab, "sb3": worker_sb3, "stability": worker_stability}[a.worker]
        print(json.dumps(fn(*json.loads(a.args))))
        return

    from dqnlab.experiments.multiseed import parse_seeds

    seeds = parse_seeds(a.seeds)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = out / f"runs-{time.strftime('%Y%m%d-%H%M%S')}"
    rows, commands, stability = [], [], []
    for seed in seeds:  # the timed runs first, seeds alternating between the systems
        rows.append(spawn("dqnlab", seed, str(runs / f"dqnlab-s{seed}"), a.overrides, a.preset))
        print(f"seed {seed} dqnlab: {rows[-1]['eval_mean']:.1f} in {rows[-1]['train_seconds']:.2f} s", flush=True)
        if a.command:
            commands.append(time_command(seed, str(runs / f"command-s{seed}"), a.overrides, a.preset))
            print(f"seed {seed} command: {commands[-1]['command_seconds']:.2f} s", flush=True)
        if not a.no_sb3:
            rows.append(spawn("sb3", seed))
            print(f"seed {seed} sb3:    {rows[-1]['eval_mean']:.1f} in {rows[-1]['train_seconds']:.2f} s", flush=True)
    if a.stability:
        for seed in seeds:
            st = spawn("stability", seed, a.overrides, a.preset, a.stability_steps, a.stability_every)
            stability.append(st)
            print(
                f"seed {seed} stability: first solve {st['first_solve']}, share {st['share_after']}, "
                f"lowest {st['min_after']}",
                flush=True,
            )
    agg = aggregate(rows)
    command = "python benchmarks/bench_cartpole.py " + " ".join(sys.argv[1:])
    (out / "rows.json").write_text(json.dumps({"rows": rows, "commands": commands, "stability": stability}, indent=1))
    (out / "results.json").write_text(json.dumps(agg, indent=1))
    md = markdown(agg, rows, stability or None, command, a.overrides, a.preset, commands or None, a.goals)
    (out / "results.md").write_text(md)
    plot(rows, out / "seconds.png")
    print(md)


if __name__ == "__main__":
    main()
