"""Resolving a run's config: a preset, then a YAML file, then dotted overrides, validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dqnlab.config.overrides import apply, assignments, parse_override
from dqnlab.config.presets import preset_dict
from dqnlab.config.schema import RunConfig, validate_config
from dqnlab.config.yaml_io import dump_yaml, load_yaml_file
from dqnlab.core.errors import ConfigError


def build_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    **fields: Any,
) -> RunConfig:
    """Resolve a config: preset (default 'default'), then a YAML file, then dotted overrides,
    then explicit top-level or dotted fields (``seed=3``, ``**{"env.id": "CartPole-v0"}``)."""
    file_data = load_yaml_file(config_file) if config_file is not None else {}
    name = preset or file_data.get("preset") or "default"
    if not isinstance(name, str):
        raise ConfigError("config key 'preset' must be a preset name")
    data = apply(preset_dict(name), [(("preset",), name)])
    data = apply(data, assignments(file_data))
    pairs = [parse_override(o) for o in overrides or []]
    pairs += [(tuple(k.split(".")), v) for k, v in fields.items() if v is not None]
    return validate_config(apply(data, pairs))


def config_to_yaml(config: RunConfig) -> str:
    """config.yaml's text: the fully resolved config (usable with --config)."""
    return dump_yaml(config.to_dict())
