"""Training progress: a tqdm bar on a terminal, a plain line per update otherwise (logs, CI).
The training loop updates it once per evaluation, right after the evaluation, so each update
shows that evaluation's mean (`eval=`) beside the mean training return of the last
RECENT_EPISODES episodes (`train_ret(20)=`) and, where the algorithm explores by epsilon, `eps=`."""

from __future__ import annotations

import sys
from typing import TextIO

RECENT_EPISODES = 20
"""Training episodes in the `train_ret(N)` mean of the progress display."""


class Progress:
    def __init__(self, total: int, initial: int = 0, stream: TextIO | None = None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.total = total
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
            return
        text = " ".join(f"{k}={v}" for k, v in fields.items())
        print(f"[dqnlab] step {step}/{self.total} {text}", file=self.stream, flush=True)

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
