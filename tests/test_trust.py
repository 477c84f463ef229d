"""Trust: dqnlab never deletes or overwrites what is not its own, and one process writes a run.

Each test reproduces a way a user could lose files (or get an interleaved run) before the
marker, the staged run directory and the folder locks existed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dqnlab
from dqnlab.cli.main import main
from dqnlab.core.errors import DqnlabError
from dqnlab.runtime.rundir import LOCK_FILE, MARKER_FILE, FolderLock, is_run_dir

TINY = [
    "--total-steps",
    "600",
    "--quiet",
    "--set",
    "eval.every_steps=300",
    "--set",
    "eval.episodes=2",
    "--set",
    "eval.final_episodes=2",
    "--set",
    "dqn.learning_starts=100",
    "--set",
    "artifacts=false",
    "--set",
    "dqn.buffer_size=1000",
]
LONG = [
    "--quiet",
    "--set",
    "total_steps=50000000",
    "--set",
    "eval.early_stop=false",
    "--set",
    "artifacts=false",
    "--set",
    "eval.episodes=2",
    "--set",
    "dqn.buffer_size=1000",
    "--set",
    "checkpoint_every=1000",
]


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every path under `folder` (links not followed) with its bytes, link target or 'dir'."""
    out: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        key = str(p.relative_to(folder))
        out[key] = f"-> {os.readlink(p)}" if p.is_symlink() else "dir" if p.is_dir() else p.read_bytes()
    return out


def error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("dqnlab: error: "), err
    return err[0]


def project_folder(root: Path) -> Path:
    """A user's project: a config.yaml of their own, sources and a git folder."""
    root.mkdir()
    (root / "config.yaml").write_text("my: settings\n")
    (root / "metrics.csv").write_text("my,own,numbers\n1,2,3\n")
    (root / "curves.png").write_bytes(b"my figure")
    (root / "src").mkdir()
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return root


@pytest.fixture
def old_run(tmp_path) -> Path:
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), *TINY]) == 0
    return run


# -- a run is what carries dqnlab's marker -------------------------------------------------------


def test_overwrite_refuses_a_project_folder_that_holds_a_config_yaml(tmp_path, capsys):
    proj = project_folder(tmp_path / "proj")
    before = snapshot(proj)
    assert main(["train", "--run-dir", str(proj), "--overwrite", *TINY]) == 2
    assert "not a dqnlab run directory" in error_line(capsys)
    assert snapshot(proj) == before


