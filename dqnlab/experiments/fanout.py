"""Fan out independent training runs: on this machine's cores (`local`) or on a Ray cluster (`ray`).

Every run is an ordinary `dqnlab.train.train(config, run_dir)` call, so each writes its own run
directory exactly as `dqnlab train` does, and every backend hands results back the same way:
`record(key, summary)` in the calling process, as each run finishes (completion order).

    local   a pool of `workers` spawned processes (default: the usable cores), each fed one run at
            a time over a pipe and kept for the next (importing torch costs a second); with one
            worker the runs train in this process, one after another.
    ray     one Ray task per run (num_cpus=1; the run's torch_threads, 1 by default, is kept).
            Without an address, a private Ray instance is started on this machine with
            num_cpus = workers and stopped at the end; with `ray_address` ("auto", "HOST:6379",
            "ray://HOST:10001") the runs go to that cluster, whose size sets the parallelism.
            On a multi-machine cluster the run directories must be on storage that every node
            mounts at the same path (NFS, a cluster filesystem): the workers write there and the
            caller reads the results back from there. dqnlab (same version) must be installed on
            every node. Ray is optional: `pip install dqnlab[ray]`.

A run that raises is recorded as {"status": "failed", "error": ...}; so is a run whose process
dies (killed, out of memory): the other runs go on. In the local pool a dead worker only takes its
own run down; that run is tried once more in another process (resuming from its checkpoint, which
reproduces it exactly), and only if that process dies too is it recorded failed.

Stop signals stop everything: a SIGINT or SIGTERM to this process (or to one of the runs) stops
dispatching, so queued runs never start; runs under way are stopped by their own signal handling
(the pool forwards the signal to its busy workers, Ray cancels its tasks, which delivers SIGINT):
each writes a checkpoint and reports a summary with status "interrupted" (recorded like any
other); then every worker is ended, a local Ray instance shut down, and `run_jobs` raises
RunsInterrupted (exit code 130 or 143). Running the same command again continues the cut-off runs
(compare and sweep find them with `dqnlab.runtime.rundir.run_state`). Runs get STOP_GRACE_SECONDS for
their checkpoints; a second signal ends them at once (they resume from their last periodic
checkpoint). Pool workers ignore a Ctrl-C to the whole process group while idle (the parent
decides), and on Linux end with their parent even if it is SIGKILLed (PR_SET_PDEATHSIG: their run
checkpoints, then they find the pipe closed and exit).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, cast

from dqnlab.core.errors import ConfigError, DqnlabError, Interrupted
from dqnlab.core.stopping import (
    STOP_SIGNALS,
    catch_stop_signals,
    request_stop,
    signals_received,
    stop_signal,
)
from dqnlab.runtime.resources import usable_cores
from dqnlab.runtime.rundir import is_run_dir
from dqnlab.train import TrainingInterrupted, train

BACKENDS = ("local", "ray")
RAY_INSTALL_HINT = "the ray backend needs Ray: pip install 'dqnlab[ray]'"
RERUN_HINT = "runs under way wrote checkpoints; run the same command again to continue"
STOP_GRACE_SECONDS = 300.0
"""How long runs under way get, after a stop signal, to write their checkpoints and report."""
POLL_SECONDS = 0.1
"""How often a waiting parent looks at the stop flag (a signal only sets it)."""
PR_SET_PDEATHSIG = 1  # linux/prctl.h

Record = Callable[[Any, dict[str, Any]], None]


class RunsInterrupted(Interrupted):
    """A stop signal ended `run_jobs`: runs under way are checkpointed and marked interrupted,
    queued runs never started."""

    def __init__(self, signum: int):
        super().__init__(signum, RERUN_HINT)


@dataclass(frozen=True)
class RunJob:
    """One run to train: `record(key, summary)` reports it."""

    key: Hashable
    """Caller's identifier of the run (a seed, a (label, seed) pair, ...)."""
    config: dict[str, Any]
    """The run's resolved config as a plain dict (it crosses process and machine boundaries)."""
    run_dir: str
    """Where the run is written: a new or empty directory, or, with `resume`, an unfinished run."""
    resume: bool = False
    """Continue the unfinished run in `run_dir` from its checkpoint instead of starting one."""


def as_job(job: RunJob | Sequence[Any]) -> RunJob:
    """Accept the older (key, config dict, run dir) tuples as well as RunJob."""
    return job if isinstance(job, RunJob) else RunJob(*job)


def default_workers() -> int:
    """The cores this process may use (its CPU affinity), at least 1."""
    return usable_cores()


def failed_summary(job: RunJob, error: str) -> dict[str, Any]:
    """What `record` receives for a run that did not finish."""
    return {"seed": job.config.get("seed"), "run_dir": job.run_dir, "status": "failed", "error": error, "solved": False}


