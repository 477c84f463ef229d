"""Resolving a run's config: a preset, then a YAML file, then dotted overrides, validated."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dqnlab.config.overrides import apply, assignments, parse_override
from dqnlab.config.presets import preset_dict, preset_for_env
from dqnlab.config.schema import RunConfig, validate_config
from dqnlab.config.yaml_io import dump_yaml, load_yaml_file
from dqnlab.core.errors import ConfigError


def build_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    env: str | Mapping[str, Any] | None = None,
    **fields: Any,
) -> RunConfig:
    """Resolve a config: preset, then a YAML file, then dotted overrides, then `env` (env.id),
    then explicit top-level or dotted fields (``seed=3``, ``**{"env.id": "CartPole-v0"}``). A
    field given as None is set to null (``**{"dqn.policy_average_tau": None}`` turns the policy
    average off; for a field that takes no null it is a ConfigError): leave a field out to keep
    the preset's value.

    The preset is `preset`, else the YAML file's `preset:` key, else the preset tuned for `env`
    (``dqnlab.config.presets.ENV_PRESETS``: ``env="MountainCar-v0"`` starts from `mountaincar`),
    else 'default'. Only `env` chooses a preset: a dotted ``env.id`` field sets the id alone.
    A mapping as `env` is the whole env section, as any other field (it chooses no preset)."""
    if env is not None and not isinstance(env, str):
        fields, env = {"env": env, **fields}, None
    file_data = load_yaml_file(config_file) if config_file is not None else {}
    data = _preset_then(file_data, starting_preset(preset, file_data.get("preset"), env))
    pairs = [parse_override(o) for o in overrides or []]
    if env is not None:
        pairs.append((("env", "id"), env))
    pairs += [(tuple(k.split(".")), v) for k, v in fields.items()]
    return validate_config(apply(data, pairs))


def config_from_mapping(data: object) -> RunConfig:
    """A config given as a dict (``dqnlab.train(config={...})``), read as a config file's
    contents: its `preset` key (else 'default') first, then its own values. So
    ``{"preset": "mountaincar", "seed": 3}`` is that preset with seed 3, as the same YAML file
    would be, not the default config with the preset's name as a label."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config must be a mapping of keys to values, got {type(data).__name__}")
    return validate_config(_preset_then(data, starting_preset(None, data.get("preset"), None)))


def _preset_then(data: Mapping[str, Any], name: Any) -> dict[str, Any]:
    """Preset `name`'s values (a ConfigError for an unknown name), then the values of `data`."""
    if not isinstance(name, str):
        raise ConfigError("config key 'preset' must be a preset name")
    return apply(apply(preset_dict(name), [(("preset",), name)]), assignments(dict(data)))


def starting_preset(preset: str | None, file_preset: Any, env: str | None) -> Any:
    """The preset a config starts from: `preset`, else the config file's (`file_preset`), else
    the one tuned for `env`, else 'default'."""
    return preset or file_preset or (preset_for_env(env) if env else None) or "default"


def env_preset_notice(preset: str | None, config_file: str | Path | None, env: str | None) -> str | None:
    """The line that says a preset was chosen for `env` (`dqnlab train --env ID` without a
    preset), or None where `preset` or the config file names one, or none is tuned for `env`."""
    file_preset = load_yaml_file(config_file).get("preset") if config_file is not None else None
    auto = preset_for_env(env) if env else None
    if auto is None or preset or file_preset:
        return None
    return f"[dqnlab] preset '{auto}' (tuned for {env}); --preset default to train without it"


def config_to_yaml(config: RunConfig) -> str:
    """config.yaml's text: the fully resolved config (usable with --config)."""
    return dump_yaml(config.to_dict())
