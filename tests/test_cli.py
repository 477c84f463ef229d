"""The command line on tiny budgets: it works, and bad input gets one line and a non-zero exit."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dqnlab.cli.main import main

TINY = [
    "--total-steps",
    "1500",
    "--quiet",
    "--set",
    "eval.every_steps=500",
    "--set",
    "eval.episodes=3",
    "--set",
    "eval.final_episodes=3",
    "--set",
    "dqn.learning_starts=300",
    "--set",
    "artifacts=false",
]


def run_cli(*args):
    """The real console script in a subprocess: exit code, stdout, stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "dqnlab", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return proc.returncode, proc.stdout, proc.stderr


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("dqnlab: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_train_evaluate_presets_end_to_end(tmp_path):
    run = tmp_path / "run"
    code, out, err = run_cli("train", "--seed", "1", "--run-dir", str(run), *TINY[:-2])  # with plots and report
    assert code == 0, err
    assert str(run) in out and "solved" in out
    assert "writing" not in err  # --quiet
    for name in ("curves.png", "episode.gif", "report.html"):
        assert (run / name).stat().st_size > 0, name
    code, out, err = run_cli("evaluate", str(run), "--episodes", "5", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert {"mean", "std", "min", "max", "episodes"} <= result.keys() and result["episodes"] == 5
    assert result["min"] <= result["mean"] <= result["max"]
    code, out, _ = run_cli("evaluate", str(run / "policy.pt"), "--episodes", "2")
    assert code == 0 and "mean" in out
    code, out, _ = run_cli("presets")
    assert code == 0 and out.startswith("default")


def test_existing_run_dir_is_refused_and_left_untouched(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), *TINY]) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert main(["train", "--run-dir", str(run), *TINY]) == 2
    assert "already exists; use --resume to continue it or --overwrite to replace it" in one_error_line(
        capsys.readouterr().err
    )
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    # --overwrite replaces it; --resume of a finished run changes nothing of its results
    assert main(["train", "--run-dir", str(run), "--overwrite", "--seed", "2", *TINY]) == 0
    assert "seed: 2" in (run / "config.yaml").read_text()


def test_the_python_api_names_its_own_arguments_when_it_refuses_a_run_dir(tmp_path):
    import dqnlab

    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(dqnlab.DqnlabError, match=r"use resume=True to continue it or overwrite=True to replace it"):
        dqnlab.train(dqnlab.build_config(total_steps=100), run_dir=run)
    with pytest.raises(dqnlab.DqnlabError, match=r"^refusing to overwrite .*not a dqnlab run directory"):
        dqnlab.train(dqnlab.build_config(total_steps=100), run_dir=run, overwrite=True)
    assert [p.name for p in run.iterdir()] == ["notes.txt"]


def test_resume_continues_with_a_larger_budget(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), *TINY]) == 0
    assert main(["train", "--resume", str(run), "--total-steps", "2500", "--quiet"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] >= 2500


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "--preset", "defualt"], "did you mean 'default'"),
        (["train", "--env", "CartPol-v1"], "did you mean 'CartPole-v1'"),
        (["train", "--env", "Pendulum-v1"], "Discrete"),
        (["train", "--set", "dqn.gamma=1.5"], "dqn.gamma"),
        (["train", "--set", "dqn.batch_size=0"], "dqn.batch_size"),
        (["train", "--set", "dqn.lrr=0.1"], "did you mean 'dqn.lr'"),
        (["train", "--set", "network.activation=sigmoid"], "network.activation"),
        (["train", "--set", "nokey"], "key=value"),
        (["train", "--seed", "-1"], "seed"),
        (["train", "--total-steps", "abc"], "whole number"),
        (["train", "--config", "/nonexistent.yaml"], "not found"),
        (["train", "--resume", "/nonexistent-run"], "holds no dqnlab run"),
        (["evaluate", "/nonexistent-run"], "not found"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, capsys, args, expected):
    os.chdir(tmp_path)  # nothing may be written: check the folder stays empty
    code = main(args)
    assert code != 0
    line = one_error_line(capsys.readouterr().err)
    assert expected in line
    assert list(tmp_path.iterdir()) == []


def test_yaml_syntax_error_names_the_line(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("dqn:\n  lr: 0.1\n  gamma: 0.9: x\nseed: 1\n")
    assert main(["train", "--config", str(cfg), "--run-dir", str(tmp_path / "r")]) == 2
    assert "line 3" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


def test_corrupt_policy_file_is_a_clean_error(tmp_path):
    bad = tmp_path / "policy.pt"
    bad.write_bytes(os.urandom(300))
    code, _, err = run_cli("evaluate", str(bad))
    assert code != 0
    assert "cannot load policy file" in one_error_line(err)


def test_progress_is_plain_lines_when_not_a_terminal(tmp_path):
    args = [a for a in TINY if a != "--quiet"]
    code, _, err = run_cli("train", "--run-dir", str(tmp_path / "r"), *args)
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith("[dqnlab] step")]
    assert len(lines) >= 2 and "eps=" in lines[0] and "eval=" in lines[0]


