"""Learning curves, episode videos, the HTML report and the TensorBoard export (dqnlab.viz).

Pure helpers are checked against hand computations; the rest on two tiny real runs."""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import dqnlab
from dqnlab.core.errors import DqnlabError
from dqnlab.runtime.rundir import write_marker
from dqnlab.viz import write_run_artifacts
from dqnlab.viz.metrics import parse_metrics_rows, read_run_metrics
from dqnlab.viz.output import check_output_path, is_derived_file, write_output
from dqnlab.viz.report import report_html
from dqnlab.viz.series import (
    band_across_runs,
    common_grid,
    ema,
    interp_to_grid,
    last_per_step,
    moving_mean,
    steps_per_second,
)
from dqnlab.viz.video import gif_frame_ms, kept_frame_indices, scaled_size

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# pure helpers


def test_moving_mean_is_trailing_and_shorter_at_the_start():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert moving_mean(x, 2) == pytest.approx([1.0, 1.5, 2.5, 3.5, 4.5])
    assert moving_mean(x, 3) == pytest.approx([1.0, 1.5, 2.0, 3.0, 4.0])
    assert moving_mean(x, 1) == pytest.approx(x)
    assert moving_mean(x, 100) == pytest.approx([1.0, 1.5, 2.0, 2.5, 3.0])
    assert len(moving_mean(np.array([]), 5)) == 0
    with pytest.raises(ValueError):
        moving_mean(x, 0)


def test_ema_starts_from_the_first_value():
    assert ema(np.array([0.0, 10.0, 10.0]), 0.9) == pytest.approx([0.0, 1.0, 1.9])
    assert ema(np.array([10.0, 0.0, 0.0]), 0.9) == pytest.approx([10.0, 9.0, 8.1])
    assert ema(np.array([3.0, 5.0]), 0.0) == pytest.approx([3.0, 5.0])
    with pytest.raises(ValueError):
        ema(np.array([1.0]), 1.0)


def test_last_per_step_keeps_the_latest_value_of_equal_steps():
    s, v = last_per_step(np.array([1, 1, 2, 3, 3]), np.array([10.0, 11.0, 20.0, 30.0, 31.0]))
    assert s.tolist() == [1, 2, 3] and v.tolist() == [11.0, 20.0, 31.0]
    with pytest.raises(ValueError):
        last_per_step(np.array([2, 1]), np.array([0.0, 0.0]))


def test_interp_to_grid_nan_before_and_holds_after():
    out = interp_to_grid(np.array([10, 20]), np.array([0.0, 100.0]), np.array([5, 10, 15, 20, 30]))
    assert np.isnan(out[0])
    assert out[1:] == pytest.approx([0.0, 50.0, 100.0, 100.0])
    # duplicate steps (several environments finishing at once) use the last value
    out = interp_to_grid(np.array([0, 10, 10]), np.array([0.0, 5.0, 20.0]), np.array([5, 10]))
    assert out == pytest.approx([10.0, 20.0])
    assert np.isnan(interp_to_grid(np.array([]), np.array([]), np.array([1.0]))).all()


def test_common_grid_spans_latest_start_to_latest_end():
    a = (np.array([10, 100]), np.array([0.0, 1.0]))
    b = (np.array([20, 50]), np.array([0.0, 1.0]))
    grid = common_grid([a, b], points=5)
    assert grid == pytest.approx([20.0, 40.0, 60.0, 80.0, 100.0])
    assert len(common_grid([(np.array([]), np.array([]))])) == 0


def test_band_across_runs_minmax_and_bootstrap():
    x = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])  # (runs, points)
    mean, low, high = band_across_runs(x, "minmax")
    assert mean == pytest.approx([2.0, 3.0]) and low == pytest.approx([0.0, 1.0]) and high == pytest.approx([4.0, 5.0])
    mean, low, high = band_across_runs(np.tile([[7.0, 8.0]], (4, 1)), "ci95")
    assert low == pytest.approx([7.0, 8.0]) and high == pytest.approx([7.0, 8.0])
    rng = np.random.default_rng(0)
    y = rng.normal(size=(20, 30))
    mean, low, high = band_across_runs(y, "ci95", seed=1)
    assert (low <= mean).all() and (mean <= high).all()
    assert (low >= y.min(axis=0)).all() and (high <= y.max(axis=0)).all()
    assert (high - low).mean() < (y.max(axis=0) - y.min(axis=0)).mean() / 2  # a CI of a mean is narrow
    with pytest.raises(ValueError):
        band_across_runs(x, "bogus")  # type: ignore[arg-type]


