"""The run directory: its files, its creation rules, and the append-only metrics log.

config.yaml     the fully resolved config (load it back with `dqnlab train --config`)
metrics.csv     one row per training episode and per evaluation
policy.pt       the delivered (best-evaluated) greedy policy
checkpoint.pt   everything needed to resume
summary.json    the outcome, written at the end (or on interruption)
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path

from dqnlab.core.errors import DqnlabError
from dqnlab.core.fileio import atomic_write_json
from dqnlab.core.version import __version__

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
CHECKPOINT_FILE = "checkpoint.pt"
SUMMARY_FILE = "summary.json"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, "policy.pt", CHECKPOINT_FILE, SUMMARY_FILE)

METRIC_COLUMNS = (
    # "train" (a finished training episode), "eval" (an evaluation), "confirm" (its re-check),
    # "partial" (an evaluation cut short by eval.max_return_to_go: eval_mean is the most it could
    # have been) or "recheck" (eval.shortlist's second evaluation of the network evaluated at env_step)
    "kind",
    "env_step",
    "episode",
    "return",
    "length",
    "epsilon",
    "loss",
    "eval_mean",
    "eval_std",
    "eval_success",  # share of the evaluation's episodes that the env called a success (target tasks)
    "q_max",  # at an evaluation: the largest |Q| on recently stored states (value-based algorithms)
    "wall_seconds",
)


def default_run_dir(preset: str | None, env_id: str, seeds: str, root: str | Path = "runs") -> Path:
    """runs/<preset>-<env>-s<seeds>-<timestamp>[-k]: a fresh name, so reruns never collide."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    env = env_id.replace("/", "_")
    base = Path(root) / f"{preset or 'custom'}-{env}-s{seeds}-{stamp}"
    candidate, k = base, 1
    while candidate.exists():
        k += 1
        candidate = base.with_name(f"{base.name}-{k}")
    return candidate


# ---------------------------------------------------------------------------------------------
# What is dqnlab's: the folder marker
# ---------------------------------------------------------------------------------------------
# A folder is dqnlab's (a run, a --seeds folder, a comparison, a sweep) only if it holds this
# marker, a small JSON file no other program writes. A file named config.yaml proves nothing: a
# user's project folder may hold one. Deleting and replacing are decided by the marker alone,
# and even then only the files dqnlab writes are ever removed.

MARKER_FILE = ".dqnlab"
MARKER_FORMAT = "dqnlab.folder"
MARKER_VERSION = 1
FOLDER_KINDS = ("run", "seeds", "compare", "sweep")
LOCK_FILE = ".dqnlab.lock"
_WRITE_PROBE = ".dqnlab-write-test"
_MAX_MARKER_BYTES = 4096

# The files dqnlab writes into a run directory (besides the marker and the lock). Plots, the
# episode animation and the report are derived from the run; `tensorboard/` holds only event
# files. Anything else in a run directory is the user's, and is never removed.
DERIVED_RUN_FILES = ("curves.png", "episode.gif", "report.html")
TENSORBOARD_DIR = "tensorboard"
OWN_RUN_FILES = frozenset((*RUN_FILES, *DERIVED_RUN_FILES, MARKER_FILE, LOCK_FILE, _WRITE_PROBE))


# The files a `seeds`, `compare` or `sweep` output folder holds besides its runs, marker and lock.
OUTPUT_FOLDER_FILES = {
    "seeds": ("seeds_summary.json", "curves.png"),
    "compare": ("compare.json", "compare.md", "curves.png"),
    "sweep": ("trials.csv", "best.yaml", "study.db"),
}


def is_record_file(path: Path) -> bool:
    """Whether `path` is one of the records dqnlab keeps in one of its folders: a run's config,
    metrics, policy, checkpoint and summary, an output folder's summaries (compare.json, trials.csv,
    ...), any folder's marker and lock. Unlike the pictures derived from them, a record is not
    recomputed: no command that writes a picture or an export may replace one, with --overwrite
    or without."""
    kind = folder_kind(path.parent)
    if kind is None:
        return False
    if path.name in (MARKER_FILE, LOCK_FILE):
        return True
    if kind == "run":
        return path.name in RUN_FILES
    return path.name in OUTPUT_FOLDER_FILES[kind] and path.name != "curves.png"


