"""The delivered greedy policy: calling it on raw observations, and its file format (written here,
read back by dqnlab.algos.registry.load_policy, which knows how each algorithm builds its network)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from dqnlab.config import MAX_UNITS, EnvConfig, NetworkConfig, PixelConfig
from dqnlab.config.algorithms import ALGORITHMS
from dqnlab.core.errors import DqnlabError, preview
from dqnlab.core.fileio import atomic_torch_save
from dqnlab.core.version import __version__
from dqnlab.envs.pixels import PixelObservation

POLICY_FORMAT = "dqnlab.policy"  # the file format's name, not a module path: never changes
POLICY_VERSION = 1
POLICY_FILE = "policy.pt"


PolicyNetBuilder = Callable[[str, NetworkConfig, tuple[int, ...], int, dict[str, Any]], torch.nn.Module]
"""(algo, network config, observation shape, action count, extra) -> the policy's module, untrained."""


class Policy:
    """A greedy policy on raw Gymnasium observations: the action of highest score.

    ``policy(obs)`` with one observation of shape ``obs_shape`` returns an ``int`` action; with a
    batch of shape ``(N, *obs_shape)`` it returns an ``(N,)`` int64 array.

    A pixel policy (``policy.pixels`` set) takes frame stacks, not states: its frames depend on
    the episode's history, which a stateless call cannot know. ``policy.wrap_env(env)`` gives an
    environment whose observations are those frames, drawn from `env`'s states; ``dqnlab.evaluate``
    and ``dqnlab play`` do this themselves.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        env_id: str,
        obs_shape: tuple[int, ...],
        n_actions: int,
        network: NetworkConfig,
        algo: str = "dqn",
        extra: dict[str, Any] | None = None,
    ):
        self.net = net.eval()
        self.extra = dict(extra or {})
        self.env_id = env_id
        self.obs_shape = tuple(obs_shape)
        self.n_actions = int(n_actions)
        self.network = network
        self.algo = algo
        self.pixels: PixelConfig | None = (
            PixelConfig.model_validate(self.extra["pixels"]) if "pixels" in self.extra else None
        )
        self._eval_env = _checked_eval_env(self.extra.get("eval_env", {}), env_id)

    def evaluation_env(self, env_id: str | None = None) -> dict[str, Any]:
        """The settings of the environment this policy's run evaluated on that change its episodes:
        ``max_episode_steps`` (a time limit other than the registered one) and ``kwargs``, each only
        where the run set it. ``dqnlab.evaluate`` starts from these, so that evaluating a run
        again means what its own evaluations meant (a run on CartPole-v0 capped at 10,000 steps is
        not judged at v0's 200). {} for another `env_id`, and for files written before dqnlab
        recorded them."""
        return dict(self._eval_env) if env_id in (None, self.env_id) else {}

    def wrap_env(self, env):
        """`env` (a single Gymnasium env of this policy's task) as this policy observes it: itself,
        or for a pixel policy a dqnlab.envs.pixels.PixelObservation drawing frame stacks from it."""
        if self.pixels is None:
            return env
        return PixelObservation(env, self.pixels)

    def _as_input(self, obs: Any) -> np.ndarray:
        # Frames stay uint8 (the network scales them); anything else becomes float32.
        x = np.asarray(obs)
        return x if self.pixels is not None and x.dtype == np.uint8 else x.astype(np.float32, copy=False)

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Scores of a batch of raw observations: (N, *obs_shape) -> (N, n_actions): Q-values for
        DQN and tabular policies, logits for PPO, a one-hot choice for controllers."""
        x = torch.as_tensor(self._as_input(obs))
        with torch.inference_mode():
            return self.net(x).numpy()

    def __call__(self, obs: Any) -> int | np.ndarray:
        x = self._as_input(obs)
        single = x.shape == self.obs_shape
        if not single and x.shape[1:] != self.obs_shape:
            if self.pixels is not None:
                raise DqnlabError(
                    f"observation of shape {x.shape} does not fit this pixel policy, which sees frame stacks "
                    f"{self.obs_shape}; step its environment through policy.wrap_env(env) (a single env) or "
                    "use dqnlab.evaluate"
                )
            raise DqnlabError(
                f"observation of shape {x.shape} does not fit this policy, which expects {self.obs_shape} "
                f"or (N, {', '.join(map(str, self.obs_shape))}) (trained on {self.env_id})"
            )
        with torch.inference_mode():
            actions = self.net(torch.from_numpy(x.reshape(-1, *self.obs_shape))).argmax(dim=1).numpy()
        return int(actions[0]) if single else actions

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        """``policy(obs)`` for a batch (N, *obs_shape), typed as such: the (N,) int64 actions (an
        act function for dqnlab.runtime.evaluation.Evaluator)."""
        actions = self(obs)
        assert isinstance(actions, np.ndarray)  # a batch's shape is never obs_shape: one dimension more
        return actions

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": POLICY_FORMAT,
            "format_version": POLICY_VERSION,
            "dqnlab_version": __version__,
            "algo": self.algo,
            "env_id": self.env_id,
            "obs_shape": list(self.obs_shape),
            "n_actions": self.n_actions,
            "network": self.network.model_dump(mode="json"),
            "extra": self.extra,
            "state_dict": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
        }

    def save(self, path: str | Path) -> None:
        atomic_torch_save(path, self.to_dict())


def policy_from_dict(data: Any, source: str, build_net: PolicyNetBuilder) -> Policy:
    """Rebuild a Policy from a loaded policy dict, checking everything before trusting it; the
    network is made by `build_net` (dqnlab.algos.registry.build_policy_net: each algorithm
    builds its own)."""
    if not isinstance(data, dict) or data.get("format") != POLICY_FORMAT:
        raise DqnlabError(f"{source} is not a dqnlab policy file", exit_code=1)
    if data.get("format_version") != POLICY_VERSION:
        raise DqnlabError(
            f"{source} has policy format version {preview(data.get('format_version'), 40)}; this dqnlab reads "
            f"{POLICY_VERSION}",
            exit_code=1,
        )
    try:
        network = NetworkConfig.model_validate(data["network"])  # bounds hidden sizes and layers
        env_id = data["env_id"]
        algo = data.get("algo", "dqn")
        extra = data.get("extra", {})
        if not isinstance(env_id, str) or len(env_id) > 200 or algo not in ALGORITHMS:
            raise ValueError("env_id or algo is not a name dqnlab writes")
        if not isinstance(extra, dict):
            raise ValueError("extra is not a mapping")
        obs_shape, n_actions = _checked_shapes(data["obs_shape"], data["n_actions"], extra)
        state_dict = data["state_dict"]
        if not isinstance(state_dict, dict):
            raise ValueError("state_dict is not a mapping")
        # Built without memory first: sizes written in the file (a hidden layer of 65536 units,
        # a table of 1e8 cells) must match the tensors it really holds before they cost anything.
        with torch.device("meta"):
            expected = build_net(algo, network, obs_shape, n_actions, extra).state_dict()
        _check_tensors(state_dict, expected)
        net = build_net(algo, network, obs_shape, n_actions, extra)
        net.load_state_dict(state_dict)
        policy = Policy(net, env_id, obs_shape, n_actions, network, algo=algo, extra=extra)  # checks extra's eval_env
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError, ValidationError) as exc:
        if isinstance(exc, ValidationError):  # its first line only says how many errors there are
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ")[:200]
        else:
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise DqnlabError(f"{source} is a damaged dqnlab policy file ({reason})", exit_code=1) from None
    return policy


