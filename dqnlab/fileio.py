"""Atomic file writes and safe (code-free) loading of torch files.

Every file in a run directory is written to a temporary file in the same directory, flushed,
fsynced and renamed over the target, so a crash leaves either the old or the new file, never a
torn one. Torch files are loaded with ``weights_only=True``: tensors and plain containers only,
no arbitrary unpickling.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from dqnlab.errors import DqnlabError


_UMASK = os.umask(0)
os.umask(_UMASK)  # read the process umask (there is no getter) and put it back


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would make run files private to the owner
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def safe_torch_load(path: str | Path, what: str) -> Any:
    """torch.load with weights_only=True; any failure becomes one DqnlabError line."""
    path = Path(path)
    if not path.exists():
        raise DqnlabError(f"{what} not found: {path}")
    if path.is_dir():
        raise DqnlabError(f"{what} {path} is a directory, expected a file")
    if path.stat().st_size == 0:
        raise DqnlabError(f"{what} {path} is empty")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupted, truncated, foreign or malicious: all refused the same way
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            reason = "it contains objects other than tensors and plain data (refused for safety)"
        raise DqnlabError(f"cannot load {what} {path}: {reason[:200]}", exit_code=1) from None
