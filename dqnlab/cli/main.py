"""The `dqnlab` command line. Bad input ends with one `dqnlab: error: ...` line and a non-zero
exit code; `--debug` shows the traceback instead. SIGINT or SIGTERM ends a command with one
`dqnlab: interrupted by SIG...; <how to continue>` line and exit code 130 or 143."""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from dqnlab.cli import argtypes
from dqnlab.config import MAX_EVAL_EPISODES, MAX_STEPS
from dqnlab.core.errors import DqnlabError, Interrupted
from dqnlab.core.version import __version__
from dqnlab.experiments.multiseed import MAX_SEEDS

MAX_WORKERS = 1024
"""Parallel runs at most: each is a process (or Ray task) of a few hundred MB."""
MAX_TRIALS = 10**6
"""Trials a sweep's study may hold."""


def sweep_seeds(text: str) -> int | list[int]:
    """sweep's --seeds: a count K (seeds 0..K-1, as before) or a seed range as train and compare take."""
    from dqnlab.experiments.multiseed import parse_seeds

    if text.strip().isdigit():
        return argtypes.at_most(MAX_SEEDS)(text)
    try:
        return parse_seeds(text)
    except DqnlabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_backend_options(cmd: argparse.ArgumentParser, prefix: str = "") -> None:
    """--backend and --ray-address: where the independent runs train (see dqnlab.experiments.fanout)."""
    cmd.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help=prefix + "'local': a process pool on this machine (default); 'ray': one Ray task per run "
        "(needs dqnlab[ray])",
    )
    cmd.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --backend ray: an existing cluster ('auto', HOST:6379 or ray://HOST:10001); "
        "without it a local Ray instance with --workers CPUs is started. On several machines the "
        "output folder must be on a filesystem shared by all nodes at the same path",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argtypes.Parser(
        prog="dqnlab", description="Train, evaluate and compare DQN agents on CartPole-style tasks."
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"dqnlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=argtypes.Parser)

    t = sub.add_parser("train", help="train an agent and write a run directory")
    t.add_argument(
        "--preset",
        help="start from this preset (see 'dqnlab presets'; default: the one tuned for --env, else 'default')",
    )
    t.add_argument(
        "--config", metavar="FILE.yaml", type=argtypes.path_text, help="YAML config (applied over the preset)"
    )
    t.add_argument(
        "--env",
        help="Gymnasium environment id (sets env.id); without --preset, the preset tuned for it if "
        "there is one (Acrobot-v1, MountainCar-v0, LunarLander-v3: see 'dqnlab presets')",
    )
    t.add_argument("--seed", type=argtypes.seed, help="random seed (default 0)")
    t.add_argument(
        "--seeds",
        metavar="RANGE",
        help="train one run per seed, e.g. 0-19 or 0,3,5, in parallel; "
        "writes RUN_DIR/seed-K and an aggregate seeds_summary.json",
    )
    t.add_argument(
        "--workers", type=argtypes.at_most(MAX_WORKERS), metavar="N", help="parallel runs with --seeds (default: cores)"
    )
    _add_backend_options(t, "with --seeds: ")
    t.add_argument(
        "--run-dir",
        metavar="DIR",
        type=argtypes.path_text,
        help="where to write the run (default: a new folder under runs/)",
    )
    t.add_argument("--total-steps", type=argtypes.at_most(MAX_STEPS), metavar="N", help="budget of environment steps")
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set dqn.lr=1e-3 (repeatable)",
    )
    t.add_argument(
        "--resume", metavar="RUN_DIR", type=argtypes.path_text, help="continue the run in RUN_DIR from its checkpoint"
    )
    t.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard event files into RUN_DIR/tensorboard (needs dqnlab[tensorboard])",
    )

    e = sub.add_parser("evaluate", help="evaluate a delivered policy greedily")
    e.add_argument("path", type=argtypes.path_text, metavar="RUN_DIR_OR_POLICY_FILE")
    e.add_argument(
        "--episodes", type=argtypes.at_most(MAX_EVAL_EPISODES), default=100, help="episodes to run (default 100)"
    )
    e.add_argument("--seed", type=argtypes.seed, default=0, help="seed of the evaluation episodes (default 0)")
    e.add_argument("--env", help="evaluate on this environment id instead of the training one")
    e.add_argument(
        "--max-steps",
        type=argtypes.at_most(MAX_STEPS),
        metavar="N",
        help="replace the time limit (long-horizon test; default: the one the run's evaluations used)",
    )
    e.add_argument(
        "--obs-noise",
        type=argtypes.noise_sigmas,
        metavar="SIGMA[,SIGMA...]",
        help="Gaussian noise on observations: one sigma, or one per dimension (comma-separated)",
    )
    e.add_argument(
        "--action-noise",
        type=argtypes.probability,
        metavar="P",
        help="replace each action by a uniformly random one with probability P",
    )
    e.add_argument(
        "--force-noise",
        type=argtypes.non_negative,
        metavar="SIGMA",
        help="CartPole-style envs: relative Gaussian error on each push's force",
    )
    e.add_argument(
        "--randomize-physics",
        action="store_true",
        help="CartPole-style envs: draw half pole length in [0.25, 0.75] m, pole mass in [0.05, 0.2] kg, "
        "cart mass in [0.5, 1.5] kg and push in [8, 12] N per episode",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object")

    c = sub.add_parser("compare", help="train presets or configs on the same seeds; write a table and curves")
    c.add_argument(
        "entries",
        nargs="+",
        type=argtypes.path_text,
        metavar="PRESET_OR_CONFIG",
        help="preset names or YAML config files",
    )
    c.add_argument("--seeds", default="0-9", metavar="RANGE", help="seeds for every entry (default 0-9)")
    c.add_argument(
        "--out",
        type=argtypes.path_text,
        metavar="DIR",
        help="output folder (default runs/compare-ENTRIES-sSEEDS); running the same command again skips finished runs",
    )
    c.add_argument("--workers", type=argtypes.at_most(MAX_WORKERS), metavar="N", help="parallel runs (default: cores)")
    _add_backend_options(c)
    c.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field in every entry (repeatable)",
    )
    c.add_argument("--quiet", action="store_true", help="no plan line and no progress line per finished run (stderr)")

    w = sub.add_parser("sweep", help="Optuna hyperparameter search, each trial scored on several seeds")
    w.add_argument(
        "space",
        type=argtypes.path_text,
        metavar="SEARCH_SPACE.yaml",
        help="base config, fixed overrides and sampled parameters",
    )
    w.add_argument(
        "--trials",
        type=argtypes.at_most(MAX_TRIALS),
        required=True,
        metavar="N",
        help="trials the study should hold; the same command again continues the study",
    )
    w.add_argument(
        "--seeds",
        type=sweep_seeds,
        default=3,
        metavar="K|RANGE",
        help="the seeds of every trial: a count K (seeds 0..K-1) or a range like 0-4 or 10,12,14, as "
        "train and compare take; score: IQM of steps to the threshold (default 3)",
    )
    w.add_argument(
        "--out",
        type=argtypes.path_text,
        metavar="DIR",
        help="output folder (default runs/sweep-SPACE): trial-N/seed-K runs, study.db, trials.csv, best.yaml",
    )
    w.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage URL shared by several machines, e.g. "
        "postgresql://user:pass@host/db (default: sqlite:///DIR/study.db)",
    )
    w.add_argument("--study-name", metavar="NAME", help="study name in the storage (default dqnlab-sweep)")
    w.add_argument(
        "--workers",
        type=argtypes.at_most(MAX_WORKERS),
        metavar="N",
        help="parallel runs: a trial's seeds train N at a time (default: cores)",
    )
    _add_backend_options(w)
    w.add_argument("--quiet", action="store_true", help="no line per finished trial")

    p = sub.add_parser("presets", help="list the presets")
    p.add_argument("--show", metavar="NAME", help="print the resolved config of one preset as YAML")

    from dqnlab.cli import export
    from dqnlab.cli.viz import add_commands

    add_commands(sub)
    export.add_command(sub)
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    from dqnlab.train import train

    if args.resume:
        given = [
            flag
            for flag, value in (
                ("--preset", args.preset),
                ("--config", args.config),
                ("--env", args.env),
                ("--seed", args.seed),
                ("--run-dir", args.run_dir),
                ("--set", args.overrides or None),
                ("--overwrite", args.overwrite or None),
            )
            if value is not None
        ]
        if args.seeds is not None:
            given.append("--seeds")
        if given:
            raise DqnlabError(
                f"--resume continues a run with its own config; it cannot be combined with {given[0]}"
                " (only --total-steps may raise the budget)"
            )
        result = train(
            run_dir=args.resume, resume=True, total_steps=args.total_steps, progress=not args.quiet, cli_flags=True
        )
    elif args.seeds is not None:
        return _train_seeds(args)
    else:
        if args.backend != "local" or args.ray_address or args.workers:
            raise DqnlabError("--backend, --ray-address and --workers apply to many runs: use them with --seeds")
        from dqnlab.config import build_config

        flags = {"seed": args.seed, "total_steps": args.total_steps}  # None: the flag was not given
        fields = {key: value for key, value in flags.items() if value is not None}
        cfg = build_config(args.preset, args.config, args.overrides, env=args.env, **fields)
        _say_env_preset(args)
        result = train(cfg, args.run_dir, overwrite=args.overwrite, progress=not args.quiet, cli_flags=True)
    print(format_summary(result.summary, result.files))
    if args.tensorboard:
        from dqnlab.viz.tensorboard import write_tensorboard

        print(f"tensorboard: {write_tensorboard(result.run_dir, None, overwrite=True)}")
    return 0


