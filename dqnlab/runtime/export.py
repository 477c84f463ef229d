"""A delivered policy as a file for deployment: ONNX (onnxruntime, TensorRT, browsers, C++, ...)
or TorchScript (libtorch in C++, or torch.jit.load without dqnlab).

The exported model is the policy's network alone: observations in, one score per action out,
and the action is the argmax of the scores, as `Policy.__call__` takes it.

    input   obs      float32  (N, obs_dim)          a state policy (DQN's MLP, PPO's actor)
            frames   uint8    (N, K * C, H, W)      a pixel policy: K frames of C channels, oldest
                                                    first, intensities 0..255 (the network scales them)
    output  scores   float32  (N, n_actions)        Q-values (DQN) or logits (PPO)

N, the batch, is dynamic. Frames are what dqnlab's pixel environments draw (see
dqnlab.envs.pixels and `Policy.wrap_env`); a deployment must draw and stack them the same way.

Only neural-network policies are exported (algorithms in EXPORTABLE): a tabular policy is a
lookup of discretised states and a baseline a fixed controller, neither a network worth a model
file. Every file is checked before it is written: it is loaded back (onnxruntime, torch.jit.load)
and must give the policy's scores on a batch of inputs, so a written file is a tested file. Files
are written atomically.
"""

from __future__ import annotations

import inspect
import io
import json
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dqnlab.core.errors import DqnlabError
from dqnlab.core.fileio import atomic_write_bytes
from dqnlab.core.version import __version__
from dqnlab.runtime.policy import Policy

EXPORTABLE = ("dqn", "ppo", "pqn")
"""Algorithms whose policies are networks that export."""
ONNX_OPSET = 17
"""ONNX operator set of the exported models: read by onnxruntime 1.14 and later."""
CHECK_BATCH = 256
"""Inputs on which an exported file is checked against the policy before it is written."""
OUTPUT_NAME = "scores"


@dataclass(frozen=True)
class ModelInput:
    """The exported model's input: its name, element type and shape ("N" is the dynamic batch)."""

    name: str
    dtype: str
    shape: tuple[str | int, ...]

    def describe(self) -> str:
        return f"{self.name}: {self.dtype} ({', '.join(map(str, self.shape))})"


def model_input(policy: Policy) -> ModelInput:
    """What the exported model of `policy` takes (see the module docstring)."""
    if policy.pixels is not None:
        return ModelInput("frames", "uint8", ("N", *policy.obs_shape))
    return ModelInput("obs", "float32", ("N", *policy.obs_shape))


def check_exportable(policy: Policy) -> None:
    """A one-line DqnlabError unless `policy` is a network dqnlab exports."""
    if policy.algo in EXPORTABLE:
        return
    what = {
        "tabular": "a tabular policy is a Q-table looked up by discretised state, not a network",
        "baseline": "a baseline is a fixed controller, not a trained network",
    }.get(policy.algo, f"algo {policy.algo!r} is not one dqnlab exports")
    raise DqnlabError(f"cannot export this policy: {what}; export takes {' and '.join(EXPORTABLE)} policies")


def example_inputs(policy: Policy, n: int, seed: int = 0) -> np.ndarray:
    """`n` inputs for checking an exported model, (n, *obs_shape): random frames over all of 0..255
    for a pixel policy, standard normal states otherwise (the scale of CartPole's observations)."""
    rng = np.random.default_rng(seed)
    if policy.pixels is not None:
        return rng.integers(0, 256, size=(n, *policy.obs_shape), dtype=np.uint8)
    return rng.standard_normal((n, *policy.obs_shape)).astype(np.float32)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _metadata(policy: Policy) -> dict[str, str]:
    meta = {
        "dqnlab_version": __version__,
        "algo": policy.algo,
        "env_id": policy.env_id,
        "input": model_input(policy).describe(),
        "output": f"{OUTPUT_NAME}: float32 (N, {policy.n_actions}); action = argmax over axis 1",
    }
    if policy.pixels is not None:  # how the frames are drawn: the policy's env.pixels section
        meta["pixels"] = json.dumps(policy.pixels.model_dump(mode="json"))
    return meta