def test_overwrite_refuses_a_symlink_even_to_a_real_run(old_run, tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(old_run)
    before = snapshot(old_run)
    assert main(["train", "--run-dir", str(link), "--overwrite", *TINY]) == 2
    assert "symbolic link" in error_line(capsys)
    assert snapshot(old_run) == before and link.is_symlink()


def test_overwrite_through_a_symlink_to_a_home_like_folder_deletes_nothing(tmp_path, capsys):
    home = project_folder(tmp_path / "home")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "latest").symlink_to(home)
    before = snapshot(home)
    assert main(["train", "--run-dir", str(tmp_path / "runs" / "latest"), "--overwrite", *TINY]) == 2
    error_line(capsys)
    assert snapshot(home) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--run-dir", ""],
        ["train", "--resume", ""],
        ["train", "--seeds", "0-1", "--run-dir", ""],
        ["compare", "default", "--out", ""],
        ["plot", ""],
        ["play", "", "--gif", "x.gif"],
        ["report", ""],
    ],
)
def test_an_empty_path_is_an_error_not_the_current_folder(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("mine: true\n")
    assert main(argv) == 2
    assert "empty" in error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_an_empty_run_dir_is_refused_by_the_python_api(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DqnlabError, match="empty"):
        dqnlab.train(dqnlab.build_config(total_steps=100), run_dir="", progress=False)
    with pytest.raises(DqnlabError, match="empty"):
        dqnlab.train(run_dir="", resume=True, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_plot_and_play_do_not_replace_a_users_files_in_a_folder_with_a_config_yaml(old_run, tmp_path, capsys):
    proj = project_folder(tmp_path / "proj")
    (proj / "episode.gif").write_bytes(b"my animation")
    before = snapshot(proj)
    assert main(["plot", str(old_run), "--out", str(proj / "curves.png")]) == 2
    assert "--overwrite" in error_line(capsys)
    assert main(["play", str(old_run), "--gif", str(proj / "episode.gif")]) == 2
    assert "--overwrite" in error_line(capsys)
    assert main(["report", str(proj)]) == 2
    assert "not a dqnlab run" in error_line(capsys)
    assert snapshot(proj) == before


def test_resume_refuses_a_folder_that_is_not_a_run_and_keeps_its_metrics_csv(tmp_path, capsys):
    proj = project_folder(tmp_path / "proj")
    before = snapshot(proj)
    assert main(["train", "--resume", str(proj)]) == 2
    assert "holds no dqnlab run" in error_line(capsys)
    assert snapshot(proj) == before


# -- --overwrite deletes only dqnlab's files, and only once the new run has started -------------------


def test_overwrite_refuses_a_run_holding_a_symlink_and_names_it(old_run, tmp_path, capsys):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.txt").write_text("keep me")
    (old_run / "shortcut").symlink_to(precious)
    before = snapshot(old_run)
    assert main(["train", "--run-dir", str(old_run), "--overwrite", *TINY]) == 2
    line = error_line(capsys)
    assert str(old_run / "shortcut") in line and "symbolic link" in line
    assert snapshot(old_run) == before and (precious / "data.txt").read_text() == "keep me"


def test_overwrite_refuses_a_run_holding_a_users_file(old_run, capsys):
    (old_run / "notes.txt").write_text("my notes on this run")
    before = snapshot(old_run)
    assert main(["train", "--run-dir", str(old_run), "--overwrite", *TINY]) == 2
    assert "notes.txt" in error_line(capsys)
    assert snapshot(old_run) == before


def test_overwrite_replaces_a_run_of_only_its_own_files(old_run, tmp_path):
    assert main(["report", str(old_run)]) == 0  # curves.png, episode.gif, report.html
    (old_run / "tensorboard").mkdir()
    (old_run / "tensorboard" / "events.out.tfevents.1.host").write_bytes(b"ev")
    assert main(["train", "--run-dir", str(old_run), "--overwrite", "--seed", "5", *TINY]) == 0
    assert "seed: 5" in (old_run / "config.yaml").read_text()
    assert not (old_run / "tensorboard").exists() and not (old_run / "report.html").exists()
    assert is_run_dir(old_run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging or old copy left beside it


def test_overwrite_keeps_the_old_run_when_the_new_config_cannot_fit_in_memory(old_run, tmp_path, capsys):
    before = snapshot(old_run)
    # 10**9 transitions of CartPole: about 36 GB of replay, more than any CI machine has free
    assert main(["train", "--run-dir", str(old_run), "--overwrite", *TINY, "--set", "dqn.buffer_size=1000000000"]) == 2
    assert "memory" in error_line(capsys)
    assert snapshot(old_run) == before
    assert main(["train", "--run-dir", str(tmp_path / "new"), *TINY, "--set", "dqn.buffer_size=1000000000"]) == 2
    error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_table_too_large_for_memory_is_refused_before_anything_is_written(tmp_path, capsys):
    bins = "[10000,10000,10000,1000]"  # 10**15 cells
    assert (
        main(
            [
                "train",
                "--preset",
                "tabular",
                "--run-dir",
                str(tmp_path / "t"),
                "--total-steps",
                "100",
                "--set",
                f"tabular.bins={bins}",
            ]
        )
        == 2
    )
    assert "tabular" in error_line(capsys)  # the config's bound on cells, before any memory estimate
    assert list(tmp_path.iterdir()) == []


def test_more_torch_threads_than_cores_is_refused_before_anything_is_written(tmp_path, capsys):
    assert main(["train", "--run-dir", str(tmp_path / "r"), *TINY, "--set", f"torch_threads={os.cpu_count() + 1}"]) == 2
    assert "torch_threads" in error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_failure_while_starting_keeps_the_old_run_and_leaves_nothing_half_made(old_run, tmp_path, monkeypatch):
    from dqnlab.runtime.loop import TrainLoop

    def disk_full(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(TrainLoop, "start", disk_full)
    before = snapshot(old_run)
    with pytest.raises(OSError):
        dqnlab.train(dqnlab.build_config(total_steps=300), old_run, overwrite=True, progress=False)
    assert snapshot(old_run) == before
    with pytest.raises(OSError):
        dqnlab.train(dqnlab.build_config(total_steps=300), tmp_path / "new", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_staging_folder_left_by_a_killed_process_is_cleaned_up(tmp_path):
    stale = tmp_path / ".r.dqnlab-new-999999"
    stale.mkdir()
    (stale / MARKER_FILE).write_text('{"format": "dqnlab.folder", "version": 1, "kind": "run"}')
    (stale / "config.yaml").write_text("seed: 0\n")
    users = tmp_path / ".r.dqnlab-new-1"  # no marker: not ours, left alone
    users.mkdir()
    assert main(["train", "--run-dir", str(tmp_path / "r"), *TINY]) == 0
    assert not stale.exists() and users.is_dir()


def test_a_run_written_by_0_1_0_without_marker_is_still_a_run(tmp_path):
    fixtures = Path(__file__).parent / "fixtures" / "0.1.0"
    run = tmp_path / "old"
    run.mkdir()
    for f in ("policy.pt", "checkpoint.pt", "config.yaml", "metrics.csv"):
        (run / f).write_bytes((fixtures / f"dqn-{f}").read_bytes())
    assert is_run_dir(run) and not (run / MARKER_FILE).exists()
    assert main(["train", "--run-dir", str(run), "--overwrite", *TINY]) == 0
    assert (run / MARKER_FILE).is_file()


# -- compare and sweep output folders -----------------------------------------------------------------


def test_compare_refuses_an_out_folder_holding_a_users_files(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("compare.json", "compare.md", "curves.png"):
        (out / name).write_text(f"my {name}")
    before = snapshot(out)
    assert main(["compare", "lqr", "--seeds", "0", "--out", str(out), "--quiet"]) == 2
    assert "did not write" in error_line(capsys)
    assert snapshot(out) == before


def test_sweep_refuses_an_out_folder_holding_a_users_files(tmp_path, capsys):
    pytest.importorskip("optuna")
    out = tmp_path / "out"
    out.mkdir()
    (out / "trials.csv").write_text("my,table\n")
    (out / "best.yaml").write_text("my: best\n")
    space = tmp_path / "space.yaml"
    space.write_text(
        "preset: lqr\nfixed: {total_steps: 300, artifacts: false}\n"
        "params:\n  eval.episodes: {type: int, low: 2, high: 3}\n"
    )
    before = snapshot(out)
    assert main(["sweep", str(space), "--trials", "1", "--seeds", "1", "--out", str(out), "--quiet"]) == 2
    error_line(capsys)
    assert snapshot(out) == before


def test_compare_label_of_a_dotted_file_name_stays_inside_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    cfg = tmp_path / "work" / "...yaml"
    cfg.write_text("preset: lqr\ntotal_steps: 300\nartifacts: false\neval: {episodes: 2, final_episodes: 2}\n")
    out = tmp_path / "work" / "out"
    assert main(["compare", str(cfg), "--seeds", "0", "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["...yaml", "out"]
    assert (out / "config" / "seed-0" / "summary.json").is_file()


def test_a_comparison_written_by_0_1_0_without_marker_is_continued(tmp_path, capsys):
    out = tmp_path / "out"
    cmd = [
        "compare",
        "lqr",
        "--seeds",
        "0",
        "--out",
        str(out),
        "--quiet",
        "--set",
        "total_steps=300",
        "--set",
        "artifacts=false",
    ]
    assert main(cmd) == 0
    for marked in (out, out / "lqr" / "seed-0"):  # as 0.1.0 left it: no markers, no locks
        (marked / MARKER_FILE).unlink()
        (marked / LOCK_FILE).unlink()
    (out / "compare.json").unlink()  # cut off before its table was written
    assert main(cmd) == 0
    assert (out / MARKER_FILE).is_file() and (out / "compare.json").is_file()


def test_a_second_compare_into_the_same_out_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "compare",
                "lqr",
                "--seeds",
                "0",
                "--out",
                str(out),
                "--quiet",
                "--set",
                "total_steps=300",
                "--set",
                "artifacts=false",
            ]
        )
        == 0
    )
    capsys.readouterr()
    held = FolderLock(out).acquire()  # another compare writing there
    try:
        assert (
            main(
                [
                    "compare",
                    "lqr",
                    "--seeds",
                    "0-1",
                    "--out",
                    str(out),
                    "--quiet",
                    "--set",
                    "total_steps=300",
                    "--set",
                    "artifacts=false",
                ]
            )
            == 1
        )
        assert "in use by another dqnlab process" in error_line(capsys)
    finally:
        held.release()


# -- one writer per run --------------------------------------------------------------------------------


def _start_long_train(run: Path, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dqnlab", "train", "--run-dir", str(run), *LONG, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while not (run / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline
        time.sleep(0.1)
    return proc


def test_a_second_writer_of_a_run_is_refused_until_the_first_is_gone(tmp_path, capsys):
    run = tmp_path / "run"
    first = _start_long_train(run)
    try:
        assert main(["train", "--resume", str(run)]) == 1
        assert "in use by another dqnlab process (pid" in error_line(capsys)
        assert main(["train", "--run-dir", str(run), "--overwrite", *TINY]) == 1
        assert "in use" in error_line(capsys)
        assert main(["train", "--run-dir", str(run), *TINY]) == 2  # no --overwrite: refused as before
        error_line(capsys)
    finally:
        first.send_signal(signal.SIGKILL)  # a crash: the OS releases the lock
        first.wait(60)
    assert (run / LOCK_FILE).exists()
    assert main(["train", "--resume", str(run), "--total-steps", "2000"]) == 0


def test_two_resumes_of_one_run_do_not_interleave(tmp_path, capsys):
    run = tmp_path / "run"
    first = _start_long_train(run)
    first.send_signal(signal.SIGTERM)
    assert first.wait(60) == 143
    resumed = subprocess.Popen(
        [sys.executable, "-m", "dqnlab", "train", "--resume", str(run), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 60
        while FolderLock(run).acquire().release() is None:  # wait until the resume holds the lock
            assert resumed.poll() is None and time.time() < deadline
            time.sleep(0.05)
    except DqnlabError:
        pass
    try:
        assert main(["train", "--resume", str(run)]) == 1
        assert "in use" in error_line(capsys)
    finally:
        resumed.send_signal(signal.SIGKILL)
        resumed.wait(60)


# -- resume is exact or refused ------------------------------------------------------------------------


def test_resume_refuses_a_config_yaml_edited_since_the_checkpoint(old_run, capsys):
    text = (old_run / "config.yaml").read_text()
    (old_run / "config.yaml").write_text(text.replace("lr: 0.003", "lr: 0.001"))
    before = snapshot(old_run)
    assert main(["train", "--resume", str(old_run), "--total-steps", "900"]) == 1
    line = error_line(capsys)
    assert "dqn.lr" in line and "0.003" in line and "0.001" in line
    assert snapshot(old_run) == before
    (old_run / "config.yaml").write_text(text)
    assert main(["train", "--resume", str(old_run), "--total-steps", "900"]) == 0  # the budget may change


def test_resume_refuses_a_checkpoint_from_another_run(old_run, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["train", "--run-dir", str(other), *TINY, "--env", "CartPole-v0"]) == 0
    (old_run / "checkpoint.pt").write_bytes((other / "checkpoint.pt").read_bytes())
    assert main(["train", "--resume", str(old_run), "--total-steps", "900"]) == 1
    assert "env.id" in error_line(capsys)