def _say_env_preset(args: argparse.Namespace) -> None:
    """With --env and no preset (flag or config file), say which preset was chosen for it: the
    first line of output."""
    from dqnlab.config.loading import env_preset_notice

    notice = env_preset_notice(args.preset, args.config, args.env)
    if notice is not None:
        print(notice, file=sys.stderr, flush=True)


def _train_seeds(args: argparse.Namespace) -> int:
    from dqnlab.config import build_config
    from dqnlab.experiments.multiseed import format_seeds_table, parse_seeds, run_seeds
    from dqnlab.runtime.rundir import default_run_dir

    if args.seed is not None:
        raise DqnlabError("use either --seed or --seeds, not both")
    if args.overwrite:
        raise DqnlabError("--overwrite is not available with --seeds; choose a new --run-dir")
    if args.tensorboard:
        raise DqnlabError("--tensorboard is not available with --seeds; run 'dqnlab tensorboard DIR/seed-*' after")
    seeds = parse_seeds(args.seeds)
    budget = {} if args.total_steps is None else {"total_steps": args.total_steps}
    cfg = build_config(args.preset, args.config, args.overrides, env=args.env, **budget)
    _say_env_preset(args)
    root = args.run_dir or default_run_dir(cfg.preset, cfg.env.id, args.seeds.replace(",", "_"))

    def report(row: dict) -> None:
        if not args.quiet:
            state = "solved" if row.get("solved") else row.get("status", "done")
            extra = "" if row.get("status") == "interrupted" else f", eval mean {row.get('eval_mean')}"
            print(f"[dqnlab] seed {row['seed']}: {state}{extra}", file=sys.stderr, flush=True)

    summary = run_seeds(
        cfg, seeds, root, args.workers, on_result=report, backend=args.backend, ray_address=args.ray_address
    )
    print(format_seeds_table(summary))
    print(f"written to {root}")
    return 0