def write_marker(folder: Path, kind: str) -> None:
    atomic_write_json(
        folder / MARKER_FILE, {"format": MARKER_FORMAT, "version": MARKER_VERSION, "kind": kind, "dqnlab": __version__}
    )


def folder_kind(folder: Path) -> str | None:
    """The kind of dqnlab folder `folder` is ("run", "seeds", "compare", "sweep"), or None.

    The marker must be a regular file (a symlink does not count: it could point anywhere). Runs
    written by dqnlab 0.1.0, before the marker existed, are recognised by their checkpoint."""
    import json

    marker = folder / MARKER_FILE
    try:
        st = marker.lstat()
    except OSError:
        return "run" if _is_legacy_run(folder) else None
    if not _stat_is_file(st) or st.st_size > _MAX_MARKER_BYTES:
        return None
    try:
        data = json.loads(marker.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT or data.get("kind") not in FOLDER_KINDS:
        return None
    return data["kind"]


def _stat_is_file(st: os.stat_result) -> bool:
    import stat

    return stat.S_ISREG(st.st_mode)


def _is_legacy_run(folder: Path) -> bool:
    """A run directory written by dqnlab 0.1.0 (no marker): config.yaml and a checkpoint.pt whose
    pickled record names dqnlab's checkpoint format. Only the archive's small record is read."""
    import zipfile

    try:
        if not (_stat_is_file((folder / CONFIG_FILE).lstat()) and _stat_is_file((folder / CHECKPOINT_FILE).lstat())):
            return False
        with zipfile.ZipFile(folder / CHECKPOINT_FILE) as z:
            record = next((n for n in z.namelist() if n.endswith("/data.pkl")), None)
            if record is None or z.getinfo(record).file_size > 10_000_000:
                return False
            return b"dqnlab.checkpoint" in z.read(record)
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError):
        return False


def is_run_dir(path: Path) -> bool:
    """Whether `path` holds a dqnlab run (its marker, or a 0.1.0 run's checkpoint)."""
    return not Path(path).is_symlink() and folder_kind(Path(path)) == "run"


def is_own_run_entry(entry: Path) -> bool:
    """Whether `entry`, inside a run directory, is something dqnlab wrote there: one of its files
    (a regular file, never a link), a temporary file of an atomic write, or tensorboard/ holding
    only regular files."""
    try:
        st = entry.lstat()
    except OSError:
        return False
    name = entry.name
    if name == TENSORBOARD_DIR:
        import stat

        return stat.S_ISDIR(st.st_mode) and all(
            not c.is_symlink() and c.is_file() and c.name.startswith("events.out.tfevents.") for c in entry.iterdir()
        )
    if not _stat_is_file(st):
        return False
    if name in OWN_RUN_FILES:
        return True
    # fileio.atomic_write_bytes' temporary files: ".<target>.<random>.tmp", left by a crash
    return (
        name.startswith(".")
        and name.endswith(".tmp")
        and name[1:].split(".", 1)[0] in {n.split(".")[0] for n in OWN_RUN_FILES if not n.startswith(".")}
    )


def foreign_entries(run_dir: Path) -> list[Path]:
    """The entries of `run_dir` that dqnlab did not write (sorted)."""
    return sorted(e for e in run_dir.iterdir() if not is_own_run_entry(e))


def check_path_text(path: str | Path, what: str = "--run-dir") -> Path:
    """`path` as a Path; an empty string (which would silently mean the current folder) is refused."""
    if isinstance(path, str) and not path.strip():
        raise DqnlabError(f"{what} is empty; name a folder")
    return Path(path)


# ---------------------------------------------------------------------------------------------
# One writer per folder: an OS file lock held for the life of the writer
# ---------------------------------------------------------------------------------------------


