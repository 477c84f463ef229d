"""Argument types of the command line: each turns a string into a checked value or one clear line.

Everything a user types is bounded here or in the config: a count whose cost grows with it has
an upper end, a path may not be empty, a number must be finite.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

from dqnlab.core.errors import DqnlabError, preview


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        # argparse's messages echo the arguments ("unrecognized arguments: ..."): cut them short
        if len(message) > 200:
            message = message[:197] + "..."
        raise DqnlabError(f"{message} (see '{self.prog} --help')", exit_code=2)


def path_text(text: str) -> str:
    """A path on the command line: an empty one (which would quietly mean the current folder) is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


def whole_number(text: str) -> int:
    try:
        return int(text)  # more than 4300 digits is a ValueError too
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {preview(text, 40)}") from None


def positive_int(text: str) -> int:
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {preview(value, 40)}")
    return value


def at_most(high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [1, high] (counts whose cost grows with them)."""

    def parse(text: str) -> int:
        value = positive_int(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"expected a number <= {high:g}, got {preview(value, 40)}")
        return value

    return parse


def seed(text: str) -> int:
    value = whole_number(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"seed must be in [0, 2**32), got {preview(value, 40)}")
    return value


def finite_number(text: str, positive: bool = False) -> float:
    """A command-line number that is finite and >= 0 (or > 0 with `positive`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {preview(text, 40)}") from None
    if not (value > 0.0 if positive else value >= 0.0) or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"expected a finite number {'>' if positive else '>='} 0, got {preview(text, 40)}"
        )
    return value


def non_negative(text: str) -> float:
    return finite_number(text)


def probability(text: str) -> float:
    value = non_negative(text)
    if value > 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text}")
    return value


def noise_sigmas(text: str) -> float | list[float]:
    values = [non_negative(part) for part in text.split(",")]
    return values[0] if len(values) == 1 else values


# Bounds of `dqnlab play`'s options: beyond them a GIF or MP4 cannot show the episode (frames
# longer than GIF's 655 s, or a video slower than one frame in a few hours), or rendering would
# run for days. An episode is at most dqnlab.viz.video.MAX_STEPS steps, so a larger --every
# keeps the same frames.
MIN_FPS, MAX_FPS = 0.01, 10_000.0
MAX_EVERY = 10_000
MAX_PLAY_EPISODES = 1000
MAX_PLAY_STEPS = 10_000  # = dqnlab.viz.video.MAX_STEPS (the cli imports viz lazily; a test pins them)
MAX_WIDTH = 4096


def fps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {preview(text, 40)}") from None
    if not MIN_FPS <= value <= MAX_FPS:  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected steps per second in [{MIN_FPS:g}, {MAX_FPS:g}], got {text[:40]}")
    return value


def int_in(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number of {what}, got {preview(text, 40)}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {what} in [{low}, {high}], got {preview(value, 40)}")
        return value

    return parse


width = int_in(16, MAX_WIDTH, "pixels")
