"""The `dqnlab` command line. Bad input ends with one `dqnlab: error: ...` line and a non-zero
exit code; `--debug` shows the traceback instead."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from dqnlab.errors import DqnlabError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit 2), not a usage dump."""

    def error(self, message: str):  # type: ignore[override]
        raise DqnlabError(f"{message} (see '{self.prog} --help')", exit_code=2)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"seed must be in [0, 2**32), got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dqnlab", description="Train, evaluate and compare DQN agents on CartPole-style tasks.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train an agent and write a run directory")
    t.add_argument("--preset", help="start from this preset (see 'dqnlab presets'; default: 'default')")
    t.add_argument("--config", metavar="FILE.yaml", help="YAML config (applied over the preset)")
    t.add_argument("--env", help="Gymnasium environment id (sets env.id)")
    t.add_argument("--seed", type=_seed, help="random seed (default 0)")
    t.add_argument("--seeds", metavar="RANGE", help="train one run per seed, e.g. 0-19 or 0,3,5, in parallel; "
                   "writes RUN_DIR/seed-K and an aggregate seeds_summary.json")
    t.add_argument("--workers", type=_positive_int, metavar="N", help="parallel runs with --seeds (default: cores)")
    t.add_argument("--run-dir", metavar="DIR", help="where to write the run (default: a new folder under runs/)")
    t.add_argument("--total-steps", type=_positive_int, metavar="N", help="budget of environment steps")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set dqn.lr=1e-3 (repeatable)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files into RUN_DIR/tensorboard (needs dqnlab[tensorboard])")

    e = sub.add_parser("evaluate", help="evaluate a delivered policy greedily")
    e.add_argument("path", metavar="RUN_DIR_OR_POLICY_FILE")
    e.add_argument("--episodes", type=_positive_int, default=100, help="episodes to run (default 100)")
    e.add_argument("--seed", type=_seed, default=0, help="seed of the evaluation episodes (default 0)")
    e.add_argument("--env", help="evaluate on this environment id instead of the training one")
    e.add_argument("--max-steps", type=_positive_int, metavar="N", help="replace the time limit (long-horizon test)")
    e.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("presets", help="list the presets")
    p.add_argument("--show", metavar="NAME", help="print the resolved config of one preset as YAML")

    from dqnlab.cli_viz import add_commands

    add_commands(sub)
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    from dqnlab.train import train

    if args.resume:
        given = [flag for flag, value in (("--preset", args.preset), ("--config", args.config), ("--env", args.env),
                                          ("--seed", args.seed), ("--run-dir", args.run_dir),
                                          ("--set", args.overrides or None), ("--overwrite", args.overwrite or None))
                 if value is not None]
        if args.seeds is not None:
            given.append("--seeds")
        if given:
            raise DqnlabError(f"--resume continues a run with its own config; it cannot be combined with {given[0]}"
                              " (only --total-steps may raise the budget)")
        result = train(run_dir=args.resume, resume=True, total_steps=args.total_steps, progress=not args.quiet)
    elif args.seeds is not None:
        return _train_seeds(args)
    else:
        from dqnlab.config import build_config

        fields = {"seed": args.seed, "total_steps": args.total_steps, "env.id": args.env}
        cfg = build_config(args.preset, args.config, args.overrides, **fields)
        result = train(cfg, args.run_dir, overwrite=args.overwrite, progress=not args.quiet)
    print(format_summary(result.summary))
    if args.tensorboard:
        from dqnlab.viz.tensorboard import write_tensorboard

        print(f"tensorboard: {write_tensorboard(result.run_dir, None, overwrite=True)}")
    return 0


def _train_seeds(args: argparse.Namespace) -> int:
    from dqnlab.config import build_config
    from dqnlab.rundir import default_run_dir
    from dqnlab.seeds import format_seeds_table, parse_seeds, run_seeds

    if args.seed is not None:
        raise DqnlabError("use either --seed or --seeds, not both")
    if args.overwrite:
        raise DqnlabError("--overwrite is not available with --seeds; choose a new --run-dir")
    if args.tensorboard:
        raise DqnlabError("--tensorboard is not available with --seeds; run 'dqnlab tensorboard DIR/seed-*' after")
    seeds = parse_seeds(args.seeds)
    cfg = build_config(args.preset, args.config, args.overrides, total_steps=args.total_steps, **{"env.id": args.env})
    root = args.run_dir or default_run_dir(cfg.preset, cfg.env.id, args.seeds.replace(",", "_"))

    def report(row: dict) -> None:
        if not args.quiet:
            state = "solved" if row.get("solved") else row.get("status", "done")
            print(f"[dqnlab] seed {row['seed']}: {state}, eval mean {row.get('eval_mean')}", file=sys.stderr,
                  flush=True)

    summary = run_seeds(cfg, seeds, root, args.workers, on_result=report)
    print(format_seeds_table(summary))
    print(f"written to {root}")
    return 0


def format_summary(s: dict) -> str:
    def num(x, fmt="{:.1f}"):
        return "-" if x is None else fmt.format(x)

    threshold = "none" if s["threshold"] is None else f"{s['threshold']:g}"
    solved_at = s.get("steps_to_threshold")
    rows = [
        ("run", s["run_dir"]),
        ("env", f"{s['env_id']}  (preset {s['preset']}, seed {s['seed']})"),
        ("solved", f"{'yes' if s['solved'] else 'no'}  (threshold {threshold})"),
        ("eval", f"mean {num(s['eval_mean'])} ± {num(s['eval_std'])} over {s['eval_episodes']} episodes "
                 f"(min {num(s['eval_min'], '{:g}')}, max {num(s['eval_max'], '{:g}')})"),
        ("steps", f"{s['env_steps']} env steps, {s['episodes']} episodes, {s['grad_steps']} gradient steps"
                  + (f"; threshold reached at {solved_at}" if solved_at is not None else "")),
        ("time", f"{num(s['train_seconds'], '{:.2f}')} s training, "
                 f"{num(s['final_eval_seconds'], '{:.2f}')} s final evaluation"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from dqnlab.api import evaluate
    from dqnlab.policy import load_policy

    policy = load_policy(args.path)
    res = evaluate(policy, episodes=args.episodes, seed=args.seed, env_id=args.env, max_steps=args.max_steps)
    out = {**res.as_dict(), "env_id": args.env or policy.env_id, "seed": args.seed, "path": args.path}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['env_id']}: mean {out['mean']:.1f} ± {out['std']:.1f} over {out['episodes']} episodes "
              f"(min {out['min']:g}, max {out['max']:g})")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from dqnlab.presets import preset_description, preset_names

    if args.show:
        from dqnlab.config import build_config, config_to_yaml

        print(config_to_yaml(build_config(args.show)), end="")
        return 0
    names = preset_names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {preset_description(name)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        from dqnlab.cli_viz import HANDLERS as VIZ_HANDLERS

        handler = {"train": _cmd_train, "evaluate": _cmd_evaluate, "presets": _cmd_presets,
                   **VIZ_HANDLERS}[args.command]
        return handler(args)
    except DqnlabError as exc:
        if debug:
            raise
        print(f"dqnlab: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a full disk, a vanished directory, ...: the previous files stay intact
        if debug:
            raise
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"dqnlab: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if debug:
            raise
        print("dqnlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
