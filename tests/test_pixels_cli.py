"""A tiny pixel training run through the real command line, then evaluate and play its policy."""

import json
import os
import subprocess
import sys

import pytest
import torch


def run_cli(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "dqnlab", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_pixels_preset_trains_evaluates_and_plays(tmp_path):
    run = tmp_path / "run"
    code, out, err = run_cli(
        "train",
        "--preset",
        "pixels",
        "--run-dir",
        str(run),
        "--quiet",
        "--set",
        "total_steps=300",
        "--set",
        "dqn.learning_starts=100",
        "--set",
        "eval.episodes=2",
        "--set",
        "eval.final_episodes=2",
        "--set",
        "artifacts=false",
    )
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] >= 300 and summary["grad_steps"] > 0 and summary["eval_episodes"] == 2
    code, out, err = run_cli("evaluate", str(run), "--episodes", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["episodes"] == 3
    pytest.importorskip("pygame")
    code, out, err = run_cli("play", str(run), "--gif", str(tmp_path / "ep.gif"))
    assert code == 0, err
    assert (tmp_path / "ep.gif").read_bytes().startswith(b"GIF")


def test_pixels_with_another_algorithm_is_one_error_line():
    code, out, err = run_cli("train", "--preset", "ppo", "--set", "env.pixels.mode=track", "--total-steps", "10")
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dqnlab: error: ") and "env.pixels is for algo dqn" in lines[0]


def test_bench_pixels_runs(tmp_path):
    pytest.importorskip("pygame")
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/bench_pixels.py", "--seconds", "0.01", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["what"].startswith("gymnasium render") and all(r["fps"] > 0 for r in rows)


def test_pixel_run_resumes_exactly(tmp_path):
    """The frame history is part of the checkpoint: stopping and resuming changes nothing."""
    import dqnlab
    from dqnlab.core.fileio import safe_torch_load

    cfg = dqnlab.build_config(
        preset="pixels",
        seed=2,
        total_steps=600,
        checkpoint_every=300,
        artifacts=False,
        **{
            "dqn.learning_starts": 200,
            "dqn.buffer_size": 1000,
            "eval.every_steps": 300,
            "eval.episodes": 2,
            "eval.final_episodes": 2,
            "eval.early_stop": False,
            "env.num_envs": 4,
        },
    )
    dqnlab.train(cfg, tmp_path / "straight", progress=False)
    dqnlab.train(cfg, tmp_path / "split", progress=False, total_steps=300)
    dqnlab.train(run_dir=tmp_path / "split", resume=True, progress=False, total_steps=600)

    def rows(run):
        lines = (run / "metrics.csv").read_text().splitlines()
        return [line.rsplit(",", 1)[0] for line in lines]  # without wall_seconds

    assert rows(tmp_path / "straight") == rows(tmp_path / "split")
    a = safe_torch_load(tmp_path / "straight" / "checkpoint.pt", "checkpoint")["algo_state"]["learner"]["online"]
    b = safe_torch_load(tmp_path / "split" / "checkpoint.pt", "checkpoint")["algo_state"]["learner"]["online"]
    assert all(torch.equal(a[k], b[k]) for k in a)