class FolderLock:
    """An exclusive flock on FOLDER/.dqnlab.lock. The OS releases it when the process ends, even
    by SIGKILL, so a crashed writer never leaves a folder locked. The holder's pid is written into
    the file for the message a second writer gets."""

    def __init__(self, folder: Path, what: str = "run directory", shared: bool = False):
        self.folder, self.what, self.shared = Path(folder), what, shared
        self.fd: int | None = None

    def acquire(self) -> FolderLock:
        import fcntl

        path = self.folder / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DqnlabError(f"cannot lock {self.what} {self.folder}: {exc.strerror or exc}", exit_code=1) from None
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise DqnlabError(
                f"{self.what} {self.folder} is in use by another dqnlab process{pid}; "
                "wait for it to finish or stop it first",
                exit_code=1,
            ) from None
        except OSError as exc:
            os.close(fd)
            raise DqnlabError(f"cannot lock {self.what} {self.folder}: {exc.strerror or exc}", exit_code=1) from None
        if not self.shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None


def is_locked(folder: Path) -> bool:
    """Whether a live process holds `folder`'s lock (no lock file: not locked)."""
    try:
        FolderLock(folder).acquire().release()
    except DqnlabError:
        return (folder / LOCK_FILE).exists()
    return False


def open_output_folder(path: str | Path, kind: str, what: str = "--out", shared: bool = False) -> FolderLock:
    """Open the output folder of a command that writes many runs (`kind` "seeds", "compare" or
    "sweep") for one writer (or, `shared`, for several cooperating ones: sweeps sharing one
    study), and return its held lock.

    A missing or empty folder is created and marked. An existing one must carry the marker of
    the same kind (or be such a folder written by dqnlab 0.1.0, which is then marked): a folder
    of the user's, or of another command, is refused, so that the command's own files
    (compare.json, trials.csv, best.yaml, ...) never replace someone else's."""
    p = check_path_text(path, what)
    if p.exists() and not p.is_dir():
        raise DqnlabError(f"{what} {p} exists and is not a directory")
    if p.is_dir() and any(p.iterdir()):
        found = folder_kind(p)
        if found is None and _is_legacy_output(p, kind):
            found = kind
        if found != kind:
            held = f"a dqnlab {found}" if found else "files that dqnlab did not write there"
            raise DqnlabError(f"{what} {p} holds {held}, not a dqnlab {kind} output; choose another folder")
    else:
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DqnlabError(f"cannot create {what} {p}: {exc.strerror or exc}", exit_code=1) from None
    lock = FolderLock(p, f"{kind} folder", shared=shared).acquire()
    if folder_kind(p) != kind:
        write_marker(p, kind)
    return lock


def _is_legacy_output(folder: Path, kind: str) -> bool:
    """A `kind` output folder written by dqnlab 0.1.0 (no marker): nothing in it but what that
    command writes (its summary files, and its run folders: seeds: seed-K, compare: LABEL/seed-K,
    sweep: trial-N/seed-K beside a SQLite study.db), with at least one run among them."""
    import re

    def seed_run(d: Path) -> bool:
        return re.fullmatch(r"seed-\d+", d.name) is not None and is_run_dir(d)

    def runs_of(d: Path) -> bool:
        return d.is_dir() and not d.is_symlink() and any(d.iterdir()) and all(seed_run(c) for c in d.iterdir())

    files = OUTPUT_FOLDER_FILES[kind]
    entries = list(folder.iterdir())
    own_files = [e for e in entries if e.name in files and e.is_file() and not e.is_symlink()]
    if kind == "seeds":
        runs = [e for e in entries if seed_run(e)]
    elif kind == "sweep":
        runs = [e for e in entries if re.fullmatch(r"trial-\d+", e.name) and runs_of(e)]
        db = folder / "study.db"
        try:
            with open(db, "rb") as f:
                if not db.is_file() or f.read(16) != b"SQLite format 3\x00":
                    return False
        except OSError:
            return False
    else:
        runs = [e for e in entries if e not in own_files and runs_of(e)]
    return bool(runs) and len(own_files) + len(runs) == len(entries)


