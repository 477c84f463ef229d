"""report.html as a person sees it: opened in headless Chromium, with no network.

Skipped when no Chromium is installed (CI installs Debian's: apt-get install -y chromium).
The run directory is synthetic (no training), with a recognisable colour in each image, so the
screenshot shows whether the curves and the animation were really decoded and drawn."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dqnlab.runtime.rundir import write_marker
from dqnlab.viz.curves import plot_curves
from dqnlab.viz.report import write_report
from dqnlab.viz.video import Episode, write_gif

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((b for b in map(shutil.which, BROWSERS) if b), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium found (CI: apt-get install -y chromium)")

MAGENTA = (255, 0, 255)  # only the animation has it
MPL_BLUE = (31, 119, 180)  # matplotlib's first colour, the training curve: only the curves image has it


def _synthetic_run(run: Path) -> Path:
    run.mkdir()
    write_marker(run, "run")
    (run / "config.yaml").write_text("env:\n  id: CartPole-v1\nseed: 0\n")
    rows = ["kind,env_step,episode,return,length,epsilon,loss,eval_mean,eval_std,wall_seconds"]
    step = 0
    for ep in range(1, 301):
        length = 10 + ep
        step += length
        rows.append(f"train,{step},{ep},{length}.0,{length},{max(0.05, 1 - step / 20000):.4f},0.5,,,{step / 5000:.4f}")
        if ep % 30 == 0:
            rows.append(f"eval,{step},{ep},,,0.1,,{min(500, 2 * length)}.0,12.5,{step / 5000:.4f}")
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    (run / "summary.json").write_text(
        '{"status": "finished", "solved": true, "env_id": "CartPole-v1", '
        '"threshold": 475.0, "eval_mean": 500.0, "eval_std": 0.0, "eval_episodes": 100, '
        f'"best_eval_step": {step}, "env_steps": {step}, "seed": 0}}'
    )
    return run


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: the page must need no network
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([BROWSER, *flags, *args], capture_output=True, text=True, timeout=90)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    run = _synthetic_run(tmp_path_factory.mktemp("browser") / "run")
    curves = plot_curves([run], run / "curves.png")
    frames = [np.full((100, 150, 3), 255, np.uint8) for _ in range(4)]
    for i, f in enumerate(frames):
        f[20:80, 20 + 20 * i : 80 + 20 * i] = MAGENTA
    gif = write_gif(run / "episode.gif", [Episode(0, 3.0, 3, frames)], fps=50, every=1)
    return write_report(run, curves_png=curves, animation_gif=gif, animation_caption="a test animation")


def _near(pixels: np.ndarray, colour: tuple[int, int, int], tol: int = 12) -> int:
    return int((np.abs(pixels.astype(int) - colour).max(axis=-1) <= tol).sum())


def test_report_renders_with_its_images(report, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,2000", report.as_uri(), profile=tmp_path / "p1")
    assert shot.is_file(), "Chromium wrote no screenshot"
    with Image.open(shot) as im:
        assert im.size == (1200, 2000)
        pixels = np.asarray(im.convert("RGB"))
    non_white = (pixels.min(axis=-1) < 235).mean()
    assert non_white > 0.03, f"page looks blank ({non_white:.1%} non-white pixels)"
    assert _near(pixels, MPL_BLUE) > 200, "the learning curves image was not drawn"
    assert _near(pixels, MAGENTA) > 500, "the episode animation was not drawn"


def test_report_dom_embeds_everything(report, tmp_path):
    dom = _chromium("--dump-dom", report.as_uri(), profile=tmp_path / "p2").stdout
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', dom)
    assert len(srcs) == 2
    assert srcs[0].startswith("data:image/png;base64,") and srcs[1].startswith("data:image/gif;base64,")
    assert not re.findall(r"""\s(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", dom, re.I)
    assert "a test animation" in dom and "CartPole-v1" in dom
