"""Fan out independent training runs: on this machine's cores (`local`) or on a Ray cluster (`ray`).

Every run is an ordinary `dqnlab.train.train(config, run_dir)` call, so each writes its own run
directory exactly as `dqnlab train` does, and every backend hands results back the same way:
`record(key, summary)` in the calling process, as each run finishes (completion order).

    local   a spawn-context process pool of `workers` processes (default: the usable cores);
            with one worker the runs train in this process, one after another.
    ray     one Ray task per run (num_cpus=1; the run's torch_threads, 1 by default, is kept).
            Without an address, a private Ray instance is started on this machine with
            num_cpus = workers and stopped at the end; with `ray_address` ("auto", "HOST:6379",
            "ray://HOST:10001") the runs go to that cluster, whose size sets the parallelism.
            On a multi-machine cluster the run directories must be on storage that every node
            mounts at the same path (NFS, a cluster filesystem): the workers write there and the
            caller reads the results back from there. dqnlab (same version) must be installed on
            every node. Ray is optional: `pip install dqnlab[ray]`.

A run that raises is recorded as {"status": "failed", "error": ...}; so is a run whose process
dies (killed, out of memory): the other runs go on. In the local pool, a dying process breaks the
whole pool, so the runs it took down with it are run again in isolated processes (resuming from
their checkpoints, which reproduces them exactly); only the run that dies again is recorded failed.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dqnlab.errors import ConfigError, DqnlabError

BACKENDS = ("local", "ray")
RAY_INSTALL_HINT = "the ray backend needs Ray: pip install 'dqnlab[ray]'"

Record = Callable[[Any, dict[str, Any]], None]


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
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def failed_summary(job: RunJob, error: str) -> dict[str, Any]:
    """What `record` receives for a run that did not finish."""
    return {"seed": job.config.get("seed"), "run_dir": job.run_dir, "status": "failed", "error": error,
            "solved": False}


def train_job(job: RunJob) -> tuple[Hashable, dict[str, Any]]:
    """Train one job and return (key, summary); any exception becomes a failed summary, so one
    broken run never takes the others down. Runs in whichever process or node the backend chose."""
    from dqnlab.train import train

    try:
        if job.resume:
            return job.key, train(run_dir=job.run_dir, resume=True, progress=False).summary
        return job.key, train(job.config, job.run_dir, progress=False).summary
    except DqnlabError as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 (contained: reported as this run's failure)
        error = f"{type(exc).__name__}: {exc}"
    return job.key, failed_summary(job, error)


def check_backend(backend: str, ray_address: str | None = None) -> None:
    """Validate the backend choice before anything is written (Ray installed, address only with ray)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}' (choose from: {', '.join(BACKENDS)})")
    if ray_address is not None and backend != "ray":
        raise ConfigError("--ray-address needs --backend ray")
    if backend == "ray":
        _import_ray()


def run_jobs(jobs: Sequence[RunJob | Sequence[Any]], workers: int | None, record: Record, *,
             backend: str = "local", ray_address: str | None = None) -> None:
    """Train every job on `backend`, at most `workers` at a time (local, or a local Ray instance),
    calling record(key, summary) in this process as each finishes."""
    check_backend(backend, ray_address)
    todo = [as_job(j) for j in jobs]
    if not todo:
        return
    if backend == "ray":
        _run_ray(todo, workers, record, ray_address)
    else:
        _run_local(todo, workers, record)


# ---------------------------------------------------------------------------------------------
# local: a process pool
# ---------------------------------------------------------------------------------------------


def _spawn_pool(workers: int) -> cf.ProcessPoolExecutor:
    # spawn: a fresh interpreter per worker, no forked torch thread pools
    return cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def _run_local(jobs: list[RunJob], workers: int | None, record: Record) -> None:
    workers = min(workers or default_workers(), len(jobs))
    if workers == 1:
        for job in jobs:
            record(*train_job(job))
        return
    hit: list[RunJob] = []  # runs lost when a dying worker broke the pool
    with _spawn_pool(workers) as pool:
        futures = {pool.submit(train_job, job): job for job in jobs}
        for fut in cf.as_completed(futures):
            try:
                result = fut.result()
            except cf.process.BrokenProcessPool:
                hit.append(futures[fut])
                continue
            record(*result)
    if hit:
        _rerun_isolated(hit, workers, record)


def _rerun_isolated(jobs: list[RunJob], workers: int, record: Record) -> None:
    """Run each job in a process of its own, so that a process that dies only loses its own run.

    A job that was under way when the pool broke has a run directory with a checkpoint (written at
    step 0): it resumes from there, which gives exactly the run it would have been."""

    def one(job: RunJob) -> None:
        from dqnlab.rundir import is_run_dir

        if not job.resume and is_run_dir(Path(job.run_dir)):
            job = RunJob(job.key, job.config, job.run_dir, resume=True)
        with _spawn_pool(1) as pool:
            try:
                result = pool.submit(train_job, job).result()
            except cf.process.BrokenProcessPool as exc:
                result = (job.key, failed_summary(job, f"worker process died: {exc}"))
        record(*result)

    with cf.ThreadPoolExecutor(workers) as threads:
        for fut in [threads.submit(one, job) for job in jobs]:
            fut.result()


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
    check_backend(backend, ray_address)
    if backend != "ray":
        yield
        return
    ray = _import_ray()
    if ray.is_initialized():  # the caller's own Ray session: use it, leave it running
        yield
        return
    _ray_init(ray, workers, ray_address)
    try:
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
    except Exception as exc:  # noqa: BLE001 (Ray raises ConnectionError, RuntimeError, ValueError...)
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
        # max_retries=0: a retried run would find its own half-written directory and be refused;
        # a dead worker is reported as this run's failure instead.
        remote = ray.remote(num_cpus=1, max_retries=0)(train_job)
        pending = {remote.remote(job): job for job in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayError as exc:  # worker crashed or was killed, node lost, ...
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                result = (job.key, failed_summary(job, f"ray task failed: {type(exc).__name__}: {first_line}"))
            record(*result)
    finally:
        if started_here:
            ray.shutdown()
