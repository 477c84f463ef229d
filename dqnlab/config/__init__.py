"""The run configuration: its typed schema, loading YAML and dotted overrides, presets, the algorithm table.

schema.py      RunConfig and its sections: every field typed, bounded and documented
algorithms.py  the algorithm table: names, where their code is, which sections they read
yaml_io.py     the safe YAML loader (no aliases, no duplicate keys) and dumper
overrides.py   the one rule for dotted overrides (--set, YAML files, presets, sweeps)
presets.py     the presets
loading.py     preset + YAML file + overrides -> a validated RunConfig; config.yaml's text
documented.py  a config as YAML with each field's description (`dqnlab presets --show`)
"""

from dqnlab.config.loading import build_config, config_from_mapping, config_to_yaml
from dqnlab.config.schema import (
    EVAL_ENV_KEYS,
    MAX_EVAL_EPISODES,
    MAX_QUANTILES,
    MAX_STEPS,
    MAX_UNITS,
    BaselineConfig,
    DQNConfig,
    EnvConfig,
    EvalConfig,
    ExploreConfig,
    NetworkConfig,
    PixelConfig,
    PPOConfig,
    PQNConfig,
    RandomizeConfig,
    RunConfig,
    TabularConfig,
    conv_output_hw,
    validate_config,
    validate_recorded_config,
)
from dqnlab.config.yaml_io import load_yaml_file

__all__ = [
    "EVAL_ENV_KEYS",
    "MAX_EVAL_EPISODES",
    "MAX_QUANTILES",
    "MAX_STEPS",
    "MAX_UNITS",
    "BaselineConfig",
    "DQNConfig",
    "EnvConfig",
    "EvalConfig",
    "ExploreConfig",
    "NetworkConfig",
    "PPOConfig",
    "PQNConfig",
    "PixelConfig",
    "RandomizeConfig",
    "RunConfig",
    "TabularConfig",
    "build_config",
    "config_from_mapping",
    "config_to_yaml",
    "conv_output_hw",
    "load_yaml_file",
    "validate_config",
    "validate_recorded_config",
]
