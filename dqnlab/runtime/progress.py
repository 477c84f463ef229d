"""Training progress: a tqdm bar on a terminal, a plain line per update otherwise (logs, CI).
The training loop updates it once per evaluation, right after the evaluation, so each update
shows that evaluation's mean (`eval=`) beside the mean training return of the last
RECENT_EPISODES episodes (`train_ret(20)=`) and, where the algorithm explores by epsilon, `eps=`.
Between evaluations it ticks at every step: the bar's count moves (at most every TICK_SECONDS),
and the plain form writes a line when HEARTBEAT_SECONDS have passed without one. During an
evaluation (which can take a minute on pixels) the bar's clock moves, and the plain form writes
an "evaluating" line after the same silence, so a slow run never looks stuck."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

RECENT_EPISODES = 20
"""Training episodes in the `train_ret(N)` mean of the progress display."""

TICK_SECONDS = 0.5
"""Between updates (during and between evaluations), the bar is redrawn at most this often."""

HEARTBEAT_SECONDS = 30.0
"""Between updates (during and between evaluations), the plain form writes a line when this long
has passed without one."""


class Progress:
    def __init__(
        self,
        total: int,
        initial: int = 0,
        stream: TextIO | None = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.total = total
        self._clock = clock
        self._last_shown = clock()
        self._bar = None
        bar = bar_class(self.stream) if enabled else None
        if bar is not None:
            self._bar = bar(
                total=total,
                initial=initial,
                file=self.stream,
                unit="step",
                dynamic_ncols=True,
                leave=False,
                mininterval=0.2,
            )
        self._pos = initial

    def update(
        self,
        step: int,
        recent_return: float | None,
        epsilon: float | None,
        last_eval: float | None,
        cut: float | None = None,
    ) -> None:
        """Show `step` with the mean training return of the last RECENT_EPISODES episodes, the
        exploration rate (None: not shown) and the evaluation just done (`cut`: it was cut short,
        and its mean was at most that)."""
        if not self.enabled:
            return
        fields = {f"train_ret({RECENT_EPISODES})": "-" if recent_return is None else f"{recent_return:.1f}"}
        if epsilon is not None:  # algorithms without epsilon-greedy exploration show none
            fields["eps"] = f"{epsilon:.3f}"
        fields["eval"] = "-" if last_eval is None else f"{last_eval:.1f}"
        if cut is not None:
            fields["eval"] = f"<={cut:.1f}"
        if self._bar is not None:
            # The postfix first, then one redraw: tqdm's update() alone redraws only after its
            # minimum interval, and before a postfix set afterwards, so the bar would lag one evaluation.
            self._bar.set_postfix(fields, refresh=False)
            self._bar.update(step - self._pos)
            self._bar.refresh()
            self._pos = step
            self._last_shown = self._clock()
            return
        self._line(step, fields)

    def tick(self, step: int, recent_return: Callable[[], float | None]) -> None:
        """A step between evaluations (`recent_return` is called only when a plain line is due)."""

        def text() -> str:
            recent = recent_return()
            return f"train_ret({RECENT_EPISODES})=" + ("-" if recent is None else f"{recent:.1f}")

        self._alive(step, text)

    def evaluating(self, step: int) -> None:
        """A step of an evaluation at training step `step`."""
        self._alive(step, lambda: "evaluating ...")

    def _alive(self, step: int, plain_text: Callable[[], str]) -> None:
        """Show that the run is alive: move and redraw the bar (its count and clock) at most every
        TICK_SECONDS, or write a plain line of `step` and `plain_text()` once HEARTBEAT_SECONDS
        have passed without one. Cheap enough to call at every step."""
        if not self.enabled:
            return
        now = self._clock()
        if self._bar is not None:
            if now - self._last_shown >= TICK_SECONDS:
                self._bar.update(step - self._pos)  # the postfix keeps the last evaluation
                self._bar.refresh()  # at once: this is already throttled, more than tqdm's own interval
                self._pos = step
                self._last_shown = now
            return
        if now - self._last_shown >= HEARTBEAT_SECONDS:
            print(f"[dqnlab] step {step}/{self.total} {plain_text()}", file=self.stream, flush=True)
            self._last_shown = now

    def note(self, text: str) -> None:
        """A line of its own (above the bar on a terminal), e.g. what the run does next."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(f"[dqnlab] {text}", file=self.stream)
        else:
            print(f"[dqnlab] {text}", file=self.stream, flush=True)
        self._last_shown = self._clock()

    def _line(self, step: int, fields: dict[str, str]) -> None:
        text = " ".join(f"{k}={v}" for k, v in fields.items())
        print(f"[dqnlab] step {step}/{self.total} {text}", file=self.stream, flush=True)
        self._last_shown = self._clock()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def bar_class(stream: TextIO) -> type | None:
    """The progress bar for `stream`: tqdm's notebook widget in a Jupyter kernel that has
    ipywidgets (for the kernel's own stderr or stdout), tqdm's text bar on a terminal, None (a
    plain line per update) otherwise."""
    if stream in (sys.stderr, sys.stdout) and _in_jupyter_with_widgets():
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm
    if hasattr(stream, "isatty") and stream.isatty():
        from tqdm import tqdm

        return tqdm
    return None


def _in_jupyter_with_widgets() -> bool:
    """Running in a Jupyter kernel (not a terminal IPython), with ipywidgets installed to draw the bar."""
    ipython = sys.modules.get("IPython")  # never imported here: a kernel has imported it already
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None
