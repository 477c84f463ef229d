"""Seeing the agent and its learning: curves, episode animations, an HTML report, TensorBoard.

    metrics.py      metrics.csv (+ summary.json, config.yaml) -> typed arrays
    series.py       pure math: moving mean, EMA, a common env-step grid, bands across runs
    curves.py       learning curves as PNG (one run, or several with a band)
    chart.py        the plotter curves.py draws with: Pillow, matplotlib's names, about 0.05 s a figure
    video.py        the delivered policy rendered to GIF / MP4, or shown in a window
    scene.py        CartPole frames drawn from states (dqnlab's rasteriser), for video.py
    report.py       report.html, self-contained (images as data: URIs, no network)
    tensorboard.py  metrics.csv -> TensorBoard event files (optional extra)
    output.py       the overwrite rule and atomic writes of these files

Everything heavy (matplotlib, Pillow, pygame, ffmpeg) is imported only when used, so importing
this package costs nothing.
"""

from __future__ import annotations

from pathlib import Path

from dqnlab.core.errors import DqnlabError
from dqnlab.viz.output import CURVES_FILE, EPISODE_GIF_FILE, REPORT_FILE

__all__ = ["CURVES_FILE", "EPISODE_GIF_FILE", "REPORT_FILE", "REPORT_GIF_STEPS", "write_run_artifacts"]

# The report's episode stops here: a run with 10,000-step episodes (long-horizon presets, S1's
# uncapped v0) would otherwise draw a 5,000-frame GIF, 20 times a 500-step one, at the end of every run.
REPORT_GIF_STEPS = 1_000


def write_run_artifacts(run_dir: Path, gif: bool = True, seed: int = 0) -> list[Path]:
    """Write curves.png, episode.gif (if `gif`) and report.html into the finished run directory
    `run_dir`, replacing earlier versions, and return their paths in that order.

    The GIF is one greedy episode of the delivered policy (policy.pt) reset with `seed`, on the
    environment its run evaluated on, shown for at most REPORT_GIF_STEPS steps, every 2nd frame
    at 300 px wide: under 0.3 MB for a 500-step CartPole episode. Raises DqnlabError if the run directory, its metrics.csv or (with `gif`) its
    policy.pt is missing or damaged, or a file cannot be written."""
    from dqnlab.algos.registry import load_policy
    from dqnlab.runtime.rundir import MARKER_FILE, is_run_dir
    from dqnlab.viz.curves import plot_curves
    from dqnlab.viz.report import write_report
    from dqnlab.viz.video import GIF_EVERY, GIF_WIDTH, default_fps, record_episodes, write_gif

    run = Path(run_dir)
    if not run.is_dir():
        raise DqnlabError(f"run directory not found: {run}")
    if not is_run_dir(run):  # these files replace their earlier versions: only in a folder that is ours
        raise DqnlabError(f"{run} is not a dqnlab run directory (no {MARKER_FILE} marker)")
    policy = load_policy(run) if gif else None  # before writing anything: all or nothing refused
    written = [plot_curves([run], run / CURVES_FILE)]
    animation, caption = None, ""
    if policy is not None:
        episodes = record_episodes(
            policy, episodes=1, seed=seed, every=GIF_EVERY, width=GIF_WIDTH, max_steps=REPORT_GIF_STEPS
        )
        animation = write_gif(run / EPISODE_GIF_FILE, episodes, default_fps(policy.env_id), GIF_EVERY)
        written.append(animation)
        ep = episodes[0]
        limit = policy.evaluation_env().get("max_episode_steps") or 0
        cut = ep.length >= REPORT_GIF_STEPS and limit > REPORT_GIF_STEPS
        caption = (
            f"One greedy episode of the delivered policy (policy.pt) on {policy.env_id}, reset with seed "
            f"{ep.seed}: return {ep.total_return:g} in {ep.length} steps"
            + (f" (shown to step {REPORT_GIF_STEPS:,} of its {limit:,}-step limit)" if cut else "")
            + f". Real time, one frame every {GIF_EVERY} steps."
        )
    written.append(write_report(run, curves_png=written[0], animation_gif=animation, animation_caption=caption))
    return written
