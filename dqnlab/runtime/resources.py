"""What a run will cost, checked against this machine before anything is written.

A replay buffer, network, Q-table or rollout too large for memory would otherwise fail (or be
killed by the kernel) after the run directory was made, possibly after `--overwrite` had taken
the old run's place. Each algorithm's loop estimates its largest allocations
(``TrainLoop.memory_estimate``); ``check_fits_machine`` compares their sum with the memory
available now and the configured threads with the usable cores.
"""

from __future__ import annotations

import math
import os

from dqnlab.core.errors import ConfigError

GIB = 1024**3
MEMORY_SHARE = 0.9
"""A run may plan to use at most this share of the memory available when it starts."""


def usable_cores() -> int:
    """The cores this process may use (its CPU affinity), at least 1."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def available_memory() -> int | None:
    """Bytes of memory available to new allocations without swapping (Linux's MemAvailable), or
    None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def format_bytes(n: float) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB / 10 else f"{n / 1024**2:.0f} MiB"


def check_fits_machine(torch_threads: int, estimate: dict[str, float]) -> None:
    """Refuse (one ConfigError line) a run whose threads exceed the usable cores or whose
    estimated memory (`estimate`: bytes by what needs them) exceeds what is available."""
    cores = usable_cores()
    if torch_threads > cores:
        raise ConfigError(
            f"torch_threads is {torch_threads} but this machine lets dqnlab use {cores} core"
            f"{'s' if cores != 1 else ''}; set torch_threads to at most {cores}"
        )
    total = sum(estimate.values())
    available = available_memory()
    if available is None or not math.isfinite(total) or total <= MEMORY_SHARE * available:
        return
    what, largest = max(estimate.items(), key=lambda kv: kv[1])
    raise ConfigError(
        f"this config needs about {format_bytes(total)} of memory ({what}: {format_bytes(largest)}) "
        f"but {format_bytes(available)} are available; reduce it (e.g. dqn.buffer_size, "
        "network sizes, env.num_envs)"
    )
