"""Atomic file writes and safe (code-free) loading of torch files.

Every file in a run directory is written to a temporary file in the same directory, flushed,
fsynced and renamed over the target, so a crash leaves either the old or the new file, never a
torn one. Torch files are loaded with ``weights_only=True``: tensors and plain containers only,
no arbitrary unpickling.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from dqnlab.core.errors import DqnlabError, preview

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
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(obj: Any) -> Any:
    """`obj` with every float that is not finite replaced by None.

    JSON has no NaN or Infinity: Python's json module writes them as bare `NaN`/`Infinity`
    tokens that other readers (browsers, jq, pandas) refuse. In dqnlab's summaries such a value
    means "no number" (the spread of a single seed, a mean over no finished run), which is null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as JSON, non-finite floats as null (see json_safe): never invalid JSON."""
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def check_archive(path: str | Path, what: str) -> None:
    """Refuse a damaged torch archive: a DqnlabError naming `path` and the damaged member.

    torch.load does not check the CRC-32 that the zip format keeps for every member, so a flipped
    bit in a tensor's bytes would load silently as a slightly different network. Reading every
    member once through zipfile checks them all, at disk speed (about 0.3 s for a 300 MB file,
    as long as torch.load itself). Torch stores members uncompressed; a compressed member, or
    members that add up to more than the file (overlapping entries), is refused before any
    reading, so the check never costs more than one read of the file. A file that is not a zip
    archive at all is left to torch.load to name."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return
    except NotImplementedError as exc:  # a zip directory that asks for a zip version no writer of torch files uses
        raise DqnlabError(f"{what} {path} is damaged (its archive directory: {str(exc)[:100]})", exit_code=1) from None
    with archive:
        members = archive.infolist()
        if any(m.compress_type != zipfile.ZIP_STORED for m in members):
            raise DqnlabError(f"{what} {path} is not a torch archive (it holds compressed members)", exit_code=1)
        if sum(m.compress_size for m in members) > path.stat().st_size:
            raise DqnlabError(f"{what} {path} is damaged (its archive members overlap)", exit_code=1)
        for member in members:
            name = preview(member.filename, 60)
            try:
                with archive.open(member) as f:
                    while f.read(1 << 20):
                        pass
            except zipfile.BadZipFile as exc:
                if "CRC" in str(exc):
                    raise DqnlabError(
                        f"{what} {path} is damaged (checksum mismatch in archive member {name})", exit_code=1
                    ) from None
                raise DqnlabError(
                    f"{what} {path} is damaged (archive member {name}: {str(exc)[:100]})", exit_code=1
                ) from None
            except (EOFError, OSError, ValueError, NotImplementedError, RuntimeError, zlib.error) as exc:
                raise DqnlabError(
                    f"{what} {path} is damaged (archive member {name} cannot be read: "
                    f"{str(exc)[:100] or type(exc).__name__})",
                    exit_code=1,
                ) from None


def safe_torch_load(path: str | Path, what: str) -> Any:
    """torch.load with weights_only=True, after check_archive; any failure becomes one DqnlabError line."""
    path = Path(path)
    if not path.exists():
        raise DqnlabError(f"{what} not found: {path}")
    if path.is_dir():
        raise DqnlabError(f"{what} {path} is a directory, expected a file")
    if path.stat().st_size == 0:
        raise DqnlabError(f"{what} {path} is empty")
    check_archive(path, what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupted, truncated, foreign or malicious: all refused the same way
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            reason = "it contains objects other than tensors and plain data (refused for safety)"
        raise DqnlabError(f"cannot load {what} {path}: {reason[:200]}", exit_code=1) from None
