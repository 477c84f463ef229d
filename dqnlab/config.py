"""Typed, validated run configuration.

A config is a preset (``dqnlab.presets``) or a YAML file, plus ``--set section.key=value``
overrides. Every field is documented where it is declared; ``dqnlab presets --show NAME`` prints
a resolved config. Validation errors become one line naming the key and what is allowed.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dqnlab.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=False)


class EnvConfig(_Section):
    id: str = "CartPole-v1"
    """Gymnasium environment id: any with a Discrete action space and a flat Box observation."""
    num_envs: int = Field(8, ge=1, le=4096)
    """Number of vectorised training environments stepped together."""
    max_episode_steps: int | None = Field(None, ge=1)
    """Override the registered time limit (None keeps it). Reaching it truncates, and truncated
    transitions are bootstrapped."""


class NetworkConfig(_Section):
    hidden: list[int] = Field(default_factory=lambda: [128, 128])
    """Sizes of the hidden layers of the Q-network MLP (may be empty for a linear Q-function)."""
    activation: Literal["relu", "tanh", "leaky_relu"] = "relu"
    """Nonlinearity after each hidden layer."""
    batch_norm: bool = False
    """BatchNorm1d after each hidden linear layer (before the activation). Acting and targets use
    the running statistics (eval mode); only gradient steps use batch statistics."""

    @model_validator(mode="after")
    def _positive_sizes(self) -> "NetworkConfig":
        if any(h < 1 for h in self.hidden):
            raise ValueError("network.hidden: every layer size must be >= 1")
        return self


class DQNConfig(_Section):
    gamma: float = Field(0.99, ge=0.0, le=1.0)
    """Discount factor."""
    lr: float = Field(3e-3, gt=0.0, le=1.0)
    """Learning rate of the optimizer."""
    optimizer: Literal["adam", "adamw", "rmsprop"] = "adam"
    """Optimizer for the Q-network."""
    batch_size: int = Field(128, ge=1)
    """Transitions per gradient step."""
    buffer_size: int = Field(50_000, ge=1)
    """Replay capacity in transitions (preallocated)."""
    learning_starts: int = Field(1_000, ge=0)
    """Environment steps collected before the first gradient step."""
    train_freq: int = Field(8, ge=1)
    """Environment steps (transitions, over all vectorised envs) between updates."""
    gradient_steps: int = Field(2, ge=1)
    """Gradient steps per update."""
    target_update: Literal["hard", "soft"] = "hard"
    """Hard copy of the online network every `target_update_every` units, or soft (Polyak)
    averaging with `tau` after every gradient step."""
    target_update_every: int = Field(50, ge=1)
    """For hard updates: the period, in `target_update_unit`."""
    target_update_unit: Literal["steps", "episodes"] = "steps"
    """For hard updates: count gradient steps or finished training episodes."""
    tau: float = Field(0.005, gt=0.0, le=1.0)
    """For soft updates: target <- tau * online + (1 - tau) * target after each gradient step."""
    n_step: int = Field(3, ge=1, le=100)
    """Bootstrap after n steps: targets sum n discounted rewards before the network's estimate."""
    double: bool = True
    """Double DQN: the online network picks the next action, the target network values it."""
    loss: Literal["huber", "mse"] = "huber"
    """TD loss: Huber (smooth L1, delta 1) or mean squared error."""
    max_grad_norm: float | None = Field(10.0, gt=0.0)
    """Clip the global gradient norm to this value (None: no norm clipping)."""
    clip_grad_value: float | None = Field(None, gt=0.0)
    """Clamp every gradient element to [-v, v] (None: no value clipping)."""
    replay_sampling: Literal["uniform", "sequential"] = "uniform"
    """Uniform sampling, or one random contiguous slice of the buffer per batch (a tutorial's mode)."""


