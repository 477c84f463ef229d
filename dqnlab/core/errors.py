"""The exceptions that reach the user as a single clear line."""

from __future__ import annotations

import reprlib
from typing import Any

from dqnlab.core.stopping import signal_name

MAX_MESSAGE = 2000
"""Characters of an error message kept at most: a last guard for a value echoed without preview."""


def preview(value: Any, limit: int = 80) -> str:
    """A short repr of `value` (at most `limit` characters), for echoing user input in an error.

    A config value can be a 300 MB nest of lists (a YAML alias bomb) or a number with a million
    digits: its full repr would be the error line, and building it could exhaust memory. reprlib
    looks at a few items of a few levels only, so the preview of any value costs little."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        text = f"<an integer of {value.bit_length()} bits>"  # str() of a huge int is itself slow
    else:
        try:
            text = _REPR.repr(value)
        except Exception:
            text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _short_repr() -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset = 3, 6, 6, 4, 6
    r.maxstring, r.maxother, r.maxlong = 60, 60, 40
    return r


_REPR = _short_repr()


class DqnlabError(Exception):
    """A problem with the user's input or files: printed as one line, never as a traceback.

    ``exit_code`` follows the usual convention: 2 for bad usage or config (nothing was done),
    1 for a failure while doing the work.
    """

    def __init__(self, message: str, exit_code: int = 2):
        # One line, always: user text echoed in a message (a key, a path) may hold line breaks.
        message = message.replace("\r", "\\r").replace("\n", "\\n")
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 3] + "..."
        super().__init__(message)
        self.exit_code = exit_code


class ConfigError(DqnlabError):
    """The resolved config is invalid; nothing has been written."""


class Interrupted(DqnlabError):
    """SIGINT or SIGTERM stopped the work: what was running wrote a checkpoint and is marked
    interrupted. The message says how to continue; the exit code is 128 + the signal's number
    (130 for SIGINT, 143 for SIGTERM), as a shell reports a process ended by that signal."""

    def __init__(self, signum: int, how_to_continue: str):
        super().__init__(f"interrupted by {signal_name(signum)}; {how_to_continue}", exit_code=128 + signum)
        self.signum = signum
