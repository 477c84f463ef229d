"""Capturing and restoring the state of vector environments, so that a resumed run continues its
episodes in progress bit for bit.

Gymnasium offers no public way to read or set two pieces of that state: a TimeLimit wrapper's
step count (`_elapsed_steps`) and which sub-environments a SyncVectorEnv resets on its next step
(`_autoreset_envs`). They are read and written here and nowhere else; tests/test_training.py's
exact-resume tests fail if a Gymnasium release renames them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast, runtime_checkable

import gymnasium as gym
import numpy as np
import torch

from dqnlab.envs.pixels import PixelVectorEnv


class _NumpyVectorEnv(Protocol):
    """What capture_env_state saves of a NumPy vector env (Gymnasium's CartPoleVectorEnv and
    dqnlab's subclasses), which Gymnasium's VectorEnv type does not declare."""

    state: np.ndarray
    steps: np.ndarray
    prev_done: np.ndarray
    np_random: np.random.Generator


@runtime_checkable
class _SyncCaptured(Protocol):
    """A NumPy vector env saved in the layout of the SyncVectorEnv it stands for
    (dqnlab.envs.numpy_vector: Acrobot, MountainCar), so that checkpoints resume in either."""

    def sync_capture(self) -> dict[str, Any] | None: ...

    def load_sync_capture(self, envs: list[dict[str, Any]], autoreset: np.ndarray) -> None: ...


class _StatefulEnv(Protocol):
    """A classic-control environment, whose dynamics live in ``state`` (an array, or a tuple)."""

    state: Any
    np_random: np.random.Generator


class _ExtraState(Protocol):
    """A NumPy vector env with state of its own besides Gymnasium's (dqnlab's CartPole)."""

    def set_extra_state(self, saved: Mapping[str, Any]) -> None: ...


def _to_saveable(value: Any) -> Any:
    """numpy arrays -> tensors (loadable with torch.load(weights_only=True))."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _from_saveable(value: Any) -> Any:
    return value.numpy().copy() if isinstance(value, torch.Tensor) else value


def _tree_to_saveable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tree_to_saveable(v) for k, v in value.items()}
    return _to_saveable(value)


def _tree_from_saveable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tree_from_saveable(v) for k, v in value.items()}
    return _from_saveable(value)


def _wrapper_chain(env: gym.Env) -> list[gym.Wrapper]:
    chain = []
    while isinstance(env, gym.Wrapper):
        chain.append(env)
        env = env.env
    return chain


def capture_env_state(envs: gym.vector.VectorEnv) -> dict[str, Any] | None:
    """Everything that determines the future of `envs`, or None where we cannot capture it.

    Supported: Gymnasium's NumPy CartPoleVectorEnv, SyncVectorEnv over environments whose
    dynamics live in ``unwrapped.state`` (all of classic control), and dqnlab's NumPy Acrobot and
    MountainCar (saved as the SyncVectorEnv they replace). Anything else resumes with
    freshly reset environments (documented in the README).
    """
    if isinstance(envs, PixelVectorEnv):  # the frame history, then the environment it draws
        captured = capture_env_state(envs.env)
        return None if captured is None else {**captured, "pixels": envs.state_dict()}
    base = envs.unwrapped
    # Before the generic NumPy branch below, which these envs would also match (their state rows
    # are per environment, not per coordinate as in Gymnasium's CartPole).
    if isinstance(base, _SyncCaptured):  # saved as the SyncVectorEnv it replaces
        sync = base.sync_capture()
        if sync is None:
            return None
        envs_saved = [{**sub, "state": _to_saveable(sub["state"])} for sub in sync["envs"]]
        return {"kind": "sync", "envs": envs_saved, "autoreset": _to_saveable(sync["autoreset"])}
    if hasattr(base, "prev_done") and hasattr(base, "state") and hasattr(base, "steps"):
        saved = {
            "kind": "numpy_vector",
            "state": _to_saveable(np.asarray(base.state)),
            "steps": _to_saveable(np.asarray(base.steps)),
            "prev_done": _to_saveable(np.asarray(base.prev_done)),
            "rng": base.np_random.bit_generator.state,
        }
        if hasattr(base, "extra_state"):  # dqnlab's CartPole: noise generator, physics, targets
            saved["extra"] = _tree_to_saveable(base.extra_state())
        return saved
    if isinstance(base, gym.vector.SyncVectorEnv):
        subs = []
        for env in base.envs:
            inner = env.unwrapped
            if not hasattr(inner, "state") or inner.state is None:
                return None
            chain = _wrapper_chain(env)
            elapsed = next((w._elapsed_steps for w in chain if isinstance(w, gym.wrappers.TimeLimit)), None)
            subs.append(
                {
                    "state": _to_saveable(np.array(inner.state)),  # keeps its dtype: float32 or 64
                    "rng": inner.np_random.bit_generator.state,
                    "elapsed": elapsed,
                    # dqnlab.envs.wrappers' noise generators, outermost first
                    "noise_rngs": [w.noise_rng.bit_generator.state for w in chain if hasattr(w, "noise_rng")],
                }
            )
        return {
            "kind": "sync",
            "envs": subs,
            "autoreset": _to_saveable(np.asarray(base._autoreset_envs)),
        }
    return None


def restore_env_state(envs: gym.vector.VectorEnv, saved: dict[str, Any]) -> None:
    """Put `envs` (already reset once) back into a state captured by capture_env_state."""
    if isinstance(envs, PixelVectorEnv):
        envs.load_state_dict(saved["pixels"])
        restore_env_state(envs.env, {k: v for k, v in saved.items() if k != "pixels"})
        return
    # Gymnasium types `unwrapped` as a VectorEnv: the casts name the class that capture_env_state
    # found (saved["kind"]). A checkpoint that does not fit fails on a missing attribute, as before.
    base = envs.unwrapped
    if saved["kind"] == "numpy_vector":
        numpy_env = cast(_NumpyVectorEnv, base)
        numpy_env.state = _from_saveable(saved["state"])
        numpy_env.steps = _from_saveable(saved["steps"])
        numpy_env.prev_done = _from_saveable(saved["prev_done"])
        numpy_env.np_random.bit_generator.state = saved["rng"]
        if "extra" in saved:  # saved from its extra_state
            cast(_ExtraState, base).set_extra_state(_tree_from_saveable(saved["extra"]))
        return
    if isinstance(base, _SyncCaptured):
        subs = [{**sub, "state": _from_saveable(sub["state"])} for sub in saved["envs"]]
        base.load_sync_capture(subs, _from_saveable(saved["autoreset"]))
        return
    sync_env = cast(gym.vector.SyncVectorEnv, base)
    for env, sub in zip(sync_env.envs, saved["envs"], strict=True):
        inner = cast(_StatefulEnv, env.unwrapped)
        state = _from_saveable(sub["state"])
        inner.state = tuple(state) if isinstance(inner.state, tuple) else state
        inner.np_random.bit_generator.state = sub["rng"]
        chain = _wrapper_chain(env)
        for w in chain:
            if isinstance(w, gym.wrappers.TimeLimit) and sub["elapsed"] is not None:
                w._elapsed_steps = sub["elapsed"]
        noisy = [w for w in chain if hasattr(w, "noise_rng")]
        for w, rng_state in zip(noisy, sub.get("noise_rngs", []), strict=False):
            w.noise_rng.bit_generator.state = rng_state
    sync_env._autoreset_envs = _from_saveable(saved["autoreset"])
