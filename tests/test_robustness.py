"""Bad files, signals, crashes and divergence: clean errors, nothing lost, exact resume."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from conftest import metrics_without_wall
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dqnlab
from dqnlab.config import validate_config
from dqnlab.core.errors import ConfigError, DqnlabError
from dqnlab.core.fileio import safe_torch_load

# A run of a few seconds with frequent checkpoints, for interrupting.
RUN_CONFIG = {
    "total_steps": 6000,
    "checkpoint_every": 500,
    "eval": {"every_steps": 500, "episodes": 3, "final_episodes": 3, "early_stop": False},
    "dqn": {"learning_starts": 300},
    "env": {"num_envs": 4},
    "artifacts": False,
}


def start(run_dir, cfg_file, *extra):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dqnlab",
            "train",
            "--config",
            str(cfg_file),
            "--run-dir",
            str(run_dir),
            "--quiet",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path, proc, timeout=120):
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout
        time.sleep(0.02)


def resume(run_dir):
    return subprocess.run(
        [sys.executable, "-m", "dqnlab", "train", "--resume", str(run_dir), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every interrupted one must reproduce."""
    root = tmp_path_factory.mktemp("ref")
    cfg_file = root / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(RUN_CONFIG))
    dqnlab.train(dqnlab.build_config(config_file=cfg_file), root / "run", progress=False)
    return cfg_file, root / "run"


def assert_same_run(a, b):
    assert metrics_without_wall(a) == metrics_without_wall(b)
    pa = safe_torch_load(a / "policy.pt", "policy")["state_dict"]
    pb = safe_torch_load(b / "policy.pt", "policy")["state_dict"]
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for key in ("status", "solved", "env_steps", "episodes", "grad_steps", "eval_mean", "best_eval_step"):
        assert sa[key] == sb[key], key


@pytest.mark.parametrize("delay", [0.0, 0.4, 0.9])
def test_sigkill_at_random_moments_then_resume_matches(tmp_path, reference, delay):
    cfg_file, ref = reference
    run = tmp_path / "run"
    proc = start(run, cfg_file)
    wait_for(run / "checkpoint.pt", proc)  # the step-0 checkpoint: training has begun
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()  # reap it and close its pipes
    done = resume(run)
    assert done.returncode == 0, done.stderr
    assert_same_run(ref, run)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_sigterm_checkpoint_and_mark_interrupted(tmp_path, reference, sig, code):
    cfg_file, ref = reference
    run = tmp_path / "run"
    proc = start(run, cfg_file)
    wait_for(run / "checkpoint.pt", proc)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == code, err
    assert "resume with: dqnlab train --resume" in err and "Traceback" not in err
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    done = resume(run)
    assert done.returncode == 0, done.stderr
    assert_same_run(ref, run)


def test_divergence_stops_cleanly_and_keeps_good_files(tmp_path, monkeypatch):
    from dqnlab.algos import dqn

    original = dqn.DQNLearner.update
    calls = {"n": 0}

    def poisoned(self, batch):
        calls["n"] += 1
        loss = original(self, batch)
        if calls["n"] > 400:  # as if the loss had blown up: NaN into the weights and the loss
            with torch.no_grad():
                next(self.online.parameters()).fill_(float("nan"))
            return torch.tensor(float("nan"))
        return loss

    monkeypatch.setattr(dqn.DQNLearner, "update", poisoned)
    cfg = validate_config({**RUN_CONFIG, "eval": {**RUN_CONFIG["eval"], "every_steps": 300}})
    with pytest.raises(DqnlabError, match="diverged") as exc:
        dqnlab.train(cfg, tmp_path / "run", progress=False)
    assert "\n" not in str(exc.value)
    policy = dqnlab.load_policy(tmp_path / "run")  # the last good policy is intact
    assert all(torch.isfinite(p).all() for p in policy.net.parameters())
    ckpt = safe_torch_load(tmp_path / "run" / "checkpoint.pt", "checkpoint")
    assert all(torch.isfinite(v).all() for v in ckpt["algo_state"]["learner"]["online"].values())


def test_malicious_checkpoint_is_not_executed_on_resume(tmp_path):
    run = tmp_path / "run"
    dqnlab.train(
        dqnlab.build_config(**{"total_steps": 600, "eval.episodes": 2, "eval.final_episodes": 2, "artifacts": False}),
        run,
        progress=False,
    )
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(run / "checkpoint.pt", "wb") as f:
        pickle.dump({"format": "dqnlab.checkpoint", "x": Evil()}, f)
    with pytest.raises(DqnlabError, match="refused for safety"):
        dqnlab.train(run_dir=run, resume=True, progress=False)
    assert not marker.exists()


def test_unwritable_run_dir_is_reported_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DqnlabError, match="cannot write to run directory"):
        dqnlab.train(dqnlab.build_config(total_steps=100), blocker / "run", progress=False)
    assert blocker.read_text() == "not a directory"


