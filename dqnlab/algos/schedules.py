"""Epsilon-greedy exploration and learning-rate schedules, as pure functions of the step and
episode counters."""

from __future__ import annotations

import math

from dqnlab.config import ExploreConfig


def linear(step: int, start: float, end: float, duration: int) -> float:
    """From `start` at step 0 to `end` at step `duration`, constant after."""
    frac = min(1.0, step / duration)
    return start + frac * (end - start)


def exponential(step: int, start: float, end: float, time_constant: float) -> float:
    """end + (start - end) * exp(-step / time_constant): the PyTorch tutorial's EPS_DECAY form."""
    return end + (start - end) * math.exp(-step / time_constant)


def decrement(step: int, start: float, end: float, per_step: float) -> float:
    """start - per_step * step, floored at `end` (a fixed decrement per action sampled)."""
    return max(end, start - per_step * step)


def per_episode(episode: int, start: float, end: float, factor: float) -> float:
    """start * factor ** episode, floored at `end` (multiplicative decay per finished episode)."""
    return max(end, start * factor**episode)


def log_episode(episode: int, start: float, end: float, divisor: float) -> float:
    """min(start, 1 - log10((episode + 1) / divisor)) floored at `end`: the tabular tutorial's
    rate for learning and exploring (1 for the first `divisor` episodes, then falling)."""
    return max(end, min(start, 1.0 - math.log10((episode + 1) / divisor)))


def lr_at(lr: float, schedule: str, step: int, total_steps: int) -> float:
    """A learning rate after `step` of `total_steps` environment steps: `lr` (constant), or
    `lr` decayed linearly to 0 at `total_steps` (linear; 0 after)."""
    if schedule == "linear":
        return lr * max(0.0, 1.0 - step / total_steps)
    return lr


def epsilon_at(cfg: ExploreConfig, step: int, episode: int) -> float:
    """Epsilon after `step` environment steps and `episode` finished training episodes."""
    if cfg.schedule == "linear":
        return linear(step, cfg.start, cfg.end, cfg.decay_steps)
    if cfg.schedule == "exponential":
        return exponential(step, cfg.start, cfg.end, cfg.decay_steps)
    if cfg.schedule == "decrement":
        return decrement(step, cfg.start, cfg.end, cfg.decrement)
    if cfg.schedule == "per_episode":
        return per_episode(episode, cfg.start, cfg.end, cfg.episode_decay)
    if cfg.schedule == "log_episode":
        return log_episode(episode, cfg.start, cfg.end, cfg.log_divisor)
    return cfg.start
