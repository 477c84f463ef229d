"""The one rule for dotted overrides, used by `--set`, YAML config files, presets and sweeps.

    section.key=value      sets exactly that field; a mapping value REPLACES the field's whole
                           mapping (`--set 'env.randomize={}'` removes the preset's randomisation,
                           `--set 'env.kwargs={}'` its environment arguments)

A YAML config file (and a preset) is a nested mapping read as the dotted assignments it spells
out: `dqn: {lr: 1e-3}` is `dqn.lr=1e-3`. Its mappings are followed down through the config's
sections (env, dqn, env.randomize, ...) to their fields, so a file changes only the fields it
names; a field's value, a mapping included (env.kwargs, eval.env), replaces the preset's; an
empty mapping given for a section resets that section to its defaults.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from dqnlab.config.schema import model_for_path
from dqnlab.config.yaml_io import RefusedYaml, load_yaml_text
from dqnlab.core.errors import ConfigError, preview

Assignment = tuple[tuple[str, ...], Any]
"""A dotted key, split at its dots, and the value it is set to."""


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """Parse one ``section.key=value`` override; the value is read as YAML (numbers, lists, null)."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {preview(text)}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set expects key=value with a dotted key, got {preview(text)}")
    try:
        value = load_yaml_text(raw, f"--set {preview(key, 60)}") if raw.strip() else ""
    except ConfigError as exc:
        if not isinstance(exc.__cause__, RefusedYaml):
            raise
        value = raw  # not YAML (an unbalanced bracket, a colon): the text as typed
    # YAML 1.1 reads '1e-3' as a string; numbers in scientific notation are what users type.
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    return tuple(key.split(".")), value


def assignments(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[Assignment]:
    """The dotted assignments a nested mapping (a YAML config file, a preset) spells out: mappings
    are followed down through the config's sections to their fields (see the module docstring)."""
    out: list[Assignment] = []
    for key, value in data.items():
        path = (*prefix, key) if isinstance(key, str) else (*prefix, key)
        section = model_for_path(path) if all(isinstance(p, str) for p in path) else None
        if isinstance(value, dict) and value and section is not None:
            out += assignments(value, path)
        else:
            out.append((path, value))
    return out


def set_dotted(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A copy of `data` with the field at `path` set to `value` (which replaces it entirely),
    creating the sections on the way."""
    out = dict(data)
    node = out
    for part in path[:-1]:
        child = node.get(part)
        node[part] = dict(child) if isinstance(child, dict) else {}
        node = node[part]
    node[path[-1]] = copy.deepcopy(value)
    return out


def apply(data: dict[str, Any], pairs: list[Assignment]) -> dict[str, Any]:
    """`data` with each assignment applied in order."""
    for path, value in pairs:
        data = set_dotted(data, path, value)
    return data


def apply_dotted(data: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """`data` with each "section.key": value of `values` applied in order (sweeps' fixed and
    sampled values, build_config's keyword fields)."""
    return apply(data, [(tuple(key.split(".")), value) for key, value in values.items()])


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`update`'s nested mapping applied over `base` by the rule above (for composing presets)."""
    return apply(base, assignments(update))
