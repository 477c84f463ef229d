"""Stops that stop (issue #14): SIGINT or SIGTERM ends the whole command (train, train --seeds,
compare, sweep; local pool and Ray): runs under way checkpoint and are marked interrupted, queued
runs never start, no process outlives the command, the exit code is 130/143 with one line saying
how to continue, and running the same command again finishes everything. Evaluations notice a
signal at once, and a run cut off in any evaluation resumes exactly."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import metrics_without_wall

import dqnlab
from dqnlab.core.fileio import safe_torch_load
from dqnlab.core.stopping import request_stop
from dqnlab.runtime.evaluation import Evaluator
from dqnlab.train import TrainingInterrupted

# Baseline runs of a few seconds: long enough to be under way when the signal comes, short enough
# that re-running all of them stays cheap. Periodic checkpoints make a cut-off run resumable anyway.
RUN_SETTINGS = {
    "total_steps": 40000,
    "checkpoint_every": 5000,
    "eval.every_steps": 5000,
    "eval.episodes": 2,
    "eval.final_episodes": 2,
    "eval.early_stop": False,
    "artifacts": False,
}
SETS = [arg for key, value in RUN_SETTINGS.items() for arg in ("--set", f"{key}={str(value).lower()}")]
TIMEOUT = 600  # generous: the machine may be shared; nothing here is a speed assertion
CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


# ---------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------


def _stat(pid):
    """(parent pid, session id, start time, state) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[3]), int(fields[19]), fields[0]


def _processes():
    return {int(p): st for p in os.listdir("/proc") if p.isdigit() and (st := _stat(p)) is not None}


def descendants(pid):
    """{pid: start time} of every live process below `pid`."""
    procs = _processes()
    found, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _, start, _) in procs.items():
            if ppid == parent and child not in found:
                found[child] = start
                todo.append(child)
    return found


def assert_no_process_left(known, session, timeout=60):
    """None of the processes `known` ({pid: start time}) and none in `session` is still running
    (zombies waiting for their reaper do not count)."""

    def left():
        return [
            pid
            for pid, (_, sid, start, state) in _processes().items()
            if state != "Z" and (known.get(pid) == start or sid == session)
        ]

    t0 = time.monotonic()
    while left() and time.monotonic() - t0 < timeout:
        time.sleep(0.2)
    orphans = {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:100] for pid in left()}
    for pid in orphans:  # the test's own processes: do not leave them running
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not orphans, orphans


def start(args, logs):
    """`python -m dqnlab ARGS` in a session of its own (so that its process group can be signalled
    as a terminal's Ctrl-C would). Its output goes to files in `logs`, not to pipes: an orphaned
    worker that keeps a pipe open would leave a reader waiting forever."""
    logs.mkdir(exist_ok=True)
    with open(logs / "stdout", "w") as out, open(logs / "stderr", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dqnlab", *map(str, args)], stdout=out, stderr=err, start_new_session=True
        )
    proc.stderr_file = logs / "stderr"
    return proc


def run(args):
    return subprocess.run(
        [sys.executable, "-m", "dqnlab", *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT
    )


def wait_for_checkpoint(root, proc, pattern="*/seed-*/checkpoint.pt", timeout=TIMEOUT):
    t0 = time.monotonic()
    while not list(root.glob(pattern)):
        assert proc.poll() is None, proc.stderr_file.read_text()
        assert time.monotonic() - t0 < timeout, "no run started"
        time.sleep(0.02)


def signal_and_finish(proc, sig, whole_group=False):
    """Send `sig` (to the process, or to its whole group like a terminal's Ctrl-C) once the
    processes under it are known; return (returncode, stderr, the processes that were there)."""
    known = {proc.pid: _stat(proc.pid)[2], **descendants(proc.pid)}
    if whole_group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    proc.wait(timeout=TIMEOUT)
    return proc.returncode, proc.stderr_file.read_text(), known


def assert_interrupted_line(err, sig, hint, only_line=True):
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert lines and lines[-1].startswith(f"dqnlab: interrupted by {signal.Signals(sig).name}; "), err
    assert hint in lines[-1], err
    if only_line:
        assert len(lines) == 1, err


def assert_runs_cut_off(run_dirs, at_most, finished_ok=False):
    """The runs that had started (at most one per worker) checkpointed and are marked interrupted.
    With `finished_ok`, a run may also have finished before the signal came (Ray starts its second
    worker seconds after the first, and a run of a few seconds can end meanwhile), as long as
    at least one was cut off."""
    assert 1 <= len(run_dirs) <= at_most, run_dirs
    statuses = []
    for d in run_dirs:
        assert (d / "checkpoint.pt").is_file(), d
        summary = json.loads((d / "summary.json").read_text())
        statuses.append(summary["status"])
        cut_off = summary["status"] == "interrupted" and summary["stop_reason"] == "signal"
        assert cut_off or (finished_ok and summary["status"] == "finished"), (d, summary)
    assert "interrupted" in statuses, statuses


RERUN = "run the same command again"


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def compare_args(tmp_path):
    angle = tmp_path / "angle.yaml"
    angle.write_text("algo: baseline\nbaseline:\n  controller: angle\n")
    out = tmp_path / "cmp"
    return out, ["compare", "lqr", angle, "--seeds", "0-3", "--out", out, "--quiet", *SETS]


def _check_compare_finishes(out, args):
    done = run(args)
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "compare.json").read_text())
    rows = [r for e in result["entries"] for r in e["per_seed"]]
    assert len(rows) == 8 and all(r["status"] == "finished" for r in rows), rows