# ---------------------------------------------------------------------------------------------
# Creating and replacing a run directory
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptionNames:
    """How refusals name the caller's options: `dqnlab train`'s flags or `dqnlab.train`'s arguments."""

    resume: str
    """The option that continues a run."""
    overwrite: str
    """The option that replaces a run."""
    refusing: str
    """The start of a refusal to replace a folder."""


FLAGS = OptionNames("--resume", "--overwrite", "refusing to --overwrite")
ARGUMENTS = OptionNames("resume=True", "overwrite=True", "refusing to overwrite")


class NewRunDir:
    """A new run directory, built beside its final place and moved there once the run has started.

    ``plan`` refuses, before anything is written, a path that is empty, a file, a folder that
    is not a dqnlab run (unless empty), or (with `overwrite`) a run holding anything dqnlab did
    not write, or one another process is writing. ``stage`` creates a hidden sibling folder
    (".NAME.dqnlab-new-PID") holding the marker and this writer's lock: the new run's files are
    written there while everything that can fail (memory, config, the first checkpoint) does.
    ``commit`` then swaps it in: the old run (only dqnlab's files, checked) is renamed aside and
    deleted, the new one renamed into place. ``abandon`` removes the staging folder and leaves
    the old run as it was. Nothing outside the staging folder and the old run's own files is
    ever touched, and symbolic links are never followed for deletion."""

    def __init__(self, path: Path, replaces: bool, old_lock: FolderLock | None, names: OptionNames = ARGUMENTS):
        self.path, self.replaces, self.old_lock, self.names = path, replaces, old_lock, names
        self.staging: Path | None = None
        self.lock: FolderLock | None = None

    @classmethod
    def plan(cls, path: str | Path, overwrite: bool, names: OptionNames = ARGUMENTS) -> NewRunDir:
        """Check `path` for a new run (replacing the run there with `overwrite`); refusals name the
        options by `names`."""
        p = check_path_text(path)
        if p.is_symlink():
            if overwrite and p.exists():
                raise DqnlabError(
                    f"{names.refusing} {p}: it is a symbolic link (to {os.readlink(p)}); name the folder itself"
                )
            p = p.resolve()  # a link to an empty folder: the run goes where it points
        if p.exists() and not p.is_dir():
            raise DqnlabError(f"run directory {p} exists and is not a directory")
        if not p.is_dir() or not any(p.iterdir()):
            return cls(p, False, None, names)
        if not overwrite:
            raise DqnlabError(
                f"run directory {p} already exists; use {names.resume} to continue it or {names.overwrite} to replace it"
            )
        if not is_run_dir(p):
            raise DqnlabError(
                f"{names.refusing} {p}: it is not a dqnlab run directory (no {MARKER_FILE} "
                "marker); dqnlab only replaces folders it wrote"
            )
        foreign = foreign_entries(p)
        if foreign:
            kind = "symbolic link" if foreign[0].is_symlink() else "folder" if foreign[0].is_dir() else "file"
            raise DqnlabError(
                f"{names.refusing} {p}: it holds the {kind} {foreign[0]}, which dqnlab did not "
                "write; move it out first (nothing was deleted)"
            )
        return cls(p, True, FolderLock(p).acquire(), names)

    def stage(self) -> Path:
        """Create the staging folder with the marker and this writer's lock; returns its path."""
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            _remove_stale_staging(parent, self.path.name)
            staging = parent / f".{self.path.name}.dqnlab-new-{os.getpid()}"
            staging.mkdir()
            self.staging = staging
            # Locked before it is marked: a marked staging folder whose lock is free is stale.
            self.lock = FolderLock(staging).acquire()
            write_marker(staging, "run")
        except OSError as exc:
            self.abandon()
            raise DqnlabError(f"cannot write to run directory {self.path}: {exc.strerror or exc}") from None
        except BaseException:
            self.abandon()
            raise
        return staging

    def commit(self) -> Path:
        """Move the staged run into place (replacing the old run, if any); returns the final path."""
        assert self.staging is not None
        trash = None
        try:
            if self.replaces:
                # Re-checked under the old run's lock: nothing foreign may have appeared meanwhile.
                foreign = foreign_entries(self.path)
                if foreign:
                    raise DqnlabError(
                        f"{self.names.refusing} {self.path}: {foreign[0]} appeared in it, which dqnlab "
                        "did not write; move it out first (nothing was deleted)"
                    )
                trash = self.path.parent / f".{self.path.name}.dqnlab-old-{os.getpid()}"
                os.rename(self.path, trash)
            elif self.path.is_dir() and not any(self.path.iterdir()):
                self.path.rmdir()  # an empty folder the user made: the staged run takes its place
            os.rename(self.staging, self.path)
        except OSError as exc:
            if trash is not None and not self.path.exists():
                os.rename(trash, self.path)  # put the old run back
            raise DqnlabError(
                f"cannot move the new run into {self.path}: {exc.strerror or exc} (another process may "
                "have created it meanwhile)",
                exit_code=1,
            ) from None
        self.staging = None
        if trash is not None:
            _remove_own_run(trash)
        if self.old_lock is not None:
            self.old_lock.release()
            self.old_lock = None
        return self.path

    def abandon(self) -> None:
        """Remove the staging folder (all of it dqnlab's) and let go of the old run, untouched."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        if self.staging is not None and self.staging.is_dir() and not self.staging.is_symlink():
            _remove_own_run(self.staging)
            self.staging = None
        if self.old_lock is not None:
            self.old_lock.release()
            self.old_lock = None


def _remove_own_run(folder: Path) -> None:
    """Delete a run folder that holds only dqnlab's files (checked again here); anything else in it
    is left where it is, and so is the folder then."""
    import shutil

    for entry in folder.iterdir():
        if not is_own_run_entry(entry):
            continue
        if entry.name == TENSORBOARD_DIR:
            shutil.rmtree(entry)  # regular files only (is_own_run_entry checked); rmtree never follows links
        else:
            entry.unlink()
    with contextlib.suppress(OSError):  # not empty: something of the user's appeared; it stays
        folder.rmdir()


def _remove_stale_staging(parent: Path, name: str) -> None:
    """Staging folders left by a dqnlab process that died before its run started (no lock held)."""
    for staging in parent.glob(f".{name}.dqnlab-new-*"):
        if staging.is_dir() and not staging.is_symlink() and folder_kind(staging) == "run" and not is_locked(staging):
            _remove_own_run(staging)


class MetricsLog:
    """Append-only CSV. Each row is written with a single os.write on an O_APPEND descriptor, so
    a crash never leaves half a row; ``truncate`` rewinds to a checkpointed size on resume."""

    def __init__(self, path: Path):
        self.path = path
        new = not path.exists() or path.stat().st_size == 0
        # A resumed run keeps its file's columns (a run begun by an older dqnlab may lack some).
        self.columns = METRIC_COLUMNS if new else _header(path)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if new:
            self._write(METRIC_COLUMNS)

    def _write(self, values) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        os.write(self.fd, buf.getvalue().encode("utf-8"))

    def row(self, **values) -> None:
        self._write(["" if values.get(c) is None else _fmt(values[c]) for c in self.columns])

    def size(self) -> int:
        os.fsync(self.fd)
        return os.fstat(self.fd).st_size

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)

    def close(self) -> None:
        os.close(self.fd)


def _header(path: Path) -> tuple[str, ...]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = tuple(next(csv.reader(f), ()))
    except (OSError, UnicodeDecodeError, csv.Error):
        header = ()
    return header if header[:1] == ("kind",) else METRIC_COLUMNS


def _fmt(value) -> str:
    if isinstance(value, float):
        return repr(round(value, 6)) if value == value else "nan"
    return str(value)


def read_metrics(path: str | Path) -> list[dict[str, str]]:
    with open(Path(path), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