def format_summary(s: dict, files: Sequence[str] = ()) -> str:
    """The table `dqnlab train` prints at the end: the run, its result, the `files` it wrote and
    the commands to run next."""

    def num(x, fmt="{:.1f}"):
        return "-" if x is None else fmt.format(x)

    threshold = "none" if s["threshold"] is None else f"{s['threshold']:g}"
    if s.get("success_threshold") is not None:
        threshold = f"success rate {s['success_threshold']:.0%}"
    solved_at = s.get("steps_to_threshold")
    rows = [
        ("run", s["run_dir"]),
        (
            "env",
            f"{s['env_id']}  (preset {s['preset']}, algo {s.get('algo', 'dqn')}, seed {s['seed']}"
            + (f", episodes capped at {s['max_episode_steps']} steps" if s.get("max_episode_steps") else "")
            + ")",
        ),
        ("solved", f"{'yes' if s['solved'] else 'no'}  (threshold {threshold})"),
        (
            "eval",
            f"mean {num(s['eval_mean'])} ± {num(s['eval_std'])} over {s['eval_episodes']} episodes "
            f"(min {num(s['eval_min'], '{:g}')}, max {num(s['eval_max'], '{:g}')})"
            + (f"; task success {s['success_rate']:.0%}" if s.get("success_rate") is not None else ""),
        ),
        (
            "steps",
            f"{s['env_steps']} env steps, {s['episodes']} episodes"
            + (f", {s['grad_steps']} gradient steps" if s.get("grad_steps") is not None else "")
            + (
                f"; threshold reached at {solved_at}"
                if solved_at is not None
                else f"; stopped by {s.get('stop_reason')}"
            ),
        ),
        (
            "time",
            f"{num(s['train_seconds'], '{:.2f}')} s training, "
            f"{num(s['final_eval_seconds'], '{:.2f}')} s final evaluation",
        ),
    ]
    if files:
        rows.append(("files", ", ".join(files)))
    rows += [("next" if i == 0 else "", command) for i, command in enumerate(next_commands(s["run_dir"], files))]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def next_commands(run_dir: str, files: Sequence[str] = ()) -> list[str]:
    """What to run after training `run_dir`, one command a line with a comment saying why."""
    import shlex

    from dqnlab.viz import REPORT_FILE

    run = shlex.quote(str(run_dir))
    commands = [
        (f"dqnlab evaluate {run} --seed 1", "100 other episodes (--obs-noise S, --max-steps N: robustness)"),
        (f"dqnlab play {run} --human", "watch it in a window (--gif PATH: a GIF)"),
    ]
    if REPORT_FILE in files:
        report = shlex.quote(str(Path(run_dir) / REPORT_FILE))
        commands.append((report, "open in a browser: curves, config, an episode"))
    else:
        commands.append((f"dqnlab report {run}", "write curves.png, episode.gif, report.html"))
    width = max(len(c) for c, _ in commands)
    return [f"{c:<{width}}  # {why}" for c, why in commands]


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from dqnlab.algos.registry import load_policy
    from dqnlab.api import evaluate
    from dqnlab.envs.make import env_spec

    policy = load_policy(args.path)
    env_id = args.env or policy.env_id
    perturbations: dict[str, Any] = {
        name: value
        for name, value in (
            ("obs_noise", args.obs_noise),
            ("action_noise", args.action_noise),
            ("force_noise", args.force_noise),
            ("randomize", True if args.randomize_physics else None),
        )
        if value
    }
    res = evaluate(
        policy, episodes=args.episodes, seed=args.seed, env_id=args.env, max_steps=args.max_steps, **perturbations
    )
    if args.randomize_physics:
        from dqnlab.envs.cartpole_vec import DEFAULT_RANDOMIZE

        perturbations["randomize"] = {k: list(v) for k, v in DEFAULT_RANDOMIZE.items()}
    cap = (
        args.max_steps or policy.evaluation_env(args.env).get("max_episode_steps") or env_spec(env_id).max_episode_steps
    )
    out = {
        **res.as_dict(),
        "env_id": env_id,
        "seed": args.seed,
        "path": args.path,
        "max_steps": cap,
        "perturbations": perturbations,
    }
    if args.json:
        from dqnlab.core.fileio import json_safe

        print(json.dumps(json_safe(out), allow_nan=False))  # valid JSON: a NaN is printed as null
        return 0
    print(
        f"{out['env_id']}: mean {out['mean']:.1f} ± {out['std']:.1f} over {out['episodes']} episodes "
        f"(min {out['min']:g}, max {out['max']:g})"
    )
    if perturbations:
        print(
            "under "
            + ", ".join(
                "randomized physics" if k == "randomize" else f"{k.replace('_', ' ')} {v}"
                for k, v in perturbations.items()
            )
        )
    cap_text = f"the {cap}-step limit" if cap else "the time limit"
    line = f"survival {out['survival']:.0%} ({round(out['survival'] * out['episodes'])} of {out['episodes']} reached {cap_text})"
    if "max_abs_x_max" in out:
        line += (
            f"; cart drift: max |x| {out['max_abs_x_max']:.2f} (per-episode mean {out['max_abs_x_mean']:.2f}), "
            f"final |x| {out['final_abs_x_mean']:.2f} on average"
        )
    print(line)
    if "success_rate" in out:
        print(
            f"task success {out['success_rate']:.0%}"
            + (
                f"; mean |x - target| over the last 100 steps {out['mean_abs_offset_last_100']:.3f}"
                if "mean_abs_offset_last_100" in out
                else ""
            )
        )
    return 0