@pytest.mark.parametrize(
    "sig, whole_group", [(signal.SIGTERM, False), (signal.SIGINT, True)], ids=["sigterm", "ctrl-c-to-the-process-group"]
)
def test_a_signal_stops_the_whole_compare_and_the_same_command_continues(compare_args, sig, whole_group):
    out, args = compare_args
    args = [*args, "--workers", "2"]
    proc = start(args, out.parent / "logs")
    wait_for_checkpoint(out, proc)
    code, err, known = signal_and_finish(proc, sig, whole_group)
    assert_no_process_left(known, proc.pid)
    assert code == CODES[sig], err
    assert_interrupted_line(err, sig, RERUN)
    assert_runs_cut_off(list(out.glob("*/seed-*")), at_most=2)  # the queued runs never started
    assert not (out / "compare.json").exists()
    _check_compare_finishes(out, args)


def test_a_ctrl_c_while_the_workers_start_kills_none_of_them(compare_args):
    out, args = compare_args
    proc = start([*args, "--workers", "2"], out.parent / "logs")
    t0 = time.monotonic()
    while len(descendants(proc.pid)) < 3:  # the resource tracker and both workers, still importing
        assert proc.poll() is None, proc.stderr_file.read_text()
        assert time.monotonic() - t0 < TIMEOUT, "no workers started"
        time.sleep(0.005)
    time.sleep(0.3)  # into their imports (which take a second or more)
    code, err, known = signal_and_finish(proc, signal.SIGINT, whole_group=True)
    assert_no_process_left(known, proc.pid)
    assert code == 130, err
    assert_interrupted_line(err, signal.SIGINT, RERUN)  # no worker's KeyboardInterrupt traceback
    for d in out.glob("*/seed-*"):
        assert json.loads((d / "summary.json").read_text())["status"] == "interrupted"


def test_sigterm_stops_a_compare_with_one_worker(compare_args):
    out, args = compare_args
    args = [*args, "--workers", "1"]
    proc = start(args, out.parent / "logs")
    wait_for_checkpoint(out, proc)
    code, err, known = signal_and_finish(proc, signal.SIGTERM)
    assert_no_process_left(known, proc.pid)
    assert code == 143, err
    assert_interrupted_line(err, signal.SIGTERM, RERUN)
    assert_runs_cut_off(list(out.glob("*/seed-*")), at_most=1)
    _check_compare_finishes(out, args)


