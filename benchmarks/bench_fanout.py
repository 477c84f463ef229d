"""Throughput of the fan-out backends: the same seeds with 1 and with N local workers, and on Ray.

    python benchmarks/bench_fanout.py --seeds 0-19 --workers 2 [--no-ray] [--set key=value ...]

Every configuration trains the same runs (the `default` preset, artifacts off, so a fixed amount
of work per seed) into a temporary folder. Wall time covers everything a user waits for: process
pool start-up, or Ray start-up and shutdown (also reported on its own). Prints one JSON object:
seconds and runs per minute per configuration, the speed-up of N workers over 1, and the Ray
backend's overhead over the local pool with the same number of workers.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path


def timed_run(cfg, seeds: list[int], root: Path, workers: int, backend: str) -> dict:
    from dqnlab.experiments.multiseed import run_seeds

    t0 = time.perf_counter()
    summary = run_seeds(cfg, seeds, root, workers, backend=backend)
    seconds = time.perf_counter() - t0
    return {
        "backend": backend,
        "workers": workers,
        "runs": len(seeds),
        "seconds": round(seconds, 2),
        "runs_per_minute": round(60 * len(seeds) / seconds, 2),
        "failed": summary["failed"],
        "solved": summary["solved"],
        "median_train_seconds": summary["train_seconds"]["median"],
    }


def ray_start_seconds(workers: int) -> float:
    """ray.init + ray.shutdown of a local instance: the fixed cost of --backend ray on one machine."""
    import logging

    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.ERROR)
    ray.shutdown()
    return round(time.perf_counter() - t0, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-19")
    ap.add_argument("--workers", type=int, default=2, help="the parallel configuration (compared with 1)")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray backend")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    from dqnlab.config import build_config
    from dqnlab.experiments.fanout import default_workers
    from dqnlab.experiments.multiseed import parse_seeds

    seeds = parse_seeds(args.seeds)
    cfg = build_config("default", overrides=["artifacts=false", *args.overrides])
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        rows.append(timed_run(cfg, seeds, Path(tmp) / "local-1", 1, "local"))
        rows.append(timed_run(cfg, seeds, Path(tmp) / f"local-{args.workers}", args.workers, "local"))
        if not args.no_ray:
            rows.append(timed_run(cfg, seeds, Path(tmp) / f"ray-{args.workers}", args.workers, "ray"))
    one, many = rows[0], rows[1]
    result = {
        "seeds": args.seeds,
        "overrides": args.overrides,
        "cores": default_workers(),
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "rows": rows,
        "speedup": round(one["seconds"] / many["seconds"], 2),
    }
    if not args.no_ray:
        result["ray_overhead_seconds"] = round(rows[2]["seconds"] - many["seconds"], 2)
        result["ray_overhead_ratio"] = round(rows[2]["seconds"] / many["seconds"], 3)
        result["ray_start_stop_seconds"] = ray_start_seconds(args.workers)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
