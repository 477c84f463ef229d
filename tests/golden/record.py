"""Record the golden runs (and release fixtures) that guard refactors: `python tests/golden/record.py`.

Each golden run trains a few thousand steps of one algorithm and stores what must not change
when code moves: every metrics.csv row but its wall time, the delivered policy's weights (as a
SHA-256 of the tensors in key order, and a fingerprint that survives float rounding) and the
summary's counters. `tests/test_golden.py` retrains each and compares: exactly on a CPU like the
recording one, up to float rounding on another (kernels round differently on AMD and Intel
CPUs). Re-record only for an intended change of results, and say so in the commit.

The fixtures (`tests/fixtures/<version>/`) are a policy.pt and checkpoint.pt of each algorithm,
written by the release named in the folder, which later versions must still load and resume.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (preset, overrides): a few thousand steps each, everything else as the preset says.
GOLDEN = {
    # The default preset as it was recorded: before its policy average (issue #16).
    "default": ("default", {"total_steps": 3000, "artifacts": False, "dqn.policy_average_tau": None}),
    "ppo": ("ppo", {"total_steps": 3000, "artifacts": False}),
    "tabular": ("tabular", {"total_steps": 3000, "artifacts": False}),
    "pixels": (
        "pixels",
        {
            "total_steps": 1500,
            "artifacts": False,
            "dqn.buffer_size": 2000,
            "dqn.learning_starts": 500,
            "eval.episodes": 10,
            "eval.final_episodes": 10,
            # The preset's network and learning rate when this run was recorded (issue #16 made
            # the preset's smaller and faster): the golden run guards the code, not the preset.
            "network.conv": [[16, 4, 2], [32, 4, 2], [32, 3, 2]],
            "dqn.lr": 1e-3,
            "dqn.policy_average_tau": None,  # nor its policy average (session 14)
            "dqn.bound_targets": False,
        },
    ),
}

# Small runs whose policy.pt and checkpoint.pt become the release fixtures.
FIXTURES = {
    "dqn": (
        "default",
        {
            "total_steps": 1200,
            "artifacts": False,
            "dqn.policy_average_tau": None,  # the default preset of 0.1.0 had none
            "dqn.bound_targets": False,  # nor this
            "dqn.buffer_size": 1000,
            "eval.episodes": 5,
            "eval.final_episodes": 5,
            "checkpoint_every": 1000,
        },
    ),
    "ppo": (
        "ppo",
        {
            "total_steps": 1200,
            "artifacts": False,
            "eval.episodes": 5,
            "eval.final_episodes": 5,
            "checkpoint_every": 1000,
        },
    ),
    "tabular": (
        "tabular",
        {
            "total_steps": 1200,
            "artifacts": False,
            "eval.episodes": 5,
            "eval.final_episodes": 5,
            "checkpoint_every": 1000,
        },
    ),
    "baseline": (
        "lqr",
        {
            "total_steps": 1200,
            "artifacts": False,
            "eval.episodes": 5,
            "eval.final_episodes": 5,
            "checkpoint_every": 1000,
        },
    ),
    "pixels": (
        "pixels",
        {
            "total_steps": 300,
            "artifacts": False,
            "dqn.buffer_size": 50,
            "dqn.batch_size": 16,
            "dqn.learning_starts": 100,
            "eval.episodes": 2,
            "eval.final_episodes": 2,
            "eval.every_steps": 200,
            "checkpoint_every": 200,
        },
    ),
}


def weights_digest(state_dict) -> str:
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().contiguous().cpu()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def weights_fingerprint(state_dict) -> dict[str, list[float]]:
    """Per tensor, the sum and the sum of absolute values of its elements: what the weights must
    reproduce up to float rounding, which differs between CPUs (the SHA-256 is exact, and holds
    only on a machine like the recording one)."""
    return {
        key: [float(t.double().sum()), float(t.double().abs().sum())]
        for key, t in sorted(state_dict.items())
        if t.is_floating_point()
    }


def golden_record(run_dir: Path) -> dict:
    """What a golden run must reproduce, read back from its run directory."""
    import dqnlab
    from dqnlab.runtime.rundir import read_metrics

    rows = [{k: v for k, v in r.items() if k != "wall_seconds"} for r in read_metrics(run_dir / "metrics.csv")]
    summary = json.loads((run_dir / "summary.json").read_text())
    policy = dqnlab.load_policy(run_dir)
    return {
        "metrics": rows,
        "policy_sha256": weights_digest(policy.net.state_dict()),
        "policy_fingerprint": weights_fingerprint(policy.net.state_dict()),
        "summary": {
            k: summary.get(k)
            for k in (
                "env_steps",
                "episodes",
                "grad_steps",
                "eval_mean",
                "eval_std",
                "stop_reason",
                "best_eval_step",
                "steps_to_threshold",
            )
        },
    }


def train_run(preset: str, overrides: dict, run_dir: Path):
    import dqnlab

    # build_config reads a keyword None as "not given": a null goes in as an override.
    nulls = [f"{key}=null" for key, value in overrides.items() if value is None]
    fields = {key: value for key, value in overrides.items() if value is not None}
    return dqnlab.train(dqnlab.build_config(preset, overrides=nulls, **fields), run_dir=run_dir, progress=False)


def main() -> None:
    import dqnlab

    which = sys.argv[1:] or ["golden", "fixtures"]
    with tempfile.TemporaryDirectory() as tmp:
        if "golden" in which:
            for name, (preset, overrides) in GOLDEN.items():
                run_dir = Path(tmp) / name
                train_run(preset, overrides, run_dir)
                record = {"preset": preset, "overrides": overrides, **golden_record(run_dir)}
                (HERE / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
                print(f"recorded {name}: {len(record['metrics'])} rows, {record['summary']}")
        if "fixtures" in which:
            out = HERE.parent / "fixtures" / dqnlab.__version__
            out.mkdir(parents=True, exist_ok=True)
            for name, (preset, overrides) in FIXTURES.items():
                run_dir = Path(tmp) / f"fx-{name}"
                train_run(preset, overrides, run_dir)
                for f in ("policy.pt", "checkpoint.pt", "config.yaml", "metrics.csv"):
                    shutil.copy(run_dir / f, out / f"{name}-{f}")
                print(f"fixture {name}: {sorted(p.name for p in out.glob(name + '-*'))}")


if __name__ == "__main__":
    main()
