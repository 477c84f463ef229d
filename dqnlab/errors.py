"""The exceptions that reach the user as a single clear line."""

from __future__ import annotations

from dqnlab.stopping import signal_name


class DqnlabError(Exception):
    """A problem with the user's input or files: printed as one line, never as a traceback.

    ``exit_code`` follows the usual convention: 2 for bad usage or config (nothing was done),
    1 for a failure while doing the work.
    """

    def __init__(self, message: str, exit_code: int = 2):
        # One line, always: user text echoed in a message (a key, a path) may hold line breaks.
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))
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