def test_progress_shows_the_evaluation_after_the_budget_and_announces_the_final_one(tmp_path):
    """The budget ends between evaluations: the network as it ended is evaluated (it may be the
    best), and that evaluation is the last progress line, before the final evaluation's notice."""
    args = [("eval.every_steps=1000" if a == "eval.every_steps=500" else a) for a in TINY if a != "--quiet"]
    code, _, err = run_cli("train", "--run-dir", str(tmp_path / "r"), *args)
    assert code == 0, err
    lines = err.splitlines()
    rows = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    last_eval = rows[-1].split(",")
    assert last_eval[0] == "eval" and int(last_eval[1]) >= 1500
    step_line = f"[dqnlab] step {last_eval[1]}/1500 "
    assert lines[-2].startswith(step_line) and lines[-2].endswith(f" eval={float(last_eval[7]):.1f}"), err
    assert lines[-1] == "[dqnlab] final evaluation of the delivered policy: 3 episodes"


def test_train_with_tensorboard_writes_event_files(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), "--tensorboard", *TINY]) == 0
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    assert "tensorboard:" in capsys.readouterr().out


def test_version_prints_the_package_version():
    from dqnlab.core.version import __version__

    code, out, err = run_cli("--version")
    assert (code, out.strip(), err) == (0, f"dqnlab {__version__}", "")


@pytest.mark.parametrize("args, code", [(["presets"], 0), (["train", "--seed", "x"], 2)])
def test_the_command_ends_with_main_s_exit_code_and_a_frozen_gc(args, code):
    """The console script's entry point (pyproject's [project.scripts], and `python -m dqnlab`)
    is run(): main()'s exit code, with the garbage collector's objects frozen before the
    interpreter's shutdown (its collections would otherwise take ~0.5 s with torch loaded)."""
    import tomllib

    with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as f:
        assert tomllib.load(f)["project"]["scripts"]["dqnlab"] == "dqnlab.cli.main:run"
    probe = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen objects at exit:', gc.get_freeze_count() > 0))\n"
        f"sys.argv = ['dqnlab', *{args!r}]\n"
        "from dqnlab.cli.main import run\n"
        "run()\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert proc.stdout.splitlines()[-1] == "frozen objects at exit: True"
    assert "Traceback" not in proc.stderr


def test_train_says_what_it_writes_and_what_to_run_next(tmp_path):
    """The seconds spent drawing plots get a line first; the summary lists the files and the next commands."""
    run = tmp_path / "run"
    args = [a for a in TINY[:-2] if a != "--quiet"]  # progress on, plots and report on
    code, out, err = run_cli("train", "--run-dir", str(run), *args)
    assert code == 0, err
    lines = err.splitlines()
    assert lines[-3].startswith("[dqnlab] step 15")
    assert lines[-2] == "[dqnlab] final evaluation of the delivered policy: 3 episodes"
    assert lines[-1] == "[dqnlab] writing curves.png, episode.gif, report.html ..."
    table = dict(line.split(None, 1) for line in out.splitlines() if line[:1].strip())
    files = "config.yaml, metrics.csv, policy.pt, checkpoint.pt, summary.json, curves.png, episode.gif, report.html"
    assert table["files"] == files
    assert all((run / name).is_file() for name in files.split(", "))
    assert table["next"].startswith(f"dqnlab evaluate {run} --seed 1 ")
    rest = out.split("next", 1)[1].splitlines()
    assert rest[1].strip().startswith(f"dqnlab play {run} --human")
    assert rest[2].strip().startswith(f"{run / 'report.html'} ") and "# open in a browser" in rest[2]


def test_summary_without_artifacts_suggests_writing_the_report():
    from dqnlab.cli.main import next_commands

    commands = next_commands("runs/my run", ["config.yaml"])
    assert [c.split("  #")[0].strip() for c in commands] == [
        "dqnlab evaluate 'runs/my run' --seed 1",
        "dqnlab play 'runs/my run' --human",
        "dqnlab report 'runs/my run'",
    ]


def test_naming_an_environment_says_which_preset_on_the_first_line(tmp_path):
    code, out, err = run_cli("train", "--env", "MountainCar-v0", "--run-dir", str(tmp_path / "a"), *TINY)
    assert code == 0, err
    assert err.splitlines()[0] == (
        "[dqnlab] preset 'mountaincar' (tuned for MountainCar-v0); --preset default to train without it"
    )  # said even with --quiet: it is not progress, it is what the run is
    assert "preset mountaincar" in out
    # --preset wins, and nothing is said
    code, out, err = run_cli(
        "train", "--env", "MountainCar-v0", "--preset", "default", "--run-dir", str(tmp_path / "b"), *TINY
    )
    assert code == 0, err
    assert "tuned for" not in err and "preset default" in out
    # so does a config file's preset key
    config = tmp_path / "c.yaml"
    config.write_text("preset: fast\n")
    code, out, err = run_cli(
        "train", "--env", "MountainCar-v0", "--config", str(config), "--run-dir", str(tmp_path / "c"), *TINY
    )
    assert code == 0, err
    assert "tuned for" not in err and "preset fast" in out


def test_presets_say_which_environment_chooses_them(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    starts = {line.split()[0]: line for line in lines if not line.startswith(" ")}
    assert "[dqn, MountainCar-v0; chosen by --env MountainCar-v0]" in starts["mountaincar"]
    assert "[dqn, Acrobot-v1; chosen by --env Acrobot-v1]" in starts["acrobot"]
    assert "[dqn, LunarLander-v3; chosen by --env LunarLander-v3]" in starts["lunarlander"]
    assert "chosen by" not in starts["default"]
