"""The one exception type that reaches the user as a single clear line."""

from __future__ import annotations


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
