"""Writing the files the viz commands produce: the overwrite rule and one-line errors.

The rule: a run directory's own derived files (curves.png, episode.gif, report.html, and
curves.png in a `--seeds` folder) are regenerated freely, since they are recomputed from the
runs' data; any other existing file is replaced only when the caller says so (``--overwrite``),
as `dqnlab train` does for run directories, except dqnlab's own records (a run's policy.pt,
metrics.csv, ..., a comparison's compare.json, ...), which no output replaces. Files are written
atomically, so a reader never sees a half-written image.
"""

from __future__ import annotations

from pathlib import Path

from dqnlab.core.errors import DqnlabError
from dqnlab.core.fileio import atomic_write_bytes
from dqnlab.runtime.rundir import folder_kind, is_record_file

CURVES_FILE = "curves.png"
EPISODE_GIF_FILE = "episode.gif"
REPORT_FILE = "report.html"


def is_derived_file(path: str | Path) -> bool:
    """Whether `path` is one of the files dqnlab derives from a run (see the module docstring):
    named so, a regular file or not there yet, in a folder that dqnlab's marker says is a run (or
    a `--seeds` folder, for curves.png). A folder that merely holds a config.yaml is not enough."""
    p = Path(path)
    if p.name not in (CURVES_FILE, EPISODE_GIF_FILE, REPORT_FILE) or p.is_symlink() or p.is_dir():
        return False
    kind = folder_kind(p.parent)
    return kind == "run" or (kind == "seeds" and p.name == CURVES_FILE)


def check_output_path(path: str | Path, overwrite: bool) -> Path:
    """`path` as a Path if a file may be written there, else a DqnlabError saying why.

    Checks happen before any work, so a long render does not end in a refusal."""
    p = Path(path)
    if p.is_dir():
        raise DqnlabError(f"output {p} is a directory; give a file name")
    _refuse_record(p)
    if p.exists() and not overwrite and not is_derived_file(p):
        raise DqnlabError(f"{p} already exists; use --overwrite to replace it")
    if not p.parent.is_dir():
        raise DqnlabError(f"cannot write {p}: folder {p.parent} does not exist")
    return p


def _refuse_record(p: Path) -> None:
    if is_record_file(p):
        raise DqnlabError(
            f"{p} is a record of the dqnlab {folder_kind(p.parent)} in {p.parent}; write the output elsewhere"
        )


def write_output(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (never over one of dqnlab's records, whoever calls); an
    OS failure becomes one DqnlabError line."""
    p = Path(path)
    _refuse_record(p)
    try:
        atomic_write_bytes(p, data)
    except OSError as exc:
        raise DqnlabError(f"cannot write {p}: {exc.strerror or exc}", exit_code=1) from None
    return p