def _count(n: int, one: str, many: str | None = None) -> str:
    """'1 run', '4 runs'."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def _cmd_compare(args: argparse.Namespace) -> int:
    import shutil

    from dqnlab.experiments.compare import COMPARE_MD, compare, format_terminal_table, resolve_entries
    from dqnlab.experiments.fanout import default_workers
    from dqnlab.experiments.multiseed import parse_seeds

    seeds = parse_seeds(args.seeds)
    configs = resolve_entries(args.entries, args.overrides)
    out = (
        Path(args.out)
        if args.out
        else Path("runs")
        / ("compare-" + "+".join(label for label, _ in configs)[:120] + "-s" + args.seeds.replace(",", "_"))
    )
    if out.exists() and not out.is_dir():
        raise DqnlabError(f"--out {out} exists and is not a directory")
    done = [0, 0]  # runs finished (before and now), runs in all

    def plan(total: int, finished: int) -> None:
        done[:] = [finished, total]
        if args.quiet:
            return
        todo = total - finished
        if args.backend == "ray":
            where = f"on Ray ({args.ray_address or 'a local instance'})"
        else:
            workers = min(args.workers or default_workers(), max(todo, 1))
            where = f"on {_count(workers, 'worker')}"
        print(
            f"[dqnlab] {_count(total, 'run')} ({_count(len(configs), 'entry', 'entries')} × "
            f"{_count(len(seeds), 'seed')}) {where}, {finished} already finished",
            file=sys.stderr,
            flush=True,
        )

    def report(label: str, row: dict) -> None:
        done[0] += 1
        if not args.quiet:
            state = "solved" if row.get("solved") else row.get("status", "done")
            if row.get("status") == "failed":
                extra = f": {row.get('error')}"
            elif row.get("status") == "interrupted":
                extra = " (checkpoint written)"
            else:
                extra = f", eval mean {row.get('eval_mean'):.1f}"
            print(
                f"[dqnlab] {done[0]}/{done[1]} {label} seed {row.get('seed')}: {state}{extra}",
                file=sys.stderr,
                flush=True,
            )

    result = compare(
        configs,
        seeds,
        out,
        args.workers,
        on_result=report,
        backend=args.backend,
        ray_address=args.ray_address,
        on_plan=plan,
    )
    print(format_terminal_table(result, shutil.get_terminal_size().columns))
    print(f"written to {out} ({COMPARE_MD}: the full table, compare.json, curves.png)")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from dqnlab.experiments.sweep import format_trials, load_search_space, sweep

    space = load_search_space(args.space)
    out = Path(args.out) if args.out else Path("runs") / f"sweep-{Path(args.space).stem}"

    def report(message: str) -> None:
        if not args.quiet:
            print(f"[dqnlab] {message}", file=sys.stderr, flush=True)

    result = sweep(
        space,
        args.trials,
        args.seeds,
        out,
        storage=args.storage,
        study_name=args.study_name,
        workers=args.workers,
        backend=args.backend,
        ray_address=args.ray_address,
        on_event=report,
    )
    print(format_trials(result))
    print(f"written to {out} (trials.csv, best.yaml, trial-N/seed-K)")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from dqnlab.config.presets import ENV_PRESETS, preset_description, preset_names

    if args.show:
        from dqnlab.config import build_config
        from dqnlab.config.documented import documented_yaml

        print(documented_yaml(build_config(args.show)), end="")
        return 0
    names = preset_names()
    width = max(map(len, names))
    import shutil
    import textwrap

    from dqnlab.config import build_config

    columns = max(60, shutil.get_terminal_size((100, 24)).columns)
    chosen_for = {name: env_id for env_id, name in ENV_PRESETS.items()}
    for name in names:
        cfg = build_config(name)
        chosen = f"; chosen by --env {chosen_for[name]}" if name in chosen_for else ""
        print(
            textwrap.fill(
                f"[{cfg.algo}, {cfg.env.id}{chosen}] {preset_description(name)}",
                columns,
                initial_indent=f"{name:<{width}}  ",
                subsequent_indent=" " * (width + 2),
            )
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        from dqnlab.cli.export import cmd_export
        from dqnlab.cli.viz import HANDLERS as VIZ_HANDLERS

        handler = {
            "train": _cmd_train,
            "evaluate": _cmd_evaluate,
            "presets": _cmd_presets,
            "compare": _cmd_compare,
            "sweep": _cmd_sweep,
            "export": cmd_export,
            **VIZ_HANDLERS,
        }[args.command]
        return handler(args)
    except Interrupted as exc:  # not an error: the line says how to continue
        if debug:
            raise
        print(f"dqnlab: {exc}", file=sys.stderr)
        return exc.exit_code
    except DqnlabError as exc:
        if debug:
            raise
        print(f"dqnlab: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1
    except OSError as exc:  # a full disk, a vanished directory, ...: the previous files stay intact
        if debug:
            raise
        where = f" ({str(exc.filename)[:200]})" if getattr(exc, "filename", None) else ""
        print(f"dqnlab: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if debug:
            raise
        print("dqnlab: interrupted", file=sys.stderr)
        return 130


def run() -> NoReturn:
    """The `dqnlab` command (and ``python -m dqnlab``): ``main()``, then the end of the process.

    Before the interpreter shuts down, ``gc.freeze()`` moves every object into the permanent
    generation, so that the garbage collections of the shutdown skip them: with torch loaded,
    those took about 0.5 s of every command's exit (BENCHMARKS.md, "The end of a run"). Nothing
    else changes: open files were closed and flushed by then, and atexit handlers and the
    flushing of stdout and stderr run as ever. Only here, in a process that is about to end:
    ``main()`` itself is also called in-process (tests, notebooks), where freezing would keep
    every later cycle of garbage alive."""
    code = main()
    gc.freeze()
    raise SystemExit(code)


if __name__ == "__main__":
    run()