def test_steps_per_second():
    assert np.isnan(steps_per_second(np.array([100]), np.array([0.0]))[0])
    assert steps_per_second(np.array([100, 300]), np.array([1.0, 2.0])) == pytest.approx([100.0, 150.0])


def test_kept_frame_indices_always_include_the_last_frame():
    assert kept_frame_indices(5, 2) == [0, 2, 4, 5]
    assert kept_frame_indices(4, 2) == [0, 2, 4]
    assert kept_frame_indices(3, 1) == [0, 1, 2, 3]
    assert kept_frame_indices(0, 3) == [0]
    assert len(kept_frame_indices(500, 2)) == 251


def test_scaled_size_keeps_aspect_never_upscales_and_can_be_even():
    assert scaled_size(600, 400, 300) == (300, 200)
    assert scaled_size(600, 400, 1000) == (600, 400)
    assert scaled_size(600, 400, 301) == (301, 201)
    assert scaled_size(600, 400, 301, even=True) == (300, 200)


def test_gif_frame_time_is_real_time_and_not_too_short():
    assert gif_frame_ms(50, 2) == 40
    assert gif_frame_ms(50, 1) == 20
    with pytest.raises(DqnlabError, match="--every"):
        gif_frame_ms(200, 1)


def test_parse_metrics_rows_skips_confirm_and_reads_blanks_as_nan():
    def row(**kw):
        base = dict.fromkeys(
            (
                "kind",
                "env_step",
                "episode",
                "return",
                "length",
                "epsilon",
                "loss",
                "eval_mean",
                "eval_std",
                "wall_seconds",
            ),
            "",
        )
        return {**base, **kw}

    rows = [
        row(
            kind="train",
            env_step="10",
            episode="1",
            **{"return": "10.0"},
            length="10",
            epsilon="0.9",
            wall_seconds="0.1",
        ),
        row(kind="eval", env_step="20", eval_mean="50.5", eval_std="2.0", epsilon="0.8", wall_seconds="0.2"),
        row(kind="confirm", env_step="20", eval_mean="40.0", eval_std="1.0", wall_seconds="0.2"),
    ]
    a = parse_metrics_rows(rows, "m.csv")
    assert a["train_step"].tolist() == [10] and a["train_return"].tolist() == [10.0]
    assert np.isnan(a["train_loss"][0])
    assert a["eval_step"].tolist() == [20] and a["eval_mean"].tolist() == [50.5] and a["eval_wall"].tolist() == [0.2]
    with pytest.raises(DqnlabError, match="m.csv line 2"):
        parse_metrics_rows([row(kind="nonsense", env_step="1")], "m.csv")
    with pytest.raises(DqnlabError, match="line 3"):
        parse_metrics_rows([rows[0], row(kind="train", env_step="x")], "m.csv")