MAX_OBS_DIM = 10**6
"""Largest observation vector a policy file may declare (CartPole's has 4)."""


def _checked_shapes(obs_shape: Any, n_actions: Any, extra: dict[str, Any]) -> tuple[tuple[int, ...], int]:
    """(obs_shape, n_actions) from a policy file, or ValueError unless they are whole numbers in
    range: a flat observation of at most MAX_OBS_DIM values, or exactly the frame stack of its
    env.pixels section; at most MAX_UNITS actions."""
    if not isinstance(obs_shape, (list, tuple)) or len(obs_shape) not in (1, 3):
        raise ValueError("obs_shape is not a list of 1 or 3 sizes")
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in (*obs_shape, n_actions)):
        raise ValueError("obs_shape and n_actions must be whole numbers")
    shape = tuple(obs_shape)
    if "pixels" in extra:
        if shape != PixelConfig.model_validate(extra["pixels"]).obs_shape():
            raise ValueError(f"obs_shape {preview(shape, 60)} is not the frame stack of its env.pixels")
    elif len(shape) != 1 or not 1 <= shape[0] <= MAX_OBS_DIM:
        raise ValueError(f"obs_shape {preview(shape, 60)} is not a vector of 1 to {MAX_OBS_DIM} values")
    if not 1 <= n_actions <= MAX_UNITS:
        raise ValueError(f"n_actions {preview(n_actions, 40)} is outside [1, {MAX_UNITS}]")
    return shape, n_actions


def _checked_eval_env(record: Any, env_id: str) -> dict[str, Any]:
    """A policy's ``extra["eval_env"]`` checked as its env config would be, or ValueError."""
    if not isinstance(record, dict) or not set(record) <= {"max_episode_steps", "kwargs"}:
        raise ValueError(f"eval_env {preview(record, 60)} is not a time limit and kwargs")
    EnvConfig.model_validate({"id": env_id, **record})  # the bounds of env.max_episode_steps and env.kwargs
    return dict(record)


def _check_tensors(state_dict: dict[Any, Any], expected: dict[str, torch.Tensor]) -> None:
    """ValueError unless `state_dict` holds exactly the tensors of `expected` (names and shapes)."""
    if set(state_dict) != set(expected):
        unknown = sorted(map(str, set(state_dict) ^ set(expected)))
        raise ValueError(f"its tensors do not match its network (tensor {preview(unknown[0], 60)})")
    for name, want in expected.items():
        got = state_dict[name]
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(want.shape):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise ValueError(
                f"tensor {preview(name, 60)} has shape {preview(shape, 60)}, its network needs {tuple(want.shape)}"
            )


def resolve_policy_path(path: str | Path) -> Path:
    """A run directory means the policy.pt inside it."""
    p = Path(path)
    if p.is_dir():
        p = p / POLICY_FILE
        if not p.exists():
            raise DqnlabError(f"{path} holds no {POLICY_FILE}: not a finished dqnlab run directory")
    return p
