"""`dqnlab sweep`: Optuna search over configs, scored on seeds; resumes; refuses bad search spaces."""

import csv
import json
import os

import pytest

from dqnlab.cli.main import main
from dqnlab.config import build_config
from dqnlab.experiments.sweep import load_search_space, seed_cost, sweep, trial_score

optuna = pytest.importorskip("optuna")

SPACE = """\
preset: default
fixed:
  total_steps: 1500
  eval.every_steps: 500
  eval.episodes: 3
  eval.final_episodes: 3
  eval.threshold: 30        # low, so that some tiny runs reach it and the scores differ
  dqn.learning_starts: 200
  artifacts: false
params:
  dqn.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
  dqn.batch_size: {type: categorical, choices: [32, 64]}
  network.hidden: {type: categorical, choices: [[32, 32], [64]]}
  dqn.target_update_every: {type: int, low: 10, high: 100, log: true}
"""


def _trials(out):
    with open(out / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_score_is_the_iqm_of_steps_to_solve_with_a_penalty():
    assert seed_cost(504, 1500) == 504.0
    assert seed_cost(None, 1500) == 3000.0
    assert trial_score([100.0, 200.0, 300.0, 10_000.0]) == 250.0  # the IQM ignores the outlying seed
    assert trial_score([500.0, 3000.0]) == 1750.0


def test_sweep_runs_writes_best_yaml_and_resumes_after_a_kill(tmp_path, monkeypatch, capsys):
    space_file = tmp_path / "space.yaml"
    space_file.write_text(SPACE)
    out = tmp_path / "sw"
    cmd = ["sweep", str(space_file), "--seeds", "2", "--out", str(out), "--workers", "1", "--quiet"]
    assert main([*cmd, "--trials", "2"]) == 0
    rows = _trials(out)
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]
    assert (out / "study.db").is_file()
    best = build_config(config_file=out / "best.yaml")  # usable with dqnlab train --config
    assert best.total_steps == 1500 and best.eval.threshold == 30
    assert best.dqn.lr == pytest.approx(float(min(rows, key=lambda r: float(r["score"]))["dqn.lr"]))
    first = (out / "trial-0" / "seed-0" / "summary.json").stat().st_mtime_ns

    # A sweep killed in trial 2: seed 0 finished, seed 1's run left unfinished (no summary).
    import dqnlab.experiments.runs as runs_mod

    real_run_jobs, calls = runs_mod.run_jobs, []

    def dying_run_jobs(jobs, *args, **kwargs):
        calls.append(jobs)
        real_run_jobs(jobs, *args, **kwargs)
        if len(calls) == 2:
            (out / "trial-2" / "seed-1" / "summary.json").unlink()
            raise KeyboardInterrupt

    monkeypatch.setattr(runs_mod, "run_jobs", dying_run_jobs)
    with pytest.raises(KeyboardInterrupt):
        sweep(load_search_space(space_file), 3, 2, out, workers=1)
    monkeypatch.undo()
    killed = (out / "trial-2" / "seed-0" / "summary.json").stat().st_mtime_ns
    study = optuna.load_study(study_name="dqnlab-sweep", storage=f"sqlite:///{out / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "RUNNING"]
    assert study.trials[2].user_attrs["pid"] == os.getpid()

    capsys.readouterr()
    assert main([*cmd, "--trials", "3"]) == 0  # the same command: trial 2 is taken over, nothing retrained
    rows = _trials(out)
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3
    assert (out / "trial-0" / "seed-0" / "summary.json").stat().st_mtime_ns == first
    assert (out / "trial-2" / "seed-0" / "summary.json").stat().st_mtime_ns == killed
    resumed = json.loads((out / "trial-2" / "seed-1" / "summary.json").read_text())
    assert resumed["status"] == "finished"
    assert sorted(p.name for p in out.iterdir()) == [
        ".dqnlab",
        ".dqnlab.lock",
        "best.yaml",
        "study.db",
        "trial-0",
        "trial-1",
        "trial-2",
        "trials.csv",
    ]
    # a different search space in the same folder is refused, not mixed in
    space_file.write_text(SPACE.replace("high: 1.0e-2", "high: 2.0e-2"))
    assert main([*cmd, "--trials", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another search space" in err[0]


@pytest.mark.parametrize(
    "text, message",
    [
        ("preset: default\nparams:\n  dqn.lrr: {type: float, low: 0.1, high: 1}\n", "did you mean 'dqn.lr'"),
        ("preset: default\nparams:\n  dqn.lr: {low: 0.1, high: 1}\n", "type must be one of float, int, categorical"),
        ("preset: default\nparams:\n  dqn.lr: {type: float, low: 1, high: 0.1}\n", "low (1) is above high (0.1)"),
        ("preset: default\nparams:\n  dqn.lr: {type: float, low: 0, high: 1, log: true}\n", "log scale needs low > 0"),
        ("preset: default\nparams:\n  dqn.batch_size: {type: categorical, choices: []}\n", "non-empty list"),
        ("preset: default\nparams:\n  dqn.batch_size: {type: int, low: 1.5, high: 8}\n", "whole numbers"),
        ("preset: default\nparams:\n  dqn.lr: {type: float, low: 0.1, high: 1, stepp: 2}\n", "unknown field 'stepp'"),
        ("preset: default\nparms:\n  dqn.lr: {type: float, low: 0.1, high: 1}\n", "unknown top-level key 'parms'"),
        ("preset: default\n", "params must map at least one"),
        ("preset: defualt\nparams:\n  dqn.lr: {type: float, low: 0.1, high: 1}\n", "did you mean 'default'"),
        ("params:\n  dqn.lr: [type: float\n", "YAML syntax error"),
    ],
)
def test_bad_search_spaces_are_one_line(tmp_path, capsys, text, message):
    space_file = tmp_path / "space.yaml"
    space_file.write_text(text)
    code = main(["sweep", str(space_file), "--trials", "1", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_missing_search_space_file_is_one_line(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "nope.yaml"), "--trials", "1"]) == 2
    assert "not found" in capsys.readouterr().err


def test_enqueued_parameters_are_the_first_trials(tmp_path):
    space_file = tmp_path / "space.yaml"
    space_file.write_text(
        SPACE + "enqueue:\n  - {dqn.lr: 0.003, dqn.batch_size: 64, network.hidden: [64], dqn.target_update_every: 50}\n"
    )
    out = tmp_path / "sw"
    assert (
        main(
            ["sweep", str(space_file), "--seeds", "1", "--out", str(out), "--workers", "1", "--quiet", "--trials", "2"]
        )
        == 0
    )
    first = _trials(out)[0]
    assert float(first["dqn.lr"]) == 0.003 and first["dqn.batch_size"] == "64"
    cfg = build_config(config_file=out / "trial-0" / "seed-0" / "config.yaml")
    assert (cfg.dqn.lr, cfg.dqn.batch_size, cfg.network.hidden, cfg.dqn.target_update_every) == (0.003, 64, [64], 50)


def test_enqueue_of_an_unknown_parameter_is_one_line(tmp_path, capsys):
    space_file = tmp_path / "space.yaml"
    space_file.write_text(SPACE + "enqueue:\n  - {dqn.gamma: 0.9}\n")
    assert main(["sweep", str(space_file), "--trials", "1", "--out", str(tmp_path / "o")]) == 2
    assert "enqueue names 'dqn.gamma'" in capsys.readouterr().err


def test_sweep_seeds_take_a_range_like_train_and_compare(tmp_path, capsys):
    """--seeds is a count K (seeds 0..K-1) or, as in train and compare, a range (#15)."""
    space = tmp_path / "space.yaml"
    space.write_text(
        "preset: lqr\nfixed: {total_steps: 300, artifacts: false, eval: {episodes: 2, final_episodes: 2}}\n"
        "params:\n  eval.every_steps: {type: int, low: 100, high: 200}\n"
    )
    out = tmp_path / "sw"
    assert (
        main(["sweep", str(space), "--trials", "1", "--seeds", "3-4", "--workers", "1", "--out", str(out), "--quiet"])
        == 0
    )
    assert sorted(p.name for p in (out / "trial-0").iterdir()) == ["seed-3", "seed-4"]
    capsys.readouterr()
    assert main(["sweep", str(space), "--trials", "1", "--seeds", "4-3", "--out", str(out)]) == 2
    assert "backwards" in capsys.readouterr().err
