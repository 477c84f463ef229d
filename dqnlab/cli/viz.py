"""The `dqnlab plot`, `play`, `report` and `tensorboard` commands.

    dqnlab plot RUN_DIR... [--out PATH] [--band ci95|minmax] [--overwrite]
    dqnlab play RUN_DIR [--episodes N] [--seed N] [--gif PATH | --mp4 PATH | --human]
                [--fps N] [--every K] [--width PX] [--max-steps N] [--overwrite]
    dqnlab report RUN_DIR [--no-gif] [--seed N]
    dqnlab tensorboard RUN_DIR... [--logdir DIR] [--overwrite]

Where files go: a run directory's own curves.png, episode.gif, report.html and tensorboard/
(and curves.png in a `--seeds` folder) are derived from the run and regenerated without asking.
Any other existing file named with --out, --gif, --mp4 or --logdir is replaced only with
--overwrite, so a figure or video kept elsewhere is never lost by accident.

`add_commands(sub)` registers the commands on dqnlab's subparsers; `HANDLERS` maps each command
name to its handler, which takes the parsed arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from dqnlab.cli import argtypes
from dqnlab.core.errors import DqnlabError

Handler = Callable[[argparse.Namespace], int]

OVERWRITE_RULE = (
    "Files: a run's own curves.png, episode.gif and report.html are derived from the run and "
    "rewritten without asking; any other existing file (named with --out, --gif or --mp4) is "
    "replaced only with --overwrite."
)
"""The overwrite rule of plot, play and report, as their --help states it (see the module docstring)."""


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add plot, play, report and tensorboard to `sub`; return HANDLERS."""

    p = sub.add_parser(
        "plot",
        help="draw learning curves of one run, or of several (e.g. seeds) with a band",
        description="Draw the learning curves of one run, or of several (e.g. seeds) as a mean with a band. "
        + OVERWRITE_RULE,
    )
    p.add_argument("run_dirs", nargs="+", type=argtypes.path_text, metavar="RUN_DIR")
    p.add_argument(
        "--out",
        type=argtypes.path_text,
        metavar="PATH.png",
        help="where to write the PNG (default: RUN_DIR/curves.png; for "
        "several runs, curves.png in the folder that holds them)",
    )
    p.add_argument(
        "--band",
        choices=("ci95", "minmax"),
        default="ci95",
        help="band across several runs: 95%% bootstrap interval of the mean (default) or min-max",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file that is not the run's own")

    v = sub.add_parser(
        "play",
        help="watch the delivered policy: write a GIF or MP4, or show a window",
        description="Watch the delivered policy: write a GIF (default RUN_DIR/episode.gif) or an MP4, or show "
        "the episodes in a window. " + OVERWRITE_RULE,
    )
    v.add_argument(
        "path",
        type=argtypes.path_text,
        metavar="RUN_DIR",
        help="a run directory (or a policy file, with --gif, --mp4 or --human)",
    )
    v.add_argument(
        "--episodes",
        type=argtypes.int_in(1, argtypes.MAX_PLAY_EPISODES, "episodes"),
        default=1,
        help="episodes to play (default 1)",
    )
    v.add_argument("--seed", type=argtypes.seed, default=0, help="episode i is reset with seed + i (default 0)")
    out = v.add_mutually_exclusive_group()
    out.add_argument(
        "--gif", type=argtypes.path_text, metavar="PATH", help="write a GIF (default: RUN_DIR/episode.gif)"
    )
    out.add_argument(
        "--mp4", type=argtypes.path_text, metavar="PATH", help='write an MP4 (needs pip install "dqnlab[video]")'
    )
    out.add_argument("--human", action="store_true", help="show the episodes in a window (needs a display)")
    v.add_argument(
        "--fps",
        type=argtypes.fps,
        metavar="N",
        help="playback speed in env steps per second (default: the environment's, 50 for CartPole)",
    )
    v.add_argument(
        "--max-steps",
        type=argtypes.at_most(argtypes.MAX_PLAY_STEPS),
        metavar="N",
        help="end each episode after N steps (default: the time limit of the run's evaluations, "
        f"at most {argtypes.MAX_PLAY_STEPS:,})",
    )
    v.add_argument(
        "--every",
        type=argtypes.int_in(1, argtypes.MAX_EVERY, "steps"),
        metavar="K",
        help="keep every K-th frame (default 2 for GIF, 1 for MP4)",
    )
    v.add_argument(
        "--width", type=argtypes.width, metavar="PX", help="frame width in pixels (default 300 for GIF, 600 for MP4)"
    )
    v.add_argument(
        "--overwrite", action="store_true", help="replace an existing --gif or --mp4 file that is not the run's own"
    )

    r = sub.add_parser(
        "report",
        help="write curves.png, episode.gif and a self-contained report.html into a run",
        description="Write curves.png, episode.gif and a self-contained report.html into RUN_DIR. " + OVERWRITE_RULE,
    )
    r.add_argument("run_dir", type=argtypes.path_text, metavar="RUN_DIR")
    r.add_argument("--no-gif", action="store_true", help="no episode animation (faster)")
    r.add_argument("--seed", type=argtypes.seed, default=0, help="seed of the animated episode (default 0)")

    t = sub.add_parser("tensorboard", help="export metrics to TensorBoard event files (needs dqnlab[tensorboard])")
    t.add_argument("run_dirs", nargs="+", type=argtypes.path_text, metavar="RUN_DIR")
    t.add_argument(
        "--logdir",
        type=argtypes.path_text,
        metavar="DIR",
        help="write to DIR/<run name> (default: RUN_DIR/tensorboard)",
    )
    t.add_argument("--overwrite", action="store_true", help="replace event files already in --logdir")
    return HANDLERS


def default_plot_path(run_dirs: list[str]) -> Path:
    """Where `dqnlab plot` writes without --out: RUN_DIR/curves.png for one run, curves.png in
    the folder holding several (refused if they are in different folders)."""
    from dqnlab.viz.output import CURVES_FILE

    if len(run_dirs) == 1:
        return Path(run_dirs[0]) / CURVES_FILE
    parents = {Path(d).resolve().parent for d in run_dirs}
    if len(parents) != 1:
        raise DqnlabError("the runs are in different folders; name the figure with --out PATH.png")
    return parents.pop() / CURVES_FILE


def cmd_plot(args: argparse.Namespace) -> int:
    from dqnlab.viz.curves import plot_curves
    from dqnlab.viz.output import check_output_path

    if len(args.run_dirs) == 1 and not Path(args.run_dirs[0]).is_dir():  # say this before anything about --out
        raise DqnlabError(f"run directory not found: {args.run_dirs[0]}")
    out = check_output_path(args.out or default_plot_path(args.run_dirs), args.overwrite)
    path = plot_curves(args.run_dirs, out, band=args.band)
    print(f"wrote {path}")
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    from dqnlab.algos.registry import load_policy
    from dqnlab.viz import video
    from dqnlab.viz.output import EPISODE_GIF_FILE, check_output_path

    policy = load_policy(args.path)  # first: a missing run is the error to report
    if not (args.gif or args.mp4 or args.human) and not Path(args.path).is_dir():
        raise DqnlabError("playing a policy file needs --gif PATH, --mp4 PATH or --human")
    if not args.human:  # refuse a bad output before rendering anything
        out = check_output_path(args.gif or args.mp4 or Path(args.path) / EPISODE_GIF_FILE, args.overwrite)
    fps = args.fps or video.default_fps(policy.env_id)

    if args.human:
        for i, (total, length) in enumerate(
            video.play_in_window(policy, args.episodes, args.seed, fps, args.max_steps)
        ):
            print(f"episode {i + 1} (seed {args.seed + i}): return {total:g} in {length} steps")
        return 0

    mp4 = args.mp4 is not None
    every = args.every or (video.MP4_EVERY if mp4 else video.GIF_EVERY)
    width = args.width or (video.MP4_WIDTH if mp4 else video.GIF_WIDTH)
    # refuse a frame rate the file cannot hold before rendering, not after
    if mp4:
        video.frame_seconds(fps, every)
    else:
        video.gif_frame_ms(fps, every)
    episodes = video.record_episodes(
        policy, args.episodes, args.seed, every=every, width=width, even=mp4, max_steps=args.max_steps
    )
    for ep in episodes:
        print(f"episode {ep.seed - args.seed + 1} (seed {ep.seed}): return {ep.total_return:g} in {ep.length} steps")
    path = (video.write_mp4 if mp4 else video.write_gif)(out, episodes, fps, every)
    frames = sum(len(ep.frames) for ep in episodes)
    print(f"wrote {path} ({frames} frames, {path.stat().st_size / 1e6:.2f} MB)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from dqnlab.viz import write_run_artifacts

    for path in write_run_artifacts(Path(args.run_dir), gif=not args.no_gif, seed=args.seed):
        print(f"wrote {path}")
    return 0


def cmd_tensorboard(args: argparse.Namespace) -> int:
    from dqnlab.viz.tensorboard import write_tensorboard

    outs = []
    for run in args.run_dirs:
        log_dir = None if args.logdir is None else Path(args.logdir) / Path(run).resolve().name
        outs.append(write_tensorboard(run, log_dir, overwrite=args.overwrite))
        print(f"wrote {outs[-1]}")
    root = args.logdir or (outs[0] if len(outs) == 1 else Path(args.run_dirs[0]).resolve().parent)
    print(f"view with: tensorboard --logdir {root}")
    return 0


HANDLERS: dict[str, Handler] = {
    "plot": cmd_plot,
    "play": cmd_play,
    "report": cmd_report,
    "tensorboard": cmd_tensorboard,
}