def test_report_html_escapes_and_embeds_and_fetches_nothing():
    page = report_html(
        "run <1>",
        {"solved": True, "env_id": "CartPole-v1", "eval_mean": 500.0},
        "note: <script>alert(1)</script>\n",
        PNG_MAGIC + b"x",
        b"GIF89a",
        "caption & more",
    )
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'src="data:image/png;base64,' in page and 'src="data:image/gif;base64,' in page
    assert "caption &amp; more" in page and "run &lt;1&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "@import" not in page and "url(" not in page
    empty = report_html("r", None, None, None, None)
    assert "dqnlab plot RUN_DIR" in empty and "dqnlab play RUN_DIR" in empty and "no summary yet" in empty


def test_output_rule_replaces_only_derived_files(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "curves.png").write_bytes(b"old")
    (tmp_path / "mine.png").write_bytes(b"keep")
    # a config.yaml does not make a folder a run: only dqnlab's marker does
    assert not is_derived_file(run / "curves.png")
    with pytest.raises(DqnlabError, match="--overwrite"):
        check_output_path(run / "curves.png", overwrite=False)
    write_marker(run, "run")
    assert is_derived_file(run / "curves.png") and not is_derived_file(tmp_path / "mine.png")
    assert check_output_path(run / "curves.png", overwrite=False) == run / "curves.png"
    with pytest.raises(DqnlabError, match="--overwrite"):
        check_output_path(tmp_path / "mine.png", overwrite=False)
    assert check_output_path(tmp_path / "mine.png", overwrite=True)
    with pytest.raises(DqnlabError, match="does not exist"):
        check_output_path(tmp_path / "nowhere" / "a.png", overwrite=False)
    with pytest.raises(DqnlabError, match="directory"):
        check_output_path(run, overwrite=True)
    with pytest.raises(DqnlabError, match="cannot write"):
        write_output(tmp_path / "mine.png" / "a.png", b"x")  # parent is a file


@pytest.mark.parametrize(
    "argv",
    [
        ["plot", "{run}", "--out", "{run}/policy.pt", "--overwrite"],
        ["play", "{run}", "--gif", "{run}/metrics.csv", "--overwrite"],
        ["export", "{run}", "--onnx", "{run}/checkpoint.pt", "--overwrite"],
        ["export", "{run}", "--torchscript", "{run}/.dqnlab"],
    ],
    ids=["plot", "play", "export-onnx", "export-marker"],
)
def test_no_output_replaces_a_runs_records_even_with_overwrite(run, capsys, argv):
    """Before: `plot RUN --out RUN/policy.pt --overwrite` wrote a PNG over the delivered policy."""
    from dqnlab.cli.main import main

    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main([a.format(run=run) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dqnlab: error: ") and "\n" not in err, err
    assert f"is a record of the dqnlab run in {run}; write the output elsewhere" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_a_comparisons_records_are_refused_as_outputs_and_its_curves_replaced(tmp_path):
    out = tmp_path / "cmp"
    out.mkdir()
    write_marker(out, "compare")
    (out / "compare.json").write_text("{}")
    with pytest.raises(DqnlabError, match="record of the dqnlab compare"):
        check_output_path(out / "compare.json", overwrite=True)
    with pytest.raises(DqnlabError, match="record of the dqnlab compare"):
        check_output_path(out / ".dqnlab.lock", overwrite=True)
    assert check_output_path(out / "curves.png", overwrite=True) == out / "curves.png"
    with pytest.raises(DqnlabError, match="record of the dqnlab compare"):  # also for a caller that skips the check
        write_output(out / "compare.json", b"x")
    assert (out / "compare.json").read_text() == "{}"


def test_importing_dqnlab_and_the_viz_modules_stays_light():
    code = (
        "import sys, dqnlab, dqnlab.viz, dqnlab.cli.viz, dqnlab.viz.curves, dqnlab.viz.video, "
        "dqnlab.viz.report, dqnlab.viz.tensorboard; "
        "heavy = [m for m in ('matplotlib', 'PIL', 'pygame', 'imageio_ffmpeg', 'tensorboard') "
        "if m in sys.modules]; "
        "print(heavy); assert not heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)


# ---------------------------------------------------------------------------------------------
# episode frames: dqnlab's rasteriser against Gymnasium's pygame frames, labels, the GIF encoding


def _scene_masks(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Pixels that a shape covers about half of or more, by colour (H, W, 3): the cart is black,
    the pole much redder than blue, the target line (220, 40, 40) much redder than green."""
    c = rgb.astype(np.float64)
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    return {
        "cart": c.max(axis=-1) < 100,
        "pole": (r - b > 50) & (g - b > 25),
        "target": (r - g > 90) & (g - b < 25),
    }


@pytest.mark.parametrize("env_id", ["CartPole-v1", "dqnlab/CartPoleTarget-v0"])
@pytest.mark.parametrize("width", [300, 150, 600])
def test_scene_frames_are_gymnasiums_frames_downscaled(env_id, width):
    """Over many states (the cart anywhere on and a little off the screen, the pole up to twice
    the termination angle), dqnlab's frame at `width` px and Gymnasium's 600 x 400 frame
    downscaled by Pillow's box filter (= area coverage) are the same picture: under one gray level
    apart on average, and the cart, pole and target masks overlap with IoU >= 0.9. (The frames
    differ at the shapes' edges: pygame does not antialias its polygons.)"""
    pytest.importorskip("pygame")
    from PIL import Image

    from dqnlab.viz import scene

    size = (width, width * 2 // 3)
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    assert scene.can_draw(env)
    rng = np.random.default_rng(5)
    inter: dict[str, int] = {}
    union: dict[str, int] = {}
    errors = []
    try:
        for _ in range(60):
            env.unwrapped.state = np.array([rng.uniform(-2.6, 2.6), 0.0, rng.uniform(-0.42, 0.42), 0.0])
            if env_id != "CartPole-v1":
                env.unwrapped.target = float(rng.uniform(-1.5, 1.5))
            theirs = np.asarray(Image.fromarray(env.render()).resize(size, Image.Resampling.BOX))
            ours = scene.draw_frames(np.array([scene.scene_state(env)]), size, scene.pole_length(env))[0]
            assert ours.shape == (size[1], size[0], 3) and ours.dtype == np.uint8
            errors.append(np.abs(theirs.astype(float) - ours).mean())
            a, b = _scene_masks(theirs), _scene_masks(ours)
            for name in a:
                inter[name] = inter.get(name, 0) + int((a[name] & b[name]).sum())
                union[name] = union.get(name, 0) + int((a[name] | b[name]).sum())
    finally:
        env.close()
    # the target line is 2 screen pixels wide: at 150 px it half covers one column, no mask to compare
    shapes = ("cart", "pole") if env_id == "CartPole-v1" or width < 300 else ("cart", "pole", "target")
    for name in shapes:
        assert inter[name] / union[name] >= 0.9, name
    assert np.mean(errors) < 0.5 and np.max(errors) < 1.0


def test_scene_draws_cartpole_and_the_target_task_only():
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    from dqnlab.viz import scene

    class OwnPicture(CartPoleEnv):  # a subclass may draw its own way: Gymnasium's render() it is
        pass

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CartPole-v0's deprecation notice
        drawn = [
            gym.make(i, render_mode="rgb_array") for i in ("CartPole-v0", "CartPole-v1", "dqnlab/CartPoleTarget-v0")
        ]
    assert all(scene.can_draw(env) for env in drawn)
    assert not scene.can_draw(gym.make("Acrobot-v1", render_mode="rgb_array"))
    assert not scene.can_draw(OwnPicture(render_mode="rgb_array"))
    assert scene.pole_length(drawn[1]) == pytest.approx(125.0)


def test_label_looks_like_pillows_stroked_text():
    """draw_label's outline (the text's mask widened) against Pillow's stroked text."""
    from PIL import Image, ImageDraw, ImageFont

    from dqnlab.viz.video import draw_label

    for width in (150, 300, 600):
        frame = np.full((width * 2 // 3, width, 3), 255, dtype=np.uint8)
        frame[:, width // 3 :] = (202, 152, 101)  # half light, half the pole's colour
        frame[::5] = 0  # and black lines through the text
        font_px = max(10, width // 22)
        img = Image.fromarray(frame)
        ImageDraw.Draw(img).text(
            (font_px // 2, font_px // 3),
            "step 498   return 498",
            fill=(0, 0, 0),
            font=ImageFont.load_default(size=font_px),
            stroke_width=max(1, font_px // 7),
            stroke_fill=(255, 255, 255),
        )
        ours = frame.copy()
        draw_label(ours, "step 498   return 498")
        changed = (np.asarray(img) != frame).any(axis=-1) | (ours != frame).any(axis=-1)
        assert changed.sum() > 100  # both drew something
        assert np.abs(np.asarray(img).astype(float) - ours)[changed].mean() < 40, width


def test_text_mask_is_pillows_text_from_cached_glyphs():
    from PIL import Image, ImageDraw, ImageFont

    from dqnlab.viz.video import text_mask

    for font_px in (10, 13, 27):
        for text in ("step 500   return 500", "episode 2/3   step 41   return -12.5"):
            ours = text_mask(text, font_px)
            img = Image.new("L", (ours.shape[1] + 8, ours.shape[0] + 8), 0)
            ImageDraw.Draw(img).text((0, 0), text, fill=255, font=ImageFont.load_default(size=font_px))
            theirs = np.asarray(img, dtype=np.float32) / 255
            assert theirs[ours.shape[0] :].max() == 0 and theirs[:, ours.shape[1] :].max() == 0  # nothing cut off
            diff = np.abs(theirs[: ours.shape[0], : ours.shape[1]] - ours)
            assert diff.max() < 0.15 and diff.sum() < 0.5, (font_px, text)  # a few pixels where glyphs touch


def test_gif_is_its_palette_frames_exactly_with_their_durations():
    """The GIF decodes to every frame in the one palette (the unchanged-pixel transparency and
    Pillow's cropping lose nothing), frame for frame, with real-time and end-hold durations."""
    from PIL import Image

    from dqnlab.viz.video import END_HOLD_MS, Episode, gif_bytes

    rng = np.random.default_rng(0)
    frames = np.full((9, 40, 60, 3), 255, dtype=np.uint8)
    for j, f in enumerate(frames):  # a moving block, a changing corner, some still noise
        f[10:20, 5 + 4 * j : 15 + 4 * j] = (202, 152, 101)
        f[:3, :3] = (j * 25, 0, 0)
        f[30:, :10] = rng.integers(0, 255, (10, 10, 3)) if j % 4 == 0 else f[30:, :10]
    for j in range(1, len(frames)):
        if j % 4:
            frames[j, 30:, :10] = frames[j - 1, 30:, :10]
    episodes = [Episode(0, 1.0, 5, list(frames[:5])), Episode(1, 1.0, 3, list(frames[5:]))]
    with Image.open(io.BytesIO(gif_bytes(episodes, frame_ms=40))) as im:
        assert im.n_frames == 9
        palette = im.copy()  # frame 0, in the GIF's one palette
        decoded, durations = [], []
        for k in range(im.n_frames):
            im.seek(k)
            decoded.append(np.asarray(im.convert("RGB")))
            durations.append(im.info["duration"])
    assert durations == [40, 40, 40, 40, END_HOLD_MS, 40, 40, 40, END_HOLD_MS]
    for k, (got, frame) in enumerate(zip(decoded, frames, strict=True)):
        want = Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE).convert("RGB")
        assert np.array_equal(got, np.asarray(want)), k


# ---------------------------------------------------------------------------------------------
# on real (tiny) runs


def _train(run_dir: Path, seed: int) -> Path:
    cfg = dqnlab.build_config(
        seed=seed,
        total_steps=1500,
        **{
            "eval.every_steps": 500,
            "eval.episodes": 3,
            "eval.final_episodes": 3,
            "dqn.learning_starts": 300,
            "artifacts": False,
        },
    )
    dqnlab.train(cfg, run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("viz")
    return [_train(root / "seed-0", 0), _train(root / "seed-1", 1)]


@pytest.fixture
def run(runs, tmp_path) -> Path:
    """A private copy of a finished run, so a test may write into it."""
    return Path(shutil.copytree(runs[0], tmp_path / "run"))


def _episode_length(policy, seed: int) -> int:
    """The reference: the policy's episode on a plain (non-rendering) environment."""
    env = gym.make(policy.env_id)
    obs, _ = env.reset(seed=seed)
    steps, done = 0, False
    while not done:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        steps += 1
        done = terminated or truncated
    env.close()
    return steps


def _gif_frames(path: Path) -> tuple[int, tuple[int, int]]:
    from PIL import Image

    with Image.open(path) as im:
        return im.n_frames, im.size


def _viz_cli(argv: list[str]) -> int:
    """The viz commands as dqnlab's CLI parses them (whether or not dqnlab.cli.main wires them yet)."""
    from dqnlab.cli.argtypes import Parser as _Parser
    from dqnlab.cli.viz import add_commands

    parser = _Parser(prog="dqnlab")
    handlers = add_commands(parser.add_subparsers(dest="command", required=True, parser_class=_Parser))
    args: argparse.Namespace = parser.parse_args(argv)
    return handlers[args.command](args)


def test_write_run_artifacts_writes_valid_small_files(run):
    paths = write_run_artifacts(run)
    assert [p.name for p in paths] == ["curves.png", "episode.gif", "report.html"]
    png, gif, report = (p.read_bytes() for p in paths)
    assert png.startswith(PNG_MAGIC) and 20_000 < len(png) < 1_000_000
    assert gif.startswith(b"GIF89a") and len(gif) < 3_000_000
    length = _episode_length(dqnlab.load_policy(run), seed=0)
    frames, size = _gif_frames(paths[1])
    assert frames == len(kept_frame_indices(length, 2)) and frames > 1
    assert size == (300, 200)
    page = report.decode("utf-8")
    assert page.count('src="data:image/png;base64,') == 1 and page.count('src="data:image/gif;base64,') == 1
    assert f"{length} steps" in page and "CartPole-v1" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    # regenerating replaces the derived files without --overwrite
    assert [p.name for p in write_run_artifacts(run, gif=False)] == ["curves.png", "report.html"]
    assert "dqnlab play RUN_DIR" in (run / "report.html").read_text()


def test_play_writes_a_gif_with_one_frame_per_kept_step(run, tmp_path, capsys):
    out = tmp_path / "two.gif"
    assert (
        _viz_cli(
            ["play", str(run), "--episodes", "2", "--seed", "5", "--every", "3", "--width", "150", "--gif", str(out)]
        )
        == 0
    )
    policy = dqnlab.load_policy(run)
    lengths = [_episode_length(policy, 5), _episode_length(policy, 6)]
    frames, size = _gif_frames(out)
    assert frames == sum(len(kept_frame_indices(n, 3)) for n in lengths)
    assert size == (150, 100)
    assert f"return {lengths[0]} in {lengths[0]} steps" in capsys.readouterr().out
    with pytest.raises(DqnlabError, match="already exists"):
        _viz_cli(["play", str(run), "--gif", str(out)])
    assert _viz_cli(["play", str(run), "--gif", str(out), "--overwrite"]) == 0
    assert _viz_cli(["play", str(run)]) == 0  # default: the run's own episode.gif
    assert (run / "episode.gif").read_bytes().startswith(b"GIF89a")


def test_play_mp4(run, tmp_path, monkeypatch):
    out = tmp_path / "e.mp4"
    if importlib.util.find_spec("imageio_ffmpeg") is not None:
        assert _viz_cli(["play", str(run), "--mp4", str(out)]) == 0
        assert out.read_bytes()[4:8] == b"ftyp"
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if the extra were not installed
    with pytest.raises(DqnlabError, match=r"dqnlab\[video\]"):
        _viz_cli(["play", str(run), "--mp4", str(tmp_path / "f.mp4")])


def _untrained_policy(env_id: str, obs_dim: int, n_actions: int):
    import torch

    from dqnlab.config import NetworkConfig
    from dqnlab.runtime.policy import Policy

    torch.manual_seed(0)
    return Policy(torch.nn.Linear(obs_dim, n_actions), env_id, (obs_dim,), n_actions, NetworkConfig())


def test_other_environments_keep_gymnasiums_render():
    """An environment dqnlab does not draw itself is rendered by Gymnasium and downscaled, with
    the same frame rule."""
    pytest.importorskip("pygame")
    from dqnlab.viz.video import record_episodes

    (episode,) = record_episodes(_untrained_policy("Acrobot-v1", 6, 3), seed=0, every=50, width=100)
    assert len(episode.frames) == len(kept_frame_indices(episode.length, 50))
    assert {f.shape for f in episode.frames} == {(100, 100, 3)}


def _classic_control_requirement() -> str:
    """pyproject.toml's requirement that brings pygame: Gymnasium's classic-control extra (it
    installs pygame up to Gymnasium 1.2 and pygame-ce from 1.3, so "pygame" itself is not it)."""
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    (requirement,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("gymnasium[classic-control]")]
    return requirement


def test_cartpole_gifs_need_no_pygame_and_other_renders_say_so(run, tmp_path, monkeypatch):
    from dqnlab.viz.video import record_episodes

    # before: the hint said pip install "pygame>=2.1", which is not what dqnlab depends on
    hint = re.escape(f'pip install "{_classic_control_requirement()}"')
    monkeypatch.setitem(sys.modules, "pygame", None)  # as if it were not installed
    assert _viz_cli(["play", str(run), "--gif", str(tmp_path / "x.gif")]) == 0  # CartPole: dqnlab draws it
    with pytest.raises(DqnlabError, match=hint):
        record_episodes(_untrained_policy("Acrobot-v1", 6, 3))
    monkeypatch.setenv("DISPLAY", ":0")
    with pytest.raises(DqnlabError, match=hint):
        _viz_cli(["play", str(run), "--human"])


def test_play_human_without_display_is_a_clear_error(run, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(DqnlabError, match="needs a display"):
        _viz_cli(["play", str(run), "--human"])


def test_play_human_runs_the_episodes(run, monkeypatch, capsys):
    monkeypatch.setenv("DISPLAY", ":0")  # pretend to have one; SDL's dummy driver opens no real window
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    assert _viz_cli(["play", str(run), "--human", "--fps", "10000", "--episodes", "2"]) == 0
    length = _episode_length(dqnlab.load_policy(run), 1)
    assert f"episode 2 (seed 1): return {length} in {length} steps" in capsys.readouterr().out


def test_plot_one_and_several_runs(runs, tmp_path):
    out = tmp_path / "two.png"
    assert _viz_cli(["plot", *map(str, runs), "--out", str(out)]) == 0
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert _viz_cli(["plot", *map(str, runs), "--out", str(out), "--band", "minmax", "--overwrite"]) == 0
    with pytest.raises(DqnlabError, match="already exists"):
        _viz_cli(["plot", *map(str, runs), "--out", str(out)])
    copies = [shutil.copytree(r, tmp_path / "runs" / r.name) for r in runs]
    assert _viz_cli(["plot", *map(str, copies)]) == 0  # default: next to the runs
    assert (tmp_path / "runs" / "curves.png").read_bytes().startswith(PNG_MAGIC)
    assert _viz_cli(["plot", str(copies[0])]) == 0
    assert (Path(copies[0]) / "curves.png").read_bytes().startswith(PNG_MAGIC)


def test_bad_inputs_are_one_line_errors(runs, tmp_path):
    missing = str(tmp_path / "missing")
    for argv in (
        ["plot", missing],
        ["play", missing],
        ["report", missing],
        ["plot", missing, str(runs[0]), "--out", str(tmp_path / "x.png")],
    ):
        with pytest.raises(DqnlabError, match="not found") as err:
            _viz_cli(argv)
        assert "\n" not in str(err.value)
    no_metrics = tmp_path / "empty-run"
    no_metrics.mkdir()
    (no_metrics / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(DqnlabError, match="no metrics.csv"):
        _viz_cli(["plot", str(no_metrics), "--out", str(tmp_path / "y.png")])
    no_policy = Path(shutil.copytree(runs[0], tmp_path / "no-policy"))
    (no_policy / "policy.pt").unlink()
    with pytest.raises(DqnlabError, match="no policy.pt"):
        _viz_cli(["play", str(no_policy)])
    with pytest.raises(DqnlabError, match="no policy.pt"):
        write_run_artifacts(no_policy)
    assert not (no_policy / "curves.png").exists()  # nothing written before the refusal
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(DqnlabError, match="cannot write"):
        _viz_cli(["plot", str(runs[0]), "--out", str(blocker / "curves.png")])
    damaged = Path(shutil.copytree(runs[0], tmp_path / "damaged"))
    with open(damaged / "metrics.csv", "a") as f:
        f.write("train,notanumber,1,1,1,1,,,,1\n")
    with pytest.raises(DqnlabError, match="damaged"):
        read_run_metrics(damaged)
    with pytest.raises(DqnlabError, match="different folders"):
        _viz_cli(["plot", str(runs[0]), str(damaged)])


def test_main_cli_prints_viz_errors_on_one_line(tmp_path, capsys):
    from dqnlab.cli.main import build_parser, main

    if "plot" not in build_parser().format_help():
        pytest.skip("dqnlab.cli.main does not register the viz commands yet (see dqnlab.cli.viz.add_commands)")
    assert main(["plot", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip() == f"dqnlab: error: run directory not found: {tmp_path / 'missing'}"


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed")
def test_tensorboard_export_uses_fixed_metric_names(run, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert _viz_cli(["tensorboard", str(run)]) == 0
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"charts/episodic_return", "eval/mean_return", "losses/td_loss", "charts/epsilon", "charts/sps"} <= tags
    train_rows = sum(1 for line in (run / "metrics.csv").read_text().splitlines() if line.startswith("train,"))
    assert len(acc.Scalars("charts/episodic_return")) == train_rows
    summary = json.loads((run / "summary.json").read_text())
    assert acc.Scalars("eval/mean_return")[-1].step <= summary["env_steps"]
    # a second export replaces the first (one events file, not two)
    assert _viz_cli(["tensorboard", str(run)]) == 0
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert _viz_cli(["tensorboard", str(run), "--logdir", str(tmp_path / "tb")]) == 0
    with pytest.raises(DqnlabError, match="--overwrite"):
        _viz_cli(["tensorboard", str(run), "--logdir", str(tmp_path / "tb")])


def test_tensorboard_missing_is_a_clear_error(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(DqnlabError, match=r'pip install "dqnlab\[tensorboard\]"'):
        _viz_cli(["tensorboard", str(run)])


def _panel_titles(run_dir: Path) -> list[str]:
    from dqnlab.viz.curves import run_figure

    # A second y-axis (success rate, |Q|) shares its panel and has no title of its own.
    return [ax.get_title() for ax in run_figure(read_run_metrics(run_dir)).axes if ax.get_title()]


def _y_labels(run_dir: Path) -> list[str]:
    from dqnlab.viz.curves import run_figure

    return [ax.get_ylabel() for ax in run_figure(read_run_metrics(run_dir)).axes]


def test_ppo_curves_warn_nothing_and_name_their_loss(tmp_path, tiny):
    """PPO has no epsilon and its loss is not a TD loss: no empty epsilon panel, no 'TD loss',
    and no RuntimeWarning (once 'All-NaN slice encountered' from the empty epsilon column)."""
    from dqnlab.viz.curves import plot_curves

    run = tmp_path / "ppo"
    dqnlab.train(tiny(preset="ppo", total_steps=1500, **{"eval.every_steps": 500}), run, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        assert plot_curves([run], tmp_path / "ppo.png").read_bytes().startswith(PNG_MAGIC)
        titles = _panel_titles(run)
    assert titles == [
        "Training episodes",
        "Greedy evaluation",
        "PPO loss: clipped surrogate + value − entropy (at each episode end)",
    ]


def test_each_algorithm_draws_the_panels_it_has(runs, tmp_path, tiny):
    assert _panel_titles(runs[0])[2:] == ["TD loss (at each episode end)", "Exploration"]
    assert "max |Q|" in _y_labels(runs[0])  # DQN's Q scale beside its loss: the divergence guard's curve
    dqnlab.train(tiny(preset="tabular", total_steps=1500), tmp_path / "tabular", progress=False)
    assert _panel_titles(tmp_path / "tabular") == ["Training episodes", "Greedy evaluation", "Exploration"]
    assert "max |Q|" not in _y_labels(tmp_path / "tabular")
    dqnlab.train(tiny(preset="lqr", total_steps=1500), tmp_path / "lqr", progress=False)
    assert _panel_titles(tmp_path / "lqr") == ["Training episodes", "Greedy evaluation"]
    # a run in progress (no summary.json yet) is read by its config.yaml's algo
    (tmp_path / "tabular" / "summary.json").unlink()
    assert read_run_metrics(tmp_path / "tabular").algo == "tabular"


@pytest.mark.parametrize("command", ["plot", "play", "report"])
def test_each_viz_command_states_the_overwrite_rule_in_its_help(command, capsys):
    from dqnlab.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "a run's own curves.png, episode.gif and report.html are derived from the run and rewritten" in text
    assert "any other existing file (named with --out, --gif or --mp4) is replaced only with --overwrite" in text


def test_episodes_run_on_the_environment_the_run_evaluated_on(monkeypatch):
    """GIFs and `play` use the run's own time limit and env kwargs (Policy.evaluation_env), as
    `dqnlab evaluate` does; before, they used the registered ones (the target task's default
    margin, CartPole-v0's 200 steps for a run capped at 10,000)."""
    import gymnasium as gym
    import torch

    from dqnlab.config import NetworkConfig
    from dqnlab.envs.target import ENV_ID
    from dqnlab.runtime.policy import Policy
    from dqnlab.viz.video import record_episodes

    made = []
    real_make = gym.make

    def spy(*args, **kwargs):
        made.append(real_make(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(gym, "make", spy)
    torch.manual_seed(0)
    net = torch.nn.Linear(5, 2)
    torch.nn.init.zeros_(net.weight)
    torch.nn.init.zeros_(net.bias)  # always action 0 (argmax of a tie): the pole falls after some 10 steps
    eval_env = {"max_episode_steps": 3, "kwargs": {"margin": 0.25}}
    policy = Policy(net, ENV_ID, (5,), 2, NetworkConfig(), extra={"eval_env": eval_env})
    (episode,) = record_episodes(policy, seed=0, every=1, width=100)
    assert episode.length == 3  # the run's limit, not the registered 500
    assert made[-1].unwrapped.margin == 0.25  # the run's margin, not the default 0.5
    (default,) = record_episodes(Policy(net, ENV_ID, (5,), 2, NetworkConfig()), seed=0, every=1, width=100)
    assert default.length > 3 and made[-1].unwrapped.margin == 0.5


def test_play_max_steps_ends_episodes_early(run, tmp_path, capsys):
    from dqnlab.algos.registry import load_policy
    from dqnlab.cli.argtypes import MAX_PLAY_STEPS
    from dqnlab.viz.video import MAX_STEPS

    assert MAX_PLAY_STEPS == MAX_STEPS  # the flag's bound is the renderer's
    assert _episode_length(load_policy(run), 0) > 3  # so that the cut is what ends it
    gif = tmp_path / "short.gif"
    assert _viz_cli(["play", str(run), "--gif", str(gif), "--max-steps", "3"]) == 0
    assert "in 3 steps" in capsys.readouterr().out
    assert _gif_frames(gif)[0] == len(kept_frame_indices(3, 2))  # frames 0, 2 and the last
    with pytest.raises(DqnlabError, match="--max-steps: expected a number <= 10000"):
        _viz_cli(["play", str(run), "--gif", str(gif), "--max-steps", str(MAX_STEPS + 1), "--overwrite"])


def test_report_gif_stops_at_its_cap_and_says_so(run, monkeypatch):
    """A run evaluated on episodes longer than REPORT_GIF_STEPS gets a GIF of its first steps,
    and the caption says where it was cut."""
    import dqnlab.algos.registry as registry
    import dqnlab.viz as viz
    from dqnlab.runtime.policy import Policy

    real = registry.load_policy

    def long_limit(path):
        p = real(path)
        extra = {**p.extra, "eval_env": {"max_episode_steps": 600}}
        return Policy(p.net, p.env_id, p.obs_shape, p.n_actions, p.network, p.algo, extra=extra)

    monkeypatch.setattr(registry, "load_policy", long_limit)
    monkeypatch.setattr(viz, "REPORT_GIF_STEPS", 3)
    _, gif, report = viz.write_run_artifacts(run)
    assert _gif_frames(gif)[0] == len(kept_frame_indices(3, 2))
    assert "in 3 steps (shown to step 3 of its 600-step limit)" in report.read_text()
