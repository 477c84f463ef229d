"""Stop signals: SIGINT and SIGTERM turned into a flag that long work checks, so that a stop ends
with checkpoints written, results marked interrupted and no process left behind.

    with catch_stop_signals():      # SIGINT/SIGTERM now only set the flag (main thread)
        while stop_signal() is None:
            ...                     # work in steps; a step that must not be cut waits for its end

The flag is process-wide and blocks nest: an inner block (a run's training loop) sees a signal
caught by an outer one (the loop over a command's runs, a pool worker), so that a signal that
arrives while a run is being set up still stops it at its first step. The outermost block clears
the flag when it is entered: a new command (or a notebook's next `train` call) starts unstopped.
Each block installs the handlers itself (a library such as Ray may have replaced them meanwhile)
and puts the previous ones back when it ends. Outside the main thread handlers cannot be set: the
block then only shares the flag.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Flag:
    """The process's stop state (one instance: signal handlers are process-wide too)."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the first stop signal since the outermost block began
        self.count = 0  # stop signals received: a second one asks to stop without waiting
        self.depth = 0  # blocks entered and not yet left

    def handle(self, signum: int, frame: Any) -> None:
        self.request(signum)
        self.count += 1

    def request(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum


_FLAG = _Flag()


@contextlib.contextmanager
def catch_stop_signals() -> Iterator[None]:
    """Within the block (and in functions it decorates), SIGINT and SIGTERM set the stop flag
    instead of raising KeyboardInterrupt or ending the process."""
    if _FLAG.depth == 0:
        _FLAG.signum, _FLAG.count = None, 0
    _FLAG.depth += 1
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, _FLAG.handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _FLAG.depth -= 1


def stop_signal() -> int | None:
    """The stop signal received (SIGINT or SIGTERM's number), or None while none was."""
    return _FLAG.signum


def stop_requested() -> bool:
    """Whether a stop signal was received: the `should_stop` test of long loops (evaluations)."""
    return _FLAG.signum is not None


def signals_received() -> int:
    """How many stop signals were received: a second one means "stop now, do not wait"."""
    return _FLAG.count


def request_stop(signum: int) -> None:
    """Stop as if `signum` had been received (a run reports that a signal reached it alone); not
    counted by `signals_received`."""
    _FLAG.request(signum)


def signal_name(signum: int) -> str:
    """SIGINT, SIGTERM, ... for messages."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