def onnx_bytes(policy: Policy) -> bytes:
    """The policy's network as an ONNX model (needs the onnx package), its input and output named
    as model_input says, the batch dynamic, dqnlab's description in the model's metadata."""
    check_exportable(policy)
    try:
        import onnx
    except ImportError:
        raise DqnlabError('exporting to ONNX needs onnx and onnxruntime: pip install "dqnlab[export]"') from None
    spec = model_input(policy)
    example = torch.from_numpy(example_inputs(policy, 2))
    kwargs = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript-based exporter: the dynamo one needs onnxscript besides
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch >= 2.9 calls this exporter legacy (DeprecationWarning)
        path = Path(tmp) / "policy.onnx"
        try:
            torch.onnx.export(
                policy.net.eval(),
                (example,),
                path,
                input_names=[spec.name],
                output_names=[OUTPUT_NAME],
                dynamic_axes={spec.name: {0: "N"}, OUTPUT_NAME: {0: "N"}},
                opset_version=ONNX_OPSET,
                **kwargs,  # type: ignore[arg-type]
            )
        except Exception as exc:  # an operator the exporter cannot write, and the like
            raise DqnlabError(f"ONNX export failed: {_first_line(exc)}", exit_code=1) from None
        model = onnx.load(path)
    model.doc_string = f"dqnlab {policy.algo} policy for {policy.env_id}: scores per action, act by argmax"
    for key, value in _metadata(policy).items():
        model.metadata_props.add(key=key, value=value)
    return model.SerializeToString()


def torchscript_bytes(policy: Policy) -> bytes:
    """The policy's network traced to TorchScript, dqnlab's description in the extra file
    `dqnlab.json` (torch.jit.load(path, _extra_files={"dqnlab.json": ""}) reads it)."""
    check_exportable(policy)
    example = torch.from_numpy(example_inputs(policy, 2))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch 2.13 warns that torch.jit is deprecated; libtorch still loads it
        try:
            traced = torch.jit.trace(policy.net.eval(), example)
        except Exception as exc:
            raise DqnlabError(f"TorchScript export failed: {_first_line(exc)}", exit_code=1) from None
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files={"dqnlab.json": json.dumps(_metadata(policy))})
    return buf.getvalue()


def onnx_scores(data: bytes, inputs: np.ndarray) -> np.ndarray:
    """Scores of an ONNX model (bytes) on `inputs`, computed by onnxruntime on the CPU."""
    try:
        import onnxruntime
    except ImportError:
        raise DqnlabError('exporting to ONNX needs onnx and onnxruntime: pip install "dqnlab[export]"') from None
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: inputs})
    return np.asarray(out)


def torchscript_scores(data: bytes, inputs: np.ndarray) -> np.ndarray:
    """Scores of a TorchScript model (bytes) on `inputs`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    with torch.no_grad():
        return module(torch.from_numpy(inputs)).numpy()


def _check(policy: Policy, data: bytes, scores: Callable[[bytes, np.ndarray], np.ndarray], what: str) -> None:
    inputs = example_inputs(policy, CHECK_BATCH, seed=1)
    want, got = policy.q_values(inputs), scores(data, inputs)
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-4):
        raise DqnlabError(f"the {what} model does not reproduce the policy's scores; nothing written", exit_code=1)


def export_policy(policy: Policy, onnx: str | Path | None = None, torchscript: str | Path | None = None) -> list[Path]:
    """Write `policy` as ONNX to `onnx` and/or as TorchScript to `torchscript` (existing files are
    replaced: callers apply the overwrite rule first); return the paths written. Each model is
    loaded back and checked against the policy before its file is written."""
    check_exportable(policy)
    if onnx is None and torchscript is None:
        raise DqnlabError("nothing to export: give an ONNX path, a TorchScript path or both")
    models = []
    if onnx is not None:
        data = onnx_bytes(policy)
        _check(policy, data, onnx_scores, "ONNX")
        models.append((Path(onnx), data))
    if torchscript is not None:
        data = torchscript_bytes(policy)
        _check(policy, data, torchscript_scores, "TorchScript")
        models.append((Path(torchscript), data))
    for path, data in models:
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise DqnlabError(f"cannot write {path}: {exc.strerror or exc}", exit_code=1) from None
    return [path for path, _ in models]
