"""`dqnlab export`: ONNX and TorchScript models that act as the policy does, and the refusals.

Each exported model is run outside dqnlab (onnxruntime; torch.jit.load) on 10,000 inputs: states
drawn over CartPole's plausible range for state policies (DQN's MLP, PPO's actor), frame stacks
drawn by the environment for a pixel policy. The model must pick the policy's action wherever
the policy's own scores are not a tie at float32 precision."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import dqnlab
from dqnlab.cli.main import main

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

N = 10_000
SHARPEN = 1000.0
TIE = 1e-5
"""Score gaps below this are ties that float32 rounding may break either way (none expected)."""
# CartPole's termination bounds for x and the angle, and a generous range for the velocities
STATE_LOW = np.array([-2.4, -3.0, -0.2095, -3.5], dtype=np.float32)
STATE_HIGH = -STATE_LOW


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    from conftest import tiny_config

    root = tmp_path_factory.mktemp("export")
    pixels = {"preset": "pixels", "total_steps": 300, "dqn.learning_starts": 100, "eval.every_steps": 300}
    configs = {
        "dqn": tiny_config(total_steps=1500, **{"eval.every_steps": 500}),
        "dqn-dueling-bn": tiny_config(  # the online network delivered: 1000 steps leave an average untrained
            total_steps=1000,
            **{
                "network.dueling": True,
                "network.batch_norm": True,
                "dqn.fast_path": False,
                "dqn.policy_average_tau": None,
            },
        ),
        "ppo": tiny_config(preset="ppo", total_steps=1500, **{"eval.every_steps": 500}),
        "pqn": tiny_config(preset="pqn", total_steps=4000, **{"eval.every_steps": 1000}),  # LayerNorm
        "pixels": tiny_config(**pixels),
        "tabular": tiny_config(preset="tabular", total_steps=500),
        "lqr": tiny_config(preset="lqr", total_steps=500),
    }
    for name, cfg in configs.items():
        dqnlab.train(cfg, root / name, progress=False)
    paths = {name: root / name for name in configs}
    paths["pixels"] = balanced_pixel_policy(paths["pixels"], root / "pixels-balanced.pt")
    return paths


def balanced_pixel_policy(run: Path, out: Path) -> Path:
    """The run's pixel policy made to tell frames apart, saved to `out`: 300 steps of training leave
    it picking one action on every frame, its scores differing by a few millionths from frame to
    frame. Its last layer is scaled up (SHARPEN) and its bias shifted so that it picks each action
    on about half of the environment's frames, with no frame on a tie."""
    policy = dqnlab.load_policy(run)
    last = [m for m in policy.net.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight *= SHARPEN
        last.bias *= SHARPEN
        q = policy.q_values(environment_frames(policy, 2000, seed=1))
        last.bias[1] -= float(np.median(q[:, 1] - q[:, 0])) + 1e-3  # off any frame's exact score
    policy.save(out)
    return out


def cartpole_states(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(STATE_LOW, STATE_HIGH, size=(n, 4)).astype(np.float32)


def environment_frames(policy, n: int, seed: int = 0) -> np.ndarray:
    """`n` frame stacks as the pixel policy sees them, from episodes of random actions."""
    env = policy.wrap_env(gym.make(policy.env_id))
    rng = np.random.default_rng(seed)
    frames = []
    obs, _ = env.reset(seed=seed)
    while len(frames) < n:
        frames.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.stack(frames)


def assert_same_actions(policy, inputs: np.ndarray, scores: np.ndarray) -> None:
    want = policy.q_values(inputs)  # (N, n_actions)
    assert scores.shape == want.shape == (len(inputs), policy.n_actions)
    top2 = np.sort(want, axis=1)[:, -2:]
    decisive = top2[:, 1] - top2[:, 0] > TIE
    assert decisive.sum() >= len(inputs) - 10  # a tie is a measure-zero event: at most a handful
    np.testing.assert_array_equal(scores.argmax(axis=1)[decisive], policy(inputs)[decisive])
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name", ["dqn", "dqn-dueling-bn", "ppo", "pqn", "pixels"])
def test_exported_models_act_as_the_policy(runs, name, tmp_path, capsys):
    policy = dqnlab.load_policy(runs[name])
    onnx_path, ts_path = tmp_path / "policy.onnx", tmp_path / "policy.pt"
    assert main(["export", str(runs[name]), "--onnx", str(onnx_path), "--torchscript", str(ts_path)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {onnx_path} (ONNX" in out and f"wrote {ts_path} (TorchScript" in out
    pixels = name == "pixels"
    inputs = environment_frames(policy, N) if pixels else cartpole_states(N)

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (spec,) = session.get_inputs()
    assert (spec.name, spec.type) == (("frames", "tensor(uint8)") if pixels else ("obs", "tensor(float)"))
    assert spec.shape == ["N", *policy.obs_shape]  # a dynamic batch
    assert [o.name for o in session.get_outputs()] == ["scores"]
    (scores,) = session.run(None, {spec.name: inputs})
    assert_same_actions(policy, inputs, scores)
    assert 0.2 < policy(inputs).mean() < 0.8  # both actions are picked: the inputs tell states apart
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["algo"] == policy.algo and meta["env_id"] == "CartPole-v1"
    assert ("pixels" in meta) == pixels

    extra = {"dqnlab.json": ""}
    module = torch.jit.load(str(ts_path), _extra_files=extra)
    with torch.no_grad():
        assert_same_actions(policy, inputs, module(torch.from_numpy(inputs)).numpy())
    assert json.loads(extra["dqnlab.json"])["input"] == f"{spec.name}: {'uint8' if pixels else 'float32'} " + (
        f"(N, {', '.join(map(str, policy.obs_shape))})"
    )


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dqnlab: error: "), err
    return lines[0]


def test_refusals_are_one_line(runs, tmp_path, capsys):
    kept = tmp_path / "kept.onnx"
    kept.write_bytes(b"mine")
    assert main(["export", str(runs["dqn"]), "--onnx", str(kept)]) == 2
    assert (
        one_error_line(capsys.readouterr().err)
        == f"dqnlab: error: {kept} already exists; use --overwrite to replace it"
    )
    # the TorchScript file is refused before the ONNX one is written: nothing is written at all
    assert main(["export", str(runs["dqn"]), "--onnx", str(tmp_path / "new.onnx"), "--torchscript", str(kept)]) == 2
    assert "already exists" in one_error_line(capsys.readouterr().err) and not (tmp_path / "new.onnx").exists()
    assert kept.read_bytes() == b"mine"
    # a run's own derived file names are no exception for a model file
    derived = runs["dqn"] / "report.html"
    derived.write_text("report")
    assert main(["export", str(runs["dqn"]), "--onnx", str(derived)]) == 2
    assert "already exists" in one_error_line(capsys.readouterr().err) and derived.read_text() == "report"
    assert main(["export", str(runs["dqn"]), "--onnx", str(kept), "--overwrite"]) == 0
    assert kept.read_bytes() != b"mine"
    capsys.readouterr()

    for name, what in (("tabular", "a tabular policy is a Q-table"), ("lqr", "a baseline is a fixed controller")):
        assert main(["export", str(runs[name]), "--onnx", str(tmp_path / f"{name}.onnx")]) == 2
        line = one_error_line(capsys.readouterr().err)
        assert line.startswith(f"dqnlab: error: cannot export this policy: {what}") and "dqn and ppo" in line
        assert not (tmp_path / f"{name}.onnx").exists()

    assert main(["export", str(runs["dqn"])]) == 2
    assert "--onnx FILE, --torchscript FILE or both" in one_error_line(capsys.readouterr().err)
    same = str(tmp_path / "same")
    assert main(["export", str(runs["dqn"]), "--onnx", same, "--torchscript", same]) == 2
    assert "the same file" in one_error_line(capsys.readouterr().err)
    assert main(["export", str(tmp_path / "missing"), "--onnx", str(tmp_path / "m.onnx")]) != 0
    assert "not found" in one_error_line(capsys.readouterr().err)


def test_onnx_without_its_packages_is_one_line(runs, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    assert main(["export", str(runs["dqn"]), "--onnx", str(tmp_path / "p.onnx")]) == 2
    assert 'pip install "dqnlab[export]"' in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "p.onnx").exists()