# -- property-based: only clean errors come out of the loaders --------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)
config_keys = st.sampled_from(
    ["seed", "total_steps", "algo", "env", "dqn", "network", "explore", "eval", "preset", "dqn.lr", "bogus"]
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(config_keys | st.text(max_size=6), json_values, max_size=5))
def test_random_configs_validate_or_fail_cleanly(data):
    try:
        validate_config(data)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2000))
def test_random_bytes_as_policy_fail_cleanly(tmp_path, blob):
    path = tmp_path / "policy.pt"
    path.write_bytes(blob)
    with pytest.raises(DqnlabError):
        dqnlab.load_policy(path)


@pytest.fixture(scope="module")
def valid_policy_bytes(tmp_path_factory):
    from dqnlab.config import NetworkConfig
    from dqnlab.nn.networks import build_mlp
    from dqnlab.runtime.policy import Policy

    path = tmp_path_factory.mktemp("p") / "policy.pt"
    Policy(build_mlp(NetworkConfig(hidden=[8]), 4, 2), "CartPole-v1", (4,), 2, NetworkConfig(hidden=[8])).save(path)
    return path.read_bytes()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_damaged_policy_files_load_or_fail_cleanly(tmp_path, valid_policy_bytes, data):
    blob = bytearray(valid_policy_bytes)
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]  # truncated
    else:
        for _ in range(data.draw(st.integers(1, 8))):  # corrupted bytes
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "policy.pt"
    path.write_bytes(bytes(blob))
    try:
        policy = dqnlab.load_policy(path)
    except DqnlabError as exc:
        assert "\n" not in str(exc)
        return
    # A corruption inside tensor data can still load: then it is a working policy.
    assert policy(np.zeros(4, dtype=np.float32)) in (0, 1)


def test_an_archive_directory_asking_for_an_unknown_zip_version_is_refused(tmp_path, valid_policy_bytes):
    # Found by the test above: zipfile raises NotImplementedError (not BadZipFile) on opening an
    # archive whose central directory names a zip version above what it reads (here 6.4).
    blob = bytearray(valid_policy_bytes)
    entry = blob.index(b"PK\x01\x02")  # the first central directory entry
    blob[entry + 6 : entry + 8] = (64).to_bytes(2, "little")  # "version needed to extract"
    path = tmp_path / "policy.pt"
    path.write_bytes(bytes(blob))
    with pytest.raises(DqnlabError, match="is damaged") as info:
        dqnlab.load_policy(path)
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("fin") / "run"
    dqnlab.train(
        dqnlab.build_config(**{"total_steps": 600, "eval.episodes": 2, "eval.final_episodes": 2, "artifacts": False}),
        run,
        progress=False,
    )
    return run


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=3000))
def test_random_bytes_as_checkpoint_fail_cleanly_on_resume(tmp_path, finished_run, blob):
    import shutil

    run = tmp_path / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(finished_run, run)
    (run / "checkpoint.pt").write_bytes(blob)
    before = (run / "policy.pt").read_bytes()
    with pytest.raises(DqnlabError) as exc:
        dqnlab.train(run_dir=run, resume=True, progress=False)
    assert "\n" not in str(exc.value)
    assert (run / "policy.pt").read_bytes() == before  # the delivered policy is untouched


def test_policy_for_another_environment_is_refused(finished_run, capsys):
    from dqnlab.cli.main import main

    assert main(["evaluate", str(finished_run), "--env", "Acrobot-v1", "--episodes", "2"]) == 2
    err = capsys.readouterr().err
    assert "does not fit Acrobot-v1" in err and len(err.strip().splitlines()) == 1


@pytest.fixture
def small_disk(tmp_path):
    """A 1.2 MB tmpfs: room for the first checkpoints, not for the later, larger ones."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True)


def test_full_disk_is_one_line_and_corrupts_nothing(small_disk):
    run = small_disk / "run"
    code = subprocess.run(
        [
            sys.executable,
            "-m",
            "dqnlab",
            "train",
            "--run-dir",
            str(run),
            "--quiet",
            "--total-steps",
            "20000",
            "--set",
            "checkpoint_every=3000",
            "--set",
            "artifacts=false",
            "--set",
            "eval.early_stop=false",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert code.returncode == 1
    assert code.stderr.strip().splitlines() == ["dqnlab: error: No space left on device"]
    assert not list(run.glob(".*.tmp"))  # no half-written temporary files left behind
    ckpt = safe_torch_load(run / "checkpoint.pt", "checkpoint")  # the last complete checkpoint
    assert 0 < ckpt["counters"]["env_steps"] < 20000
    dqnlab.load_policy(run)  # and the delivered policy so far
    # With space again, the run resumes from that checkpoint and finishes.
    subprocess.run(["mount", "-o", "remount,size=50m", str(small_disk)], check=True)
    assert resume(run).returncode == 0
    assert json.loads((run / "summary.json").read_text())["env_steps"] >= 20000
