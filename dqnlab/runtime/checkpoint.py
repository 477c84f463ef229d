"""checkpoint.pt: everything needed to resume a run exactly, and the checks a loaded one must pass.

The file is a torch archive holding tensors and plain data only (loaded with weights_only), a
dict with: format and format_version, algo, the run's config, the algorithm's own state
(algo_state, see each TrainLoop.algo_state), the environments' state and the per-environment
episode bookkeeping, the loop's counters, the best network so far, and metrics_bytes, the size
of metrics.csv when it was written (rows after it are dropped on resume and redone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from dqnlab.config import RunConfig, validate_recorded_config
from dqnlab.core.errors import DqnlabError, preview
from dqnlab.core.fileio import safe_torch_load
from dqnlab.runtime.rundir import CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE

CHECKPOINT_FORMAT = "dqnlab.checkpoint"
CHECKPOINT_VERSION = 2


def read_run_checkpoint(run_path: Path, cfg: RunConfig) -> dict | None:
    """The run's checkpoint, refused unless it is a dqnlab checkpoint of this very config (apart
    from the budget, which --total-steps may raise): a checkpoint from another run, or a
    config.yaml edited since, would resume into something that is not the run it claims to be."""
    ckpt_path = run_path / CHECKPOINT_FILE
    if not ckpt_path.exists():
        return None
    checkpoint = safe_torch_load(ckpt_path, "checkpoint")
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise DqnlabError(f"{ckpt_path} is not a dqnlab checkpoint", exit_code=1)
    try:
        saved = validate_recorded_config(checkpoint.get("config"))
    except DqnlabError as exc:
        raise DqnlabError(f"{ckpt_path} holds an invalid config ({exc})", exit_code=1) from None
    diff = first_difference({**saved.to_dict(), "total_steps": None}, {**cfg.to_dict(), "total_steps": None})
    if diff is not None:
        raise DqnlabError(
            f"cannot resume {run_path}: its {CONFIG_FILE} differs from the config its checkpoint was "
            f"trained with ({diff}), so the resume would not be exact; put {CONFIG_FILE} back, or "
            "train a new run with the changed config",
            exit_code=1,
        )
    return checkpoint


def first_difference(a: Any, b: Any, key: str = "") -> str | None:
    """The first place where two plain config dicts differ, as "key: A (checkpoint) vs B (now)"."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            diff = first_difference(a.get(k), b.get(k), f"{key}.{k}" if key else str(k))
            if diff is not None:
                return diff
        return None
    if a == b:
        return None
    show = lambda v: repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."  # noqa: E731
    return f"{key or 'config'}: {show(a)} in the checkpoint, {show(b)} in {CONFIG_FILE}"


def check_header(state: dict[str, Any], algo: str, run_dir: Path, metrics_size: int) -> int:
    """Refuse a checkpoint of another format version or algorithm; return its metrics_bytes,
    checked first because it sizes something: it rewinds metrics.csv, and past the file's end
    ftruncate would extend it with zeros."""
    if state.get("format_version") != CHECKPOINT_VERSION or state.get("algo") != algo:
        raise DqnlabError(
            f"checkpoint in {run_dir} has format version {preview(state.get('format_version'), 40)} for "
            f"algo {preview(state.get('algo'), 40)}; this dqnlab resumes version {CHECKPOINT_VERSION} for "
            f"{algo!r}",
            exit_code=1,
        )
    metrics_bytes = state.get("metrics_bytes")
    if not isinstance(metrics_bytes, int) or isinstance(metrics_bytes, bool) or not 0 <= metrics_bytes <= metrics_size:
        raise DqnlabError(
            f"checkpoint in {run_dir} is damaged (metrics_bytes {preview(metrics_bytes, 40)} "
            f"is not a size within {METRICS_FILE}, {metrics_size} bytes)",
            exit_code=1,
        )
    return metrics_bytes


def check_same_shapes(loaded: Any, current: dict[str, Any], what: str) -> None:
    """ValueError unless `loaded` (from a checkpoint) maps the names of `current` to tensors of
    the same shapes: a damaged checkpoint must fail on resume, not hours later inside a step."""
    if not isinstance(loaded, dict) or set(loaded) != set(current):
        raise ValueError(f"the {what} does not match this run")
    for name, value in current.items():
        if not isinstance(loaded[name], torch.Tensor) or tuple(loaded[name].shape) != tuple(np.shape(value)):
            raise ValueError(f"the {what} does not match this run ({name})")