def train_job(job: RunJob) -> tuple[Hashable, dict[str, Any]]:
    """Train one job and return (key, summary); any exception becomes a failed summary, so one
    broken run never takes the others down, and a stop signal an interrupted one (the run wrote
    its checkpoint). Runs in whichever process or node the backend chose."""
    # Signals become the stop flag from here on, so that one that arrives while the run is being
    # set up (or a Ray cancel, delivered as SIGINT) still ends in a checkpoint at its first step.
    with catch_stop_signals():
        try:
            if job.resume:
                return job.key, train(run_dir=job.run_dir, resume=True, progress=False).summary
            return job.key, train(job.config, job.run_dir, progress=False).summary
        except TrainingInterrupted as exc:
            return job.key, exc.summary
        except DqnlabError as exc:
            error = str(exc)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
    return job.key, failed_summary(job, error)


WORKERS_PER_CORE = 4
"""Parallel runs on this machine at most per usable core: each is a process of a few hundred MB
training on one thread, so more only share the cores and the memory more thinly."""


def check_backend(backend: str, ray_address: str | None = None, workers: int | None = None) -> None:
    """Validate the backend choice before anything is written (Ray installed, address only with
    ray, no more local workers than WORKERS_PER_CORE per usable core)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}' (choose from: {', '.join(BACKENDS)})")
    if ray_address is not None and backend != "ray":
        raise ConfigError("--ray-address needs --backend ray")
    cores = default_workers()
    if workers is not None and ray_address is None and workers > WORKERS_PER_CORE * cores:
        raise ConfigError(
            f"--workers {workers} is more than {WORKERS_PER_CORE} per core on this machine "
            f"({cores} usable); use at most {WORKERS_PER_CORE * cores}"
        )
    if backend == "ray":
        _import_ray()


def run_jobs(
    jobs: Sequence[RunJob | Sequence[Any]],
    workers: int | None,
    record: Record,
    *,
    backend: str = "local",
    ray_address: str | None = None,
) -> None:
    """Train every job on `backend`, at most `workers` at a time (local, or a local Ray instance),
    calling record(key, summary) in this process as each finishes. A stop signal (see the module
    docstring) raises RunsInterrupted once every run under way has stopped and reported."""
    check_backend(backend, ray_address, workers)
    todo = [as_job(j) for j in jobs]
    with catch_stop_signals():
        if todo and stop_signal() is None:
            if backend == "ray":
                _run_ray(todo, workers, record, ray_address)
            else:
                _run_local(todo, workers, record)
        signum = stop_signal()
    if signum is not None:
        raise RunsInterrupted(signum)


# ---------------------------------------------------------------------------------------------
# local: a pool of worker processes
# ---------------------------------------------------------------------------------------------


def _run_local(jobs: list[RunJob], workers: int | None, record: Record) -> None:
    workers = min(workers or default_workers(), len(jobs))
    if workers == 1:
        for job in jobs:
            if stop_signal() is not None:
                return
            record(*train_job(job))
        return
    _run_pool(jobs, workers, record)


@dataclass
class _Worker:
    """A pool process and the parent's end of its pipe; `job` is the run it has (None: idle)."""

    process: BaseProcess
    conn: Connection
    job: RunJob | None = None
    attempt: int = 0  # 1 for a run tried again after its first worker died


_Reply = tuple[tuple[Hashable, dict[str, Any]] | None, str | None, int | None]
"""A worker's answer to a job: (key, summary) or None if it did not start the run (a stop signal
had come), an error text if the job could not even be read, and the stop signal it received."""


def _ready(conns: list[Connection]) -> list[Connection]:
    """The pipe ends among `conns` that have something to read (or have closed), waiting up to
    POLL_SECONDS. `wait` returns some of the objects it was given; typeshed types them as any
    waitable object (a connection, socket or file descriptor)."""
    return cast(list[Connection], wait(conns, timeout=POLL_SECONDS))


def _run_pool(jobs: list[RunJob], workers: int, record: Record) -> None:
    queue: deque[tuple[RunJob, int]] = deque((job, 0) for job in jobs)
    pool: list[_Worker] = []
    try:
        while stop_signal() is None and (queue or any(w.job is not None for w in pool)):
            _dispatch(pool, queue, workers)
            busy = {w.conn: w for w in pool if w.job is not None}
            for conn in _ready(list(busy)):
                _collect(busy[conn], pool, queue, record)
    except BaseException:
        _shut_down(pool)  # what the runs under way report is lost with the error that goes up
        raise
    for result in _shut_down(pool):
        record(*result)


