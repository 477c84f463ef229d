"""A config as documented YAML (`dqnlab presets --show NAME`): every field with its description
as a comment above it, only the sections the config's algorithm reads, and the value a `null`
stands for where it means "the environment's" or "another field's".

The text loads back to the same config (``build_config(config_file=...)``): the sections left
out are those the algorithm does not read, which validation keeps at their defaults anyway.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from dqnlab.config.algorithms import ALGORITHM_SECTIONS, ALGORITHMS
from dqnlab.config.schema import CONDITIONAL_OPTIONS, PixelConfig, RunConfig
from dqnlab.config.yaml_io import yaml_inline

WIDTH = 100
"""Comments are wrapped to this many columns."""


def documented_yaml(config: RunConfig) -> str:
    """`config` as YAML with a comment per field and section (see the module docstring)."""
    algo = ALGORITHMS[config.algo]
    unused = [s for s in ALGORITHM_SECTIONS if s not in algo.sections]
    lines = _comment(
        f"dqnlab config: preset {config.preset or '(none)'}, algo {config.algo} ({algo.summary}). "
        "Train with it: dqnlab train --config FILE.yaml (a key can also be set with --set KEY=VALUE)."
        + (f" Left out: {', '.join(unused)}, which algo {config.algo} does not read." if unused else ""),
        "",
    ) + [""]
    inactive = {
        f"{section}.{name}": when for section, name, applies, when in CONDITIONAL_OPTIONS if not applies(config)
    }
    notes = _null_notes(config)
    for name, field in RunConfig.model_fields.items():
        if name in unused:
            continue
        value = getattr(config, name)
        if isinstance(value, BaseModel):
            lines.append("")
            lines += _section(name, field, value, "", inactive, notes, (name,))
        else:
            lines += _field(name, field, value, "", None, notes.get(name))
    return "\n".join(lines) + "\n"


def _section(
    name: str,
    field: FieldInfo,
    model: BaseModel,
    indent: str,
    inactive: dict[str, str],
    notes: dict[str, str],
    path: tuple[str, ...],
) -> list[str]:
    doc = type(model).__doc__ or field.description or ""
    fields = type(model).model_fields
    if isinstance(model, PixelConfig) and not model.enabled:
        # Pixel observations off: the frame settings cannot be changed (validation refuses them),
        # so only the switch is shown.
        others = ", ".join(f for f in fields if f != "mode")
        doc += f" The frame settings ({others}) apply once `mode` is on: see `dqnlab presets --show pixels`."
        fields = {"mode": fields["mode"]}
    lines = _comment(doc, indent) + [f"{indent}{name}:"]
    for key, sub_field in fields.items():
        value = getattr(model, key)
        dotted = ".".join((*path, key))
        if isinstance(value, BaseModel):
            lines += _section(key, sub_field, value, indent + "  ", inactive, notes, (*path, key))
        else:
            lines += _field(key, sub_field, value, indent + "  ", inactive.get(dotted), notes.get(dotted))
    return lines


def _field(name: str, field: FieldInfo, value: Any, indent: str, inactive: str | None, note: str | None) -> list[str]:
    doc = field.description or ""
    if inactive:
        doc += f" (No effect unless {inactive}.)"
    if isinstance(value, tuple):
        value = list(value)
    line = f"{indent}{name}: {yaml_inline(value)}"
    if note is not None and value is None:
        line += f"  # {note}"
    return [*_comment(doc, indent), line]


def _comment(text: str, indent: str) -> list[str]:
    """`text` as `# ` lines wrapped to WIDTH; Python's None reads as YAML's null."""
    text = re.sub(r"\bNone\b", "null", " ".join(text.split()))
    if not text:
        return []
    width = max(40, WIDTH - len(indent) - 2)
    return [f"{indent}# {line}" for line in textwrap.wrap(text, width, break_on_hyphens=False)]


def _null_notes(config: RunConfig) -> dict[str, str]:
    """{dotted key: what its null stands for}, for the nulls that mean another value."""
    notes: dict[str, str] = {}
    threshold, limit = _registered(config.env.id)
    if limit is not None:
        notes["env.max_episode_steps"] = f"registered limit: {limit}"
    if config.eval.success_threshold is None:
        if threshold is not None:
            notes["eval.threshold"] = f"the environment's: {threshold:g} for {config.env.id}"
        effective = config.eval.threshold if config.eval.threshold is not None else threshold
        if effective is not None:
            notes["eval.stop_threshold"] = f"eval.threshold's: {effective:g}"
    notes["ppo.critic_lr"] = f"ppo.lr's: {config.ppo.lr:g}"
    notes["ppo.critic_hidden"] = f"network.hidden's: {yaml_inline(config.network.hidden)}"
    return notes


def _registered(env_id: str) -> tuple[float | None, int | None]:
    """The registered reward threshold and step limit of `env_id` ((None, None) if unknown)."""
    import warnings

    import gymnasium as gym

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spec = gym.spec(env_id)
    except Exception:  # an unknown id is reported when training starts, not here
        return None, None
    threshold = None if spec.reward_threshold is None else float(spec.reward_threshold)
    return threshold, spec.max_episode_steps