class ExploreConfig(_Section):
    schedule: Literal["linear", "exponential", "decrement", "per_episode", "constant"] = "linear"
    """Epsilon schedule: linear over `decay_steps`; exponential with time constant `decay_steps`;
    `decrement` subtracted per action; multiplied by `episode_decay` per finished episode; or
    constant at `start`."""
    start: float = Field(1.0, ge=0.0, le=1.0)
    """Epsilon at step 0."""
    end: float = Field(0.05, ge=0.0, le=1.0)
    """Final epsilon (the floor of every decaying schedule)."""
    decay_steps: int = Field(5_000, ge=1)
    """Linear: steps to go from start to end. Exponential: the time constant in steps."""
    decrement: float = Field(0.001, ge=0.0, le=1.0)
    """Decrement schedule: subtracted per environment step (action sampled)."""
    episode_decay: float = Field(0.99, gt=0.0, le=1.0)
    """Per-episode schedule: multiplier applied after each finished training episode."""


class EvalConfig(_Section):
    every_steps: int = Field(1_000, ge=1)
    """Evaluate the greedy policy every this many environment steps during training."""
    episodes: int = Field(100, ge=1)
    """Episodes per evaluation during training, run in parallel on vectorised envs (100 in
    parallel cost about as much as 20: the longest episode sets the time)."""
    final_episodes: int = Field(100, ge=1)
    """Episodes, on seeds never used in training, for the final evaluation of the delivered policy."""
    early_stop: bool = True
    """Stop training once an evaluation mean reaches `threshold`."""
    threshold: float | None = None
    """Reward threshold for early stopping and `solved` (None: the environment's registered
    reward_threshold, 475 for CartPole-v1, 195 for v0)."""
    stop_threshold: float | None = None
    """Early stopping needs an evaluation mean of at least this (None: `threshold`). A margin
    above `threshold` makes it likelier that the delivered policy also passes the final
    evaluation on fresh episodes."""
    stop_z: float = Field(2.0, ge=0.0)
    """Early stopping needs the evaluation mean minus `stop_z` standard errors
    (z * std / sqrt(episodes)) to reach the stop threshold: a margin that scales with how
    uncertain the evaluation is (0: the mean alone)."""
    confirm: bool = True
    """Before stopping early, evaluate the candidate again on as many other episodes; stop only
    if that mean also reaches the stop threshold (one lucky evaluation is not a solve)."""
    max_envs: int = Field(100, ge=1)
    """At most this many evaluation environments run at once."""