def test_compare_workers_exit_when_the_compare_is_sigkilled(compare_args):
    out, args = compare_args
    args = [*args, "--workers", "2"]
    proc = start(args, out.parent / "logs")
    wait_for_checkpoint(out, proc)
    code, _, known = signal_and_finish(proc, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert_no_process_left(known, proc.pid)  # no orphan: the workers end with their parent
    # ... and their runs wrote checkpoints on the way out, so the same command continues them
    assert_runs_cut_off(list(out.glob("*/seed-*")), at_most=2)
    _check_compare_finishes(out, args)


def test_sigterm_stops_a_compare_on_ray(compare_args):
    pytest.importorskip("ray")
    out, args = compare_args
    args = [*args, "--workers", "2", "--backend", "ray"]
    proc = start(args, out.parent / "logs")
    wait_for_checkpoint(out, proc)
    code, err, known = signal_and_finish(proc, signal.SIGTERM)
    assert_no_process_left(known, proc.pid)  # the local Ray instance is shut down
    assert code == 143, err
    assert_interrupted_line(err, signal.SIGTERM, RERUN, only_line=False)  # Ray may log lines of its own
    assert_runs_cut_off(list(out.glob("*/seed-*")), at_most=2, finished_ok=True)
    _check_compare_finishes(out, args)


# ---------------------------------------------------------------------------------------------
# train --seeds, sweep
# ---------------------------------------------------------------------------------------------


def test_sigterm_stops_train_seeds(tmp_path):
    root = tmp_path / "seeds"
    proc = start(
        ["train", "--preset", "lqr", "--seeds", "0-3", "--workers", "2", "--run-dir", root, "--quiet", *SETS],
        tmp_path / "logs",
    )
    wait_for_checkpoint(root, proc, "seed-*/checkpoint.pt")
    code, err, known = signal_and_finish(proc, signal.SIGTERM)
    assert_no_process_left(known, proc.pid)
    assert code == 143, err
    assert_interrupted_line(err, signal.SIGTERM, RERUN)
    cut = list(root.glob("seed-*"))
    assert_runs_cut_off(cut, at_most=2)
    assert not (root / "seeds_summary.json").exists()
    done = run(["train", "--resume", cut[0], "--quiet"])  # each cut-off run continues
    assert done.returncode == 0, done.stderr
    assert json.loads((cut[0] / "summary.json").read_text())["status"] == "finished"


def test_sigterm_stops_a_sweep_and_the_same_command_continues(tmp_path):
    pytest.importorskip("optuna")
    space = tmp_path / "space.yaml"
    fixed = "".join(f"  {key}: {str(value).lower()}\n" for key, value in RUN_SETTINGS.items())
    space.write_text(
        f"preset: lqr\nfixed:\n{fixed}params:\n  baseline.controller: {{type: categorical, choices: [lqr, angle]}}\n"
    )
    out = tmp_path / "sw"
    args = ["sweep", space, "--trials", "1", "--seeds", "4", "--workers", "2", "--out", out, "--quiet"]
    proc = start(args, out.parent / "logs")
    wait_for_checkpoint(out, proc, "trial-0/seed-*/checkpoint.pt")
    code, err, known = signal_and_finish(proc, signal.SIGTERM)
    assert_no_process_left(known, proc.pid)
    assert code == 143, err
    assert_interrupted_line(err, signal.SIGTERM, RERUN)
    assert_runs_cut_off(list(out.glob("trial-0/seed-*")), at_most=2)
    done = run(args)
    assert done.returncode == 0, done.stderr
    trials = (out / "trials.csv").read_text().splitlines()
    assert len(trials) == 2 and ",COMPLETE," in trials[1], trials
    for seed in range(4):
        assert json.loads((out / "trial-0" / f"seed-{seed}" / "summary.json").read_text())["status"] == "finished"


# ---------------------------------------------------------------------------------------------
# evaluations
# ---------------------------------------------------------------------------------------------

# LQR balances forever: with a long episode cap its evaluations take as long as one likes.
LONG_EPISODES = ["--preset", "lqr", "--set", "artifacts=false", "--quiet"]


def test_sigint_during_the_final_evaluation_leaves_an_interrupted_summary_and_resume_finishes(tmp_path):
    run_dir = tmp_path / "run"
    # no evaluation during training (the first would be due after the budget), the last network
    # delivered as it is: what follows training is the final evaluation alone, one episode of
    # 60,000 steps (some seconds)
    proc = start(
        [
            "train",
            *LONG_EPISODES,
            "--run-dir",
            run_dir,
            "--set",
            "total_steps=2000",
            "--set",
            "eval.every_steps=100000",
            "--set",
            "eval.deliver=last",
            "--set",
            "env.max_episode_steps=60000",
            "--set",
            "eval.final_episodes=1",
        ],
        tmp_path / "logs",
    )
    wait_for_checkpoint(run_dir, proc, "checkpoint.pt")
    # the checkpoint written when training ended: the one that counts all 2000 steps (the step-0
    # one may already be replaced by it when the file is first seen: the LQR steps are quick)
    while safe_torch_load(run_dir / "checkpoint.pt", "checkpoint")["counters"]["env_steps"] < 2000:
        assert proc.poll() is None, proc.stderr_file.read_text()
        time.sleep(0.02)
    time.sleep(0.5)
    code, err, _ = signal_and_finish(proc, signal.SIGINT)
    assert code == 130, err
    assert_interrupted_line(err, signal.SIGINT, f"resume with: dqnlab train --resume {run_dir}")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["eval_mean"] is None
    done = run(["train", "--resume", run_dir, "--quiet"])
    assert done.returncode == 0, done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["eval_episodes"] == 1
    assert summary["eval_mean_length"] == 60000 and summary["env_steps"] == 2000


def test_sigint_during_a_long_evaluation_in_training_stops_it(tmp_path):
    run_dir = tmp_path / "run"
    # the first evaluation (after 1000 steps) is one episode of up to a million steps (minutes)
    proc = start(
        [
            "train",
            *LONG_EPISODES,
            "--run-dir",
            run_dir,
            "--set",
            "total_steps=100000",
            "--set",
            "eval.every_steps=1000",
            "--set",
            "eval.episodes=1",
            "--set",
            "env.max_episode_steps=1000000",
        ],
        tmp_path / "logs",
    )
    wait_for_checkpoint(run_dir, proc, "checkpoint.pt")
    time.sleep(2)
    code, err, _ = signal_and_finish(proc, signal.SIGINT)
    assert code == 130, err
    assert_interrupted_line(err, signal.SIGINT, f"resume with: dqnlab train --resume {run_dir}")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    # the evaluation was cut off, not waited for: it left no row; the checkpoint has it still due
    assert "eval," not in (run_dir / "metrics.csv").read_text()
    counters = safe_torch_load(run_dir / "checkpoint.pt", "checkpoint")["counters"]
    assert counters["evaluations"] == 0 and counters["next_eval"] <= counters["env_steps"]


def _stop_in_evaluation(monkeypatch, call, after_steps=20):
    """Make the `call`-th evaluation (1-based) receive a stop signal after `after_steps` steps."""
    original, calls = Evaluator.run, []

    def run_with_a_signal(self, act, episodes, seed, should_stop=None, *more):  # more: the evaluation cut's
        calls.append(episodes)
        steps = []

        def acting(obs):
            steps.append(1)
            if len(calls) == call and len(steps) == after_steps:
                request_stop(signal.SIGINT)
            return act(obs)

        return original(self, acting, episodes, seed, should_stop, *more)

    monkeypatch.setattr(Evaluator, "run", run_with_a_signal)
    return calls


# "random": its evaluations draw random numbers; "pqn": its divergence guard reads the last rollout
@pytest.mark.parametrize("preset", ["default", "random", "pqn"])
@pytest.mark.parametrize("call, where", [(2, "evaluation in training"), (4, "final evaluation")])
def test_a_run_cut_off_in_an_evaluation_resumes_exactly(tmp_path, tiny, monkeypatch, preset, call, where):
    cfg = tiny(preset=preset)  # evaluations at 1000, 2000, 3000 steps, then the final one
    reference = dqnlab.train(cfg, tmp_path / "ref", progress=False)
    # an early PQN policy, or default's policy average (close to its untrained start after 3000
    # steps), may fail within 20 steps: stop their evaluations sooner
    calls = _stop_in_evaluation(monkeypatch, call, after_steps=3 if preset in ("pqn", "default") else 20)
    with pytest.raises(TrainingInterrupted) as stopped:
        dqnlab.train(cfg, tmp_path / "run", progress=False)
    assert len(calls) == call and stopped.value.summary["status"] == "interrupted"
    # a Python caller is told the Python way to resume, not the command line's flag
    assert f"resume with: dqnlab.train(run_dir={str(tmp_path / 'run')!r}, resume=True)" in str(stopped.value)
    monkeypatch.undo()
    # resume exactly as the message says (it names the call's arguments)
    call = str(stopped.value).split("resume with: ", 1)[1]
    assert call == f"dqnlab.train(run_dir={str(tmp_path / 'run')!r}, resume=True)"
    resumed = eval(call.replace("resume=True)", "resume=True, progress=False)"), {"dqnlab": dqnlab})
    assert metrics_without_wall(tmp_path / "ref") == metrics_without_wall(tmp_path / "run")
    for key in (
        "status",
        "solved",
        "env_steps",
        "episodes",
        "eval_mean",
        "eval_std",
        "best_eval_step",
        "best_eval_mean",
        "stop_reason",
    ):
        assert resumed.summary[key] == reference.summary[key], key
    a, b = (safe_torch_load(d / "policy.pt", "policy")["state_dict"] for d in (tmp_path / "ref", tmp_path / "run"))
    assert all(torch.equal(a[k], b[k]) for k in a)


# A stop signal that lands just after the step-0 checkpoint, before the training loop, as one sent
# once checkpoint.pt appears may (tests/test_trust.py does exactly that, and under load hit it).
_SIGNAL_AT_START = """
import os, signal, sys
from dqnlab.cli.main import main
from dqnlab.runtime.loop import TrainLoop

start = TrainLoop.start
def start_then_signal(self):
    start(self)
    os.kill(os.getpid(), signal.SIGTERM)
TrainLoop.start = start_then_signal
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("resume", [False, True], ids=["new", "resume"])
def test_a_signal_between_the_first_checkpoint_and_the_loop_stops_the_run_cleanly(tmp_path, resume):
    """Before: the default SIGTERM handler was still in place there and killed the process
    (exit -15, no summary). Now the signal is held for the loop, which stops at once."""
    from dqnlab.cli.main import main

    run = tmp_path / "run"
    if resume:
        assert main(["train", "--run-dir", str(run), "--quiet", *SETS, "--total-steps", "2000"]) == 0
    argv = ["train", "--resume", str(run)] if resume else ["train", "--run-dir", str(run), "--quiet", *SETS]
    done = subprocess.run(
        [sys.executable, "-c", _SIGNAL_AT_START, *argv, *(["--total-steps", "40000"] if resume else [])],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 143, done.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