def _dispatch(pool: list[_Worker], queue: deque[tuple[RunJob, int]], workers: int) -> None:
    """Give each idle worker the next job, starting workers up to `workers`."""
    for w in pool:
        if w.job is None and queue:
            _give(w, *queue.popleft())
    while queue and len(pool) < workers:
        w = _start_worker()
        pool.append(w)
        _give(w, *queue.popleft())


def _give(w: _Worker, job: RunJob, attempt: int) -> None:
    w.job, w.attempt = job, attempt
    # A worker that died while idle shows up as a dead worker when its reply is awaited.
    with contextlib.suppress(OSError):
        w.conn.send(job)


def _collect(w: _Worker, pool: list[_Worker], queue: deque[tuple[RunJob, int]], record: Record) -> None:
    """Take a busy worker's reply, or deal with its death."""
    job, attempt = w.job, w.attempt
    assert job is not None
    w.job = None
    try:
        result, error, signum = w.conn.recv()
    except (EOFError, OSError):  # the process died (killed, out of memory): only its run is hit
        _end_worker(w, pool)
        if attempt == 0:  # once more, from its checkpoint: exactly the run it would have been
            queue.appendleft((_resumable(job), 1))
        else:
            record(job.key, failed_summary(job, f"worker process died (exit code {w.process.exitcode})"))
        return
    if signum is not None:  # a signal reached this worker alone: it stops the whole command too
        request_stop(signum)
    if error is not None:
        record(job.key, failed_summary(job, error))
    elif result is not None:
        record(*result)


def _resumable(job: RunJob) -> RunJob:
    """The job to run again after its process died: resumed if it got as far as a run directory
    (its checkpoint at step 0 is written before the first step)."""
    if not job.resume and is_run_dir(Path(job.run_dir)):
        return RunJob(job.key, job.config, job.run_dir, resume=True)
    return job


def _start_worker() -> _Worker:
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
    conn, child_conn = ctx.Pipe()
    process = ctx.Process(target=_worker_main, args=(child_conn, os.getpid()), name="dqnlab-worker")
    # Started with the stop signals blocked (the mask is inherited), the worker holds a signal
    # pending until its handlers are in place: a Ctrl-C to the process group cannot kill it
    # while it imports.
    with _stop_signals_blocked():
        process.start()
    child_conn.close()  # the worker's end lives in the worker alone: its death reads as EOF here
    return _Worker(process, conn)


@contextlib.contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    from multiprocessing import resource_tracker

    # Started on the first spawn, the resource tracker unblocks these signals in this process
    # (SIG_UNBLOCK, not a restore) after starting: have it running before they are blocked.
    resource_tracker.ensure_running()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _shut_down(pool: list[_Worker]) -> list[tuple[Hashable, dict[str, Any]]]:
    """End every worker and return what the busy ones reported. Idle workers are told to exit;
    busy ones (after a stop signal, or an error here) get the signal (SIGTERM after an error):
    their runs checkpoint and report, within STOP_GRACE_SECONDS or until another signal comes;
    whatever is left then is killed."""
    signum = stop_signal() or signal.SIGTERM
    signals_before = signals_received()
    for w in pool:
        if w.job is not None:
            assert w.process.pid is not None  # started before it joined the pool
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.process.pid, signum)
    results: list[tuple[Hashable, dict[str, Any]]] = []
    busy = {w.conn: w for w in pool if w.job is not None}
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while busy and signals_received() == signals_before and time.monotonic() < deadline:
        for conn in _ready(list(busy)):
            w = busy.pop(conn)
            w.job = None
            with contextlib.suppress(EOFError, OSError):  # died meanwhile: resumes from its last checkpoint
                result, _, _ = conn.recv()
                if result is not None:
                    results.append(result)
    for w in busy.values():  # out of time, or told twice: they resume from their last checkpoint
        w.process.kill()
    for w in pool:
        with contextlib.suppress(OSError):
            w.conn.send(None)  # exit
    for w in list(pool):
        _end_worker(w, pool)
    return results


def _end_worker(w: _Worker, pool: list[_Worker]) -> None:
    """Wait a little for the worker to exit, then kill it; forget it."""
    w.process.join(timeout=10)
    if w.process.is_alive():
        w.process.kill()
        w.process.join()
    w.conn.close()
    pool.remove(w)


def _worker_main(conn: Connection, parent_pid: int) -> None:
    """A pool process: train the jobs the parent sends, one at a time, until it sends None or is
    gone. A stop signal becomes the flag that the run under way checks (it checkpoints and
    reports an interrupted summary); after one, no new run starts here."""
    _end_with_parent(parent_pid)
    with catch_stop_signals():
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by the parent for the start
        while True:
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                return  # the parent is gone
            try:
                job = pickle.loads(data)
            except Exception as exc:
                reply: _Reply = (
                    None,
                    f"cannot read the job in a worker process: {type(exc).__name__}: {exc}",
                    stop_signal(),
                )
            else:
                if job is None:
                    return
                reply = (None if stop_signal() is not None else train_job(job), None, stop_signal())
            try:
                conn.send(reply)
            except OSError:
                return  # the parent is gone


