"""Creating vectorised Gymnasium environments, checking their spaces, saving their state.

All vector environments here use Gymnasium 1.x's NEXT_STEP autoreset: the step after an episode
ends returns the next episode's first observation with reward 0 and ignores the action. Callers
track ``done`` from the previous step and discard that step (see ``dqnlab.train``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dqnlab.config import EnvConfig
from dqnlab.core.errors import ConfigError, preview
from dqnlab.envs.pixels import PixelVectorEnv
from dqnlab.envs.wrappers import ActionNoise, ObservationNoise

EnvWrapperFn = Callable[[gym.Env], gym.Wrapper]
"""A wrapper for each sub-environment of a SyncVectorEnv (gym.make_vec's `wrappers`)."""


def env_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec of `env_id`, or a ConfigError naming the closest registered id."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return gym.spec(env_id)
    except (gym.error.Error, ModuleNotFoundError, ValueError):
        close = difflib.get_close_matches(env_id[:100], list(gym.registry), n=1, cutoff=0.5)  # cost: length²
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown Gymnasium environment {preview(env_id, 80)}{hint}") from None


def make_vec_env(cfg: EnvConfig, num_envs: int) -> gym.vector.VectorEnv:
    """`num_envs` copies of `cfg.id`: the NumPy-vectorised version where one is registered
    (CartPole) or where dqnlab has one (Acrobot-v1 and MountainCar-v0, dqnlab.envs.acrobot_vec
    and mountaincar_vec: the same episodes as the SyncVectorEnv), otherwise a SyncVectorEnv.
    All autoreset on the NEXT_STEP.

    With perturbations configured (noise, physics randomisation), CartPole-style environments
    use dqnlab's NumPy CartPole (dqnlab.envs.cartpole_vec), which applies all of them inside its step;
    other environments get the generic observation and action noise wrappers (dqnlab.envs.wrappers)
    around each sub-environment, in a SyncVectorEnv of Gymnasium's class (so do env.kwargs).
    """
    spec = env_spec(cfg.id)
    kwargs: dict[str, Any] = dict(cfg.kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    mode = "vector_entry_point" if spec.vector_entry_point is not None else "sync"
    make_id: str | gym.envs.registration.EnvSpec = cfg.id
    wrappers: list[EnvWrapperFn] = []
    numpy_version = _numpy_vector_env(spec)
    if numpy_version is not None and not cfg.perturbed() and not cfg.kwargs:
        # Gymnasium registers no vector version of this env: dqnlab's NumPy one, the same episodes.
        make_id, mode = dataclasses.replace(spec, vector_entry_point=numpy_version), "vector_entry_point"
    if cfg.perturbed():
        make_id, mode, wrappers, perturb_kwargs = _perturbed_setup(cfg, spec)
        kwargs.update(perturb_kwargs)
    wrapper_kwargs: dict[str, Any] = {"wrappers": wrappers} if wrappers else {}
    try:
        with warnings.catch_warnings():
            # CartPole-v0's deprecation notice: v0 is a deliberate, supported target here.
            warnings.simplefilter("ignore")
            envs = gym.make_vec(
                make_id,
                num_envs=num_envs,
                vectorization_mode=mode,
                **wrapper_kwargs,
                **kwargs,
            )
    except gym.error.DependencyNotInstalled as exc:
        raise ConfigError(f"environment '{cfg.id}' needs an extra dependency: {exc}") from None
    except TypeError as exc:
        if not cfg.kwargs:
            raise
        raise ConfigError(
            f"environment '{cfg.id}' does not accept env.kwargs {preview(cfg.kwargs)}: {str(exc)[:200]}"
        ) from None
    except ValueError as exc:  # raised by dqnlab's environments and wrappers for bad arguments
        raise ConfigError(f"environment '{cfg.id}': {str(exc)[:300]}") from None
    except gym.error.Error as exc:  # Gymnasium refusing the arguments (make_vec's own checks)
        raise ConfigError(f"environment '{cfg.id}': {str(exc)[:300]}") from None
    _check_autoreset(envs, cfg.id)
    if mode == "vector_entry_point" and isinstance(envs.action_space, spaces.MultiDiscrete):
        envs.action_space = _ShapeCheckedActions(envs.action_space.nvec, seed=None)
    if cfg.pixels.enabled:
        envs = _pixel_env(envs, cfg)
    check_spaces(envs, cfg.id)
    return envs


def _check_autoreset(envs: gym.vector.VectorEnv, env_id: str) -> None:
    """ConfigError unless `envs` autoresets on the NEXT_STEP, as every loop here assumes.

    Gymnasium 1.x vector envs declare their mode in metadata; other modes exist (SAME_STEP,
    DISABLED) and a third-party env may default to one, or take it as an argument. Under them
    dqnlab would store the wrong transitions and train silently wrong. An env that declares no
    mode is taken as NEXT_STEP, as Gymnasium's own wrappers do."""
    mode = envs.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    if mode not in (gym.vector.AutoresetMode.NEXT_STEP, gym.vector.AutoresetMode.NEXT_STEP.value):
        envs.close()
        shown = getattr(mode, "value", mode)
        raise ConfigError(
            f"environment '{env_id}' autoresets in mode {preview(shown, 40)}; dqnlab needs "
            f"{gym.vector.AutoresetMode.NEXT_STEP.value} (check env.kwargs)"
        )


def _pixel_env(envs: gym.vector.VectorEnv, cfg: EnvConfig) -> gym.vector.VectorEnv:
    """`envs` with frame-stack observations (dqnlab.envs.pixels): Gymnasium's CartPole scene only."""
    if env_spec(cfg.id).entry_point != "gymnasium.envs.classic_control.cartpole:CartPoleEnv":
        envs.close()
        raise ConfigError(f"env.pixels draws Gymnasium's CartPole scene: CartPole-v0 or CartPole-v1, not '{cfg.id}'")
    return PixelVectorEnv(envs, cfg.pixels)


# Registered environments without a vector version in Gymnasium, for which dqnlab has a NumPy one
# that gives the same episodes as their SyncVectorEnv: (entry point, dqnlab's class) by id.
_NUMPY_VECTOR_ENVS = {
    "Acrobot-v1": ("gymnasium.envs.classic_control.acrobot:AcrobotEnv", "dqnlab.envs.acrobot_vec:AcrobotVectorEnv"),
    "MountainCar-v0": (
        "gymnasium.envs.classic_control.mountain_car:MountainCarEnv",
        "dqnlab.envs.mountaincar_vec:MountainCarVectorEnv",
    ),
}


def _numpy_vector_env(spec: gym.envs.registration.EnvSpec) -> str | None:
    """dqnlab's NumPy vector env for `spec`, or None. Only for the registration it reproduces:
    Gymnasium's id and class, a time limit, no arguments and no extra wrappers (the same class
    registered under another id or with other settings keeps Gymnasium's SyncVectorEnv)."""
    entry = _NUMPY_VECTOR_ENVS.get(spec.id)
    plain = (
        entry is not None
        and spec.entry_point == entry[0]
        and spec.vector_entry_point is None
        and not spec.kwargs
        and not spec.additional_wrappers
        and spec.max_episode_steps is not None  # the NumPy envs always have a time limit
    )
    return entry[1] if plain and entry is not None else None


# Environments whose dynamics are dqnlab.envs.physics' cart-pole, so that force noise and physics
# randomisation mean something; the value is the NumPy vector env that can apply them.
_CARTPOLE_VECTOR_ENVS = {
    "gymnasium.envs.classic_control.cartpole:CartPoleEnv": "dqnlab.envs.cartpole_vec:CartPoleVectorEnv",
    "dqnlab.envs.target:CartPoleTargetEnv": "dqnlab.envs.target:CartPoleTargetVectorEnv",
}


def is_cartpole_like(env_id: str) -> bool:
    """Whether `env_id` simulates CartPole's physics, its observation starting with (x, x_dot, theta,
    theta_dot): Gymnasium's CartPole-v0/v1 and dqnlab/CartPoleTarget-v0."""
    return env_spec(env_id).entry_point in _CARTPOLE_VECTOR_ENVS


def _perturbed_setup(cfg: EnvConfig, spec: gym.envs.registration.EnvSpec):
    """(spec or id, vectorization mode, wrappers, extra env kwargs) that apply cfg's perturbations."""
    vector_env = _CARTPOLE_VECTOR_ENVS.get(spec.entry_point) if isinstance(spec.entry_point, str) else None
    if vector_env is not None:
        perturb = {
            "obs_noise": cfg.obs_noise,
            "action_noise": cfg.action_noise,
            "force_noise": cfg.force_noise,
            "randomize": cfg.randomize.ranges(),
        }
        return dataclasses.replace(spec, vector_entry_point=vector_env), "vector_entry_point", [], perturb
    physics = [
        name
        for name, on in (("env.force_noise", cfg.force_noise > 0), ("env.randomize", bool(cfg.randomize.ranges())))
        if on
    ]
    if physics:
        raise ConfigError(
            f"{' and '.join(physics)}: only for CartPole-style environments (CartPole-v0, CartPole-v1, "
            f"dqnlab/CartPoleTarget-v0), not '{cfg.id}' (env.obs_noise and env.action_noise work on any)"
        )
    wrappers: list[EnvWrapperFn] = []
    if any(cfg.obs_noise if isinstance(cfg.obs_noise, list) else [cfg.obs_noise]):
        wrappers.append(functools.partial(ObservationNoise, sigma=cfg.obs_noise))
    if cfg.action_noise > 0:
        wrappers.append(functools.partial(ActionNoise, prob=cfg.action_noise))
    return cfg.id, "sync", wrappers, {}


class _ShapeCheckedActions(spaces.MultiDiscrete):
    """The NumPy CartPole asserts ``action_space.contains(action)`` on every step, which costs as
    much as the physics (about 20 us of 45). dqnlab's actions come from argmax or rng.integers
    over range(n), so a shape and integer-dtype check is enough."""

    def contains(self, x) -> bool:
        return isinstance(x, np.ndarray) and x.shape == self.shape and x.dtype.kind in "iu"


def check_spaces(envs: gym.vector.VectorEnv, env_id: str) -> tuple[tuple[int, ...], int]:
    """(obs_shape, n_actions), or a ConfigError if DQN cannot handle the spaces."""
    act = envs.single_action_space
    obs = envs.single_observation_space
    if not isinstance(act, spaces.Discrete):
        raise ConfigError(f"environment '{env_id}' has a {type(act).__name__} action space; DQN needs a Discrete one")
    if isinstance(envs, PixelVectorEnv):  # frame stacks (K * C, H, W), made by dqnlab itself
        assert obs.shape is not None  # its observation space is a Box
        return tuple(obs.shape), int(act.n)
    if not isinstance(obs, spaces.Box) or len(obs.shape) != 1:
        raise ConfigError(f"environment '{env_id}' has observation space {obs}; this agent needs a flat Box (vector)")
    if int(act.start) != 0:
        raise ConfigError(f"environment '{env_id}' has actions starting at {act.start}; expected 0")
    return tuple(obs.shape), int(act.n)


def reward_threshold(env_id: str, override: float | None) -> float | None:
    """The solve threshold: `override`, else the spec's reward_threshold (None if it has none)."""
    if override is not None:
        return float(override)
    threshold = env_spec(env_id).reward_threshold
    return None if threshold is None else float(threshold)


# ---------------------------------------------------------------------------------------------
# Saving and restoring the exact state of a vector environment, for bit-exact resume.
# ---------------------------------------------------------------------------------------------
