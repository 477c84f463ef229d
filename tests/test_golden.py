"""Golden runs and release fixtures: what a refactor must not change.

The golden runs (tests/golden/*.json, recorded by tests/golden/record.py before the code was
moved into its layers) retrain a few thousand steps of DQN, PPO, tabular Q-learning and DQN from
pixels and must reproduce every metrics row and the delivered weights exactly. The fixtures
(tests/fixtures/0.1.0) are policy and checkpoint files written by release 0.1.0, which every later
version must load and resume.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import dqnlab
from dqnlab.runtime.rundir import read_metrics

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "0.1.0"
_spec = importlib.util.spec_from_file_location("golden_record", HERE / "golden" / "record.py")
record = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(record)


# Float rounding differs between CPUs (AMD and Intel kernels sum in different orders): a few
# losses and weights move in their sixth or seventh digit, while every count, episode, return and
# evaluation stays the same. A change of the code moves them far more than this.
ROUNDING = 1e-4
ROUNDED_COLUMNS = {"loss"}  # the one metrics column that rounding moves; the others must be equal


def same_up_to_rounding(column: str, a: str, b: str) -> bool:
    """Two cells of a metrics column: equal, or two losses within ROUNDING of each other (relative)."""
    if a == b:
        return True
    if column not in ROUNDED_COLUMNS:
        return False
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return abs(x - y) <= ROUNDING * max(abs(x), abs(y), 1e-6)


@pytest.mark.parametrize("name", sorted(record.GOLDEN))
def test_golden_run_is_reproduced_up_to_float_rounding(name, tmp_path):
    golden = json.loads((HERE / "golden" / f"{name}.json").read_text())
    record.train_run(golden["preset"], golden["overrides"], tmp_path / name)
    now = record.golden_record(tmp_path / name)
    assert now["summary"] == golden["summary"]
    assert len(now["metrics"]) == len(golden["metrics"])
    for i, (a, b) in enumerate(zip(now["metrics"], golden["metrics"], strict=True)):
        # Columns added since the recording (q_max) are new information, not a change of results.
        assert b.keys() <= a.keys(), f"metrics row {i} lost a column"
        assert all(same_up_to_rounding(k, a[k], b[k]) for k in b), f"metrics row {i} differs: {a} != {b}"
    if now["policy_sha256"] != golden["policy_sha256"]:  # another CPU: the weights up to rounding
        fingerprint, expected = now["policy_fingerprint"], golden["policy_fingerprint"]
        assert fingerprint.keys() == expected.keys()
        for key in expected:
            assert fingerprint[key] == pytest.approx(expected[key], rel=ROUNDING, abs=1e-6), key


@pytest.mark.parametrize("algo", sorted(record.FIXTURES))
def test_release_policy_file_loads_and_acts(algo):
    policy = dqnlab.load_policy(FIXTURES / f"{algo}-policy.pt")
    assert policy.algo == ("dqn" if algo == "pixels" else algo)
    obs = np.zeros((3, *policy.obs_shape), dtype=np.uint8 if policy.pixels is not None else np.float32)
    actions = policy(obs)
    assert actions.shape == (3,) and set(actions.tolist()) <= set(range(policy.n_actions))


def _old_run(algo: str, run_dir: Path) -> Path:
    run_dir.mkdir()
    for f in ("policy.pt", "checkpoint.pt", "config.yaml", "metrics.csv"):
        shutil.copy(FIXTURES / f"{algo}-{f}", run_dir / f)
    return run_dir


@pytest.mark.parametrize("algo", sorted(record.FIXTURES))
def test_release_checkpoint_resumes_with_a_larger_budget(algo, tmp_path):
    run = _old_run(algo, tmp_path / "old")
    budget = record.FIXTURES[algo][1]["total_steps"] + 300
    result = dqnlab.train(run_dir=run, resume=True, total_steps=budget, progress=False)
    assert result.summary["status"] == "finished"
    # A run that stopped by a stop rule (LQR solves at its first evaluation) stays stopped.
    assert result.summary["env_steps"] >= budget or result.summary["stop_reason"] == "threshold"


@pytest.mark.parametrize("algo", ["dqn", "tabular", "baseline"])
def test_release_checkpoint_resume_matches_a_run_never_stopped(algo, tmp_path):
    """Constant learning rates: resuming 0.1.0's checkpoint with a larger budget gives exactly
    the run trained with that budget from the start by this version."""
    preset, overrides = record.FIXTURES[algo]
    budget = overrides["total_steps"] + 300
    resumed = dqnlab.train(run_dir=_old_run(algo, tmp_path / "old"), resume=True, total_steps=budget, progress=False)
    fresh = record.train_run(preset, {**overrides, "total_steps": budget}, tmp_path / "fresh")
    old_rows = read_metrics(resumed.run_dir / "metrics.csv")
    # The resumed run keeps 0.1.0's columns; the fresh one may have more (q_max came later).
    columns = [c for c in old_rows[0] if c != "wall_seconds"]
    strip = lambda rows: [{k: r[k] for k in columns} for r in rows]  # noqa: E731
    # 0.1.0 wrote its checkpoint on another CPU: equal up to float rounding (see ROUNDING).
    for i, (x, y) in enumerate(zip(strip(old_rows), strip(read_metrics(fresh.run_dir / "metrics.csv")), strict=True)):
        assert x.keys() == y.keys() and all(same_up_to_rounding(k, x[k], y[k]) for k in x), f"metrics row {i} differs"
    a, b = resumed.policy.net.state_dict(), fresh.policy.net.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=ROUNDING, atol=1e-6)