def _end_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel send this process SIGTERM when its parent dies, even by SIGKILL, so
    that no worker outlives the command (its run checkpoints; then the closed pipe ends it)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before that was in place
        os._exit(1)


# ---------------------------------------------------------------------------------------------
# ray: one task per run
# ---------------------------------------------------------------------------------------------


def _import_ray():
    try:
        import ray
    except ImportError:
        raise DqnlabError(RAY_INSTALL_HINT) from None
    return ray


@contextlib.contextmanager
def backend_session(backend: str, workers: int | None = None, ray_address: str | None = None) -> Iterator[None]:
    """Keep the backend up across several run_jobs calls (a sweep's trials): with Ray, connect
    (or start the local instance) once instead of once per call. Nothing to do for `local`."""
    check_backend(backend, ray_address, workers)
    if backend != "ray":
        yield
        return
    ray = _import_ray()
    if ray.is_initialized():  # the caller's own Ray session: use it, leave it running
        yield
        return
    _ray_init(ray, workers, ray_address)
    try:
        with catch_stop_signals():  # again: ray.init put in a SIGTERM handler of its own
            yield
    finally:
        ray.shutdown()


def _ray_init(ray, workers: int | None, address: str | None) -> None:
    import logging

    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR}
    if address is None:
        kwargs["num_cpus"] = workers or default_workers()
    else:
        _check_reachable(address)
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except Exception as exc:
        where = f"the Ray cluster at '{address}'" if address else "a local Ray instance"
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise DqnlabError(f"cannot start or reach {where}: {type(exc).__name__}: {first_line}", exit_code=1) from None


def _check_reachable(address: str) -> None:
    """Fail fast on a HOST:PORT nobody listens on: Ray itself keeps retrying for minutes."""
    import re
    import socket

    m = re.fullmatch(r"(?:ray://)?\[?([^\]]+?)\]?:(\d+)", address)
    if not m:  # "auto" and the like: Ray resolves them
        return
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=5).close()
    except OSError as exc:
        raise DqnlabError(f"cannot reach the Ray cluster at '{address}': {exc}", exit_code=1) from None


def _run_ray(jobs: list[RunJob], workers: int | None, record: Record, address: str | None) -> None:
    ray = _import_ray()
    # Relative paths would resolve against each worker's directory: give every run its absolute path.
    jobs = [RunJob(j.key, j.config, str(Path(j.run_dir).resolve()), j.resume) for j in jobs]
    started_here = not ray.is_initialized()
    if started_here:
        _ray_init(ray, workers, address)
    try:
        with catch_stop_signals():  # again: ray.init put in a SIGTERM handler of its own
            _run_ray_tasks(ray, jobs, record)
    finally:
        if started_here:
            ray.shutdown()


def _run_ray_tasks(ray, jobs: list[RunJob], record: Record) -> None:
    # max_retries=0: a retried run would find its own half-written directory and be refused;
    # a dead worker is reported as this run's failure instead.
    remote = ray.remote(num_cpus=1, max_retries=0)(train_job)
    pending = {remote.remote(job): job for job in jobs}
    while pending and stop_signal() is None:
        done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
        for ref in done:
            job = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:  # worker crashed or was killed, node lost, ...
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                result = (job.key, failed_summary(job, f"ray task failed: {type(exc).__name__}: {first_line}"))
            if result[1].get("status") == "interrupted":  # a signal (a cancel) reached this run alone
                request_stop(signal.SIGINT)
            record(*result)
    for result in _cancel_ray_tasks(ray, pending):
        record(*result)


def _cancel_ray_tasks(ray, pending: dict[Any, RunJob]) -> list[tuple[Hashable, dict[str, Any]]]:
    """Cancel every task and return what the running ones report. A queued task never starts; a
    running one gets SIGINT, which its run turns into a checkpoint and an interrupted summary.
    After STOP_GRACE_SECONDS, or another signal, the rest are killed."""
    # The last submitted (queued) first: a slot that a stopping run frees must not start one.
    for ref in reversed(list(pending)):
        ray.cancel(ref)
    results = []
    signals_before = signals_received()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while pending:
        if signals_received() != signals_before or time.monotonic() >= deadline:
            for ref in pending:
                ray.cancel(ref, force=True)
            break
        done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_SECONDS)
        for ref in done:
            pending.pop(ref)
            with contextlib.suppress(ray.exceptions.RayError):  # cancelled before it started
                results.append(ray.get(ref))
    return results
