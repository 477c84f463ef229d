"""The `dqnlab export` command: a delivered policy as an ONNX and/or TorchScript file.

    dqnlab export RUN_DIR_OR_POLICY_FILE [--onnx FILE] [--torchscript FILE] [--overwrite]

What the files hold, and the checks made before they are written: dqnlab.runtime.export.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dqnlab.cli import argtypes
from dqnlab.core.errors import DqnlabError

DESCRIPTION = """\
Write the delivered policy's network as a model file for deployment, without dqnlab or Python:
ONNX (onnxruntime, TensorRT, ...; needs pip install "dqnlab[export]") and/or TorchScript
(libtorch, torch.jit.load). The model maps a batch of observations to one score per action;
the action is the argmax.

  input   obs     float32  (N, obs_dim)       state policies (DQN, PPO's actor)
          frames  uint8    (N, K*C, H, W)     pixel policies: K frames of C channels, oldest
                                              first, values 0..255, drawn as dqnlab draws them
  output  scores  float32  (N, n_actions)     Q-values (DQN) or logits (PPO)

N, the batch, is dynamic. Each model is loaded back and checked against the policy before its
file is written (atomically). Tabular and baseline policies are not networks and are not
exported. An existing file is replaced only with --overwrite."""


def add_command(sub: argparse._SubParsersAction) -> None:
    """Add `export` to dqnlab's subparsers."""
    x = sub.add_parser(
        "export",
        help="write a policy as an ONNX or TorchScript model for deployment",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    x.add_argument("path", type=argtypes.path_text, metavar="RUN_DIR_OR_POLICY_FILE")
    x.add_argument("--onnx", type=argtypes.path_text, metavar="FILE.onnx", help="write an ONNX model here")
    x.add_argument("--torchscript", type=argtypes.path_text, metavar="FILE.pt", help="write a TorchScript model here")
    x.add_argument("--overwrite", action="store_true", help="replace existing --onnx or --torchscript files")


def _output(path: str, overwrite: bool) -> Path:
    from dqnlab.viz.output import check_output_path

    out = check_output_path(path, overwrite)  # first: a run's records are refused even with --overwrite
    if out.is_file() and not overwrite:
        raise DqnlabError(f"{path} already exists; use --overwrite to replace it")
    return out


def cmd_export(args: argparse.Namespace) -> int:
    from dqnlab.algos.registry import load_policy
    from dqnlab.runtime.export import check_exportable, export_policy, model_input

    policy = load_policy(args.path)  # first: a missing run is the error to report
    check_exportable(policy)
    if args.onnx is None and args.torchscript is None:
        raise DqnlabError("export needs --onnx FILE, --torchscript FILE or both")
    if args.onnx is not None and args.torchscript is not None and Path(args.onnx) == Path(args.torchscript):
        raise DqnlabError("--onnx and --torchscript name the same file")
    # the overwrite rule of plot and play, checked before any work; a model file is never a
    # run's own derived file, so an existing one is replaced only with --overwrite
    onnx, torchscript = (None if p is None else _output(p, args.overwrite) for p in (args.onnx, args.torchscript))
    for path in export_policy(policy, onnx=onnx, torchscript=torchscript):
        kind = "ONNX" if path == onnx else "TorchScript"
        print(f"wrote {path} ({kind}, {path.stat().st_size / 1e3:.1f} kB)")
    spec = model_input(policy)
    print(f"input {spec.describe()} -> output scores: float32 (N, {policy.n_actions}); action = argmax")
    return 0