class RunConfig(BaseModel):
    """A complete, resolved training run."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    preset: str | None = None
    """Name of the preset this config started from (informational)."""
    algo: Literal["dqn"] = "dqn"
    """Training algorithm."""
    seed: int = Field(0, ge=0, lt=2**32)
    """Seed for environments, network initialisation, exploration and replay sampling."""
    total_steps: int = Field(50_000, ge=1)
    """Budget of environment steps (transitions over all vectorised envs)."""
    checkpoint_every: int = Field(10_000, ge=1)
    """Write checkpoint.pt every this many environment steps (and always at the end)."""
    artifacts: bool = True
    """When training ends, write curves.png, episode.gif and report.html into the run directory
    (a few seconds, not counted in train_seconds)."""
    torch_threads: int = Field(1, ge=1)
    """torch intra-op threads: 1 is fastest for small networks, and reproducible."""
    env: EnvConfig = Field(default_factory=EnvConfig)
    """Environment."""
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    """Q-network architecture."""
    dqn: DQNConfig = Field(default_factory=DQNConfig)
    """DQN learning settings."""
    explore: ExploreConfig = Field(default_factory=ExploreConfig)
    """Epsilon-greedy exploration."""
    eval: EvalConfig = Field(default_factory=EvalConfig)
    """Evaluation, early stopping and delivery."""

    @model_validator(mode="after")
    def _consistent(self) -> "RunConfig":
        if self.network.batch_norm and self.dqn.batch_size < 2:
            raise ValueError("network.batch_norm needs dqn.batch_size >= 2 (batch statistics of one sample are undefined)")
        for section, name, applies, when in _CONDITIONAL_OPTIONS:
            sect = getattr(self, section)
            default = type(sect).model_fields[name].get_default(call_default_factory=True)
            if not applies(self) and getattr(sect, name) != default:
                raise ValueError(f"{section}.{name} has no effect unless {when}; remove it or change that setting")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# Options that only mean something in one mode. Setting one (to other than its default) while
# the mode is off is almost always a mistake, so it is refused rather than silently ignored.
_CONDITIONAL_OPTIONS = (
    ("dqn", "tau", lambda c: c.dqn.target_update == "soft", "dqn.target_update is 'soft'"),
    ("dqn", "target_update_every", lambda c: c.dqn.target_update == "hard", "dqn.target_update is 'hard'"),
    ("dqn", "target_update_unit", lambda c: c.dqn.target_update == "hard", "dqn.target_update is 'hard'"),
    ("explore", "decay_steps", lambda c: c.explore.schedule in ("linear", "exponential"),
     "explore.schedule is 'linear' or 'exponential'"),
    ("explore", "decrement", lambda c: c.explore.schedule == "decrement", "explore.schedule is 'decrement'"),
    ("explore", "episode_decay", lambda c: c.explore.schedule == "per_episode", "explore.schedule is 'per_episode'"),
    ("eval", "stop_threshold", lambda c: c.eval.early_stop, "eval.early_stop is true"),
    ("eval", "stop_z", lambda c: c.eval.early_stop, "eval.early_stop is true"),
)


# ---------------------------------------------------------------------------------------------
# Building configs from presets, files and overrides
# ---------------------------------------------------------------------------------------------


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _model_for_path(path: tuple[str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = RunConfig
    for part in path:
        if model is None or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return model


def _known_keys(path: tuple[str, ...]) -> list[str]:
    model = _model_for_path(path)
    return list(model.model_fields) if model else []


def _format_error(err: dict[str, Any]) -> str:
    loc = tuple(str(p) for p in err["loc"])
    key = ".".join(loc) or "config"
    kind = err["type"]
    if kind == "extra_forbidden":
        parent, name = loc[:-1], loc[-1]
        valid = _known_keys(parent)
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f"; did you mean '{'.'.join((*parent, close[0]))}'?" if close else ""
        return f"unknown config key '{key}'{hint} (valid: {', '.join(valid)})"
    value = err.get("input")
    msg = err["msg"]
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
        return f"invalid config: {msg}"
    return f"invalid config value for '{key}': {msg} (got {value!r})"


def validate_config(data: dict[str, Any]) -> RunConfig:
    """Validate a plain dict into a RunConfig, or raise ConfigError with one clear line."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of keys to values, got {type(data).__name__}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc.errors()[0])) from None


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """Parse one ``section.key=value`` override; the value is read as YAML (numbers, lists, null)."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got '{text}'")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set expects key=value with a dotted key, got '{text}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML 1.1 reads '1e-3' as a string; numbers in scientific notation are what users type.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    return tuple(key.split(".")), value


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads 5e4 or 1e-3 (no dot) as strings; users mean numbers, as with --set."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict, with the line number of any syntax error."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {p}: {exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"YAML syntax error in {p}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of keys to values")
    return data


def build_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    **fields: Any,
) -> RunConfig:
    """Resolve a config: preset (default 'default'), then a YAML file, then dotted overrides,
    then explicit top-level or dotted fields (``seed=3``, ``**{"env.id": "CartPole-v0"}``)."""
    from dqnlab.presets import preset_dict

    data: dict[str, Any] = {}
    file_data = load_yaml_file(config_file) if config_file is not None else {}
    name = preset or file_data.get("preset") or "default"
    if not isinstance(name, str):
        raise ConfigError("config key 'preset' must be a preset name")
    data = _deep_merge(preset_dict(name), {"preset": name})
    data = _deep_merge(data, file_data)
    pairs = [parse_override(o) for o in overrides or []]
    pairs += [(tuple(k.split(".")), v) for k, v in fields.items() if v is not None]
    for path, value in pairs:
        data = _set_path(data, path, value)
    return validate_config(data)


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    nested: Any = value
    for part in reversed(path):
        nested = {part: nested}
    return _deep_merge(data, nested)


def config_to_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
