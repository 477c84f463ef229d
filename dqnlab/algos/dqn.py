"""Deep Q-Network (Mnih et al. 2015) with Double DQN targets, n-step returns, a hard or soft
target network and optional prioritised replay, on the same vector environments as PPO.

One environment step of training, in the order it happens:

1. Act: the online network's greedy action, replaced by a uniformly random one with probability
   epsilon (``epsilon_greedy``; epsilon from ``dqnlab.algos.schedules.epsilon_at``), or with
   `explore.hold` above 1 by a random action held for several steps (``HeldExploration``).
2. Collect: each real transition (NEXT_STEP autoreset steps are none) goes into replay
   (``dqnlab.algos.replay``), through the ``NStepCollector`` when n > 1, which turns n one-step
   transitions into one with the discounted sum of their rewards and the bootstrap discount gamma^k.
3. Learn, once every `train_freq` transitions after `learning_starts`, `gradient_steps` times
   (``DQNLearner.update``): sample a minibatch (uniform, or by priority with importance weights);
   TD targets y = r + gamma^k (1 - terminated) Q_target(s', a*) (``td_target``,
   ``next_state_value``: a* from the target network, or from the online one with Double DQN),
   with `dqn.bound_targets` clamped to the largest |return| the rewards seen so far allow;
   the Huber or squared loss of the TD errors Q(s, a) - y and its gradient (``td_loss``,
   ``td_loss_grad``); with `dqn.n_quantiles` (QR-DQN) N quantiles per action instead, their TD
   targets from the next action's N quantiles (``next_state_quantiles``) and the quantile Huber
   loss (``quantile_huber_loss``); clip, optimizer step; new priorities from the TD errors.
4. Sync the target network (``DQNLearner.sync_target``, the one place for it, called after every
   gradient step and at every episode end): soft (Polyak) after each gradient step, or a hard
   copy every K gradient steps or every K finished episodes.

Sections of this module: the math (pure functions of tensors, tested against hand computations);
n-step returns; the learner (networks, optimizer, update, target sync); acting; the training loop
(``DQNLoop``: collection, update cadence, checkpoint state, memory estimate, policy network).

The gradient step has two implementations behind one seam, chosen once when the learner is
built: the reference, autograd through the network module; and, for plain MLPs (and
``dqn.fast_path``, the default), the hand-written forward and backward of ``dqnlab.nn.fast_mlp``,
about 3x faster on a CPU. Both take the loss and its gradient from ``td_loss``/``td_loss_grad``.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from dqnlab.algos.replay import (
    Batch,
    FrameReplayBuffer,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    beta_at,
    exact_uint8,
    frame_pool_size,
)
from dqnlab.algos.schedules import epsilon_at, lr_at
from dqnlab.config import MAX_QUANTILES, DQNConfig, PixelConfig
from dqnlab.core.errors import DqnlabError
from dqnlab.nn import fast_mlp
from dqnlab.nn.networks import (
    InputScaling,
    PixelQNetwork,
    QuantileMean,
    bounds_scaling,
    build_mlp,
    has_batch_norm,
    q_network_parameters,
    quantile_mean,
    seeded_q_network,
)
from dqnlab.nn.optim import clip_grad_norm_, clip_grad_value_, make_optimizer
from dqnlab.runtime.loop import RunContext, TrainLoop, value_bound

PROBE_STATES = 256
"""States on which the divergence guard reads |Q| at each evaluation (see DQNLoop.value_range)."""

# ---------------------------------------------------------------------------------------------
# The math: TD target, next-state value, loss and its gradient
# ---------------------------------------------------------------------------------------------


def td_target(
    rewards: torch.Tensor,
    next_q: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float | torch.Tensor,
    limit: float = math.inf,
) -> torch.Tensor:
    """r + gamma * (1 - terminated) * next_q, with `gamma` the bootstrap discount (gamma^k for
    a k-step transition, so per transition), clamped to [-limit, limit].

    Only termination cuts the bootstrap: a time-limit truncation is not a terminal state, so a
    truncated transition (terminated = 0) still bootstraps from its next observation.
    """
    y = rewards + gamma * (1.0 - terminated) * next_q
    return y if limit == math.inf else y.clamp(-limit, limit)  # (no kernel call for "no bound")


def next_state_value(
    online: Callable[[torch.Tensor], torch.Tensor],
    target: Callable[[torch.Tensor], torch.Tensor],
    next_obs: torch.Tensor,
    double: bool,
) -> torch.Tensor:
    """max_a Q_target(s', a), or with Double DQN Q_target(s', argmax_a Q_online(s', a)). (B,)"""
    next_q_target = target(next_obs)  # (B, A)
    if not double:
        return next_q_target.max(dim=1).values
    best = online(next_obs).argmax(dim=1, keepdim=True)  # (B, 1)
    return next_q_target.gather(1, best).squeeze(1)


def next_state_quantiles(
    online: Callable[[torch.Tensor], torch.Tensor],
    target: Callable[[torch.Tensor], torch.Tensor],
    next_obs: torch.Tensor,
    double: bool,
    n_quantiles: int,
) -> torch.Tensor:
    """QR-DQN's next_state_value: the target network's N quantiles of the action a* whose mean is
    largest by the target network, or with Double DQN by the online one. (B, N)"""
    z_target = target(next_obs)  # (B, A * N)
    picker = online(next_obs) if double else z_target
    best = quantile_mean(picker, n_quantiles).argmax(dim=1)  # (B,)
    index = best.view(-1, 1, 1).expand(-1, 1, n_quantiles)
    return z_target.view(z_target.shape[0], -1, n_quantiles).gather(1, index).squeeze(1)


def td_loss(td_error: torch.Tensor, kind: str, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The TD loss of a batch: mean_i w_i * l(delta_i) over the TD errors delta = Q(s, a) - y, (B,),
    with l the Huber loss (delta 1: 0.5 d^2 inside [-1, 1], |d| - 0.5 outside) or the squared
    error, and w the importance weights of prioritised replay (all 1 when None).

    The one definition of the loss: the autograd reference differentiates it, the fast path
    takes its gradient from ``td_loss_grad`` below. A scalar, with a graph when `td_error` has one.
    """
    if kind == "huber":
        abs_td = td_error.abs()
        per_sample = torch.where(abs_td < 1.0, 0.5 * td_error * td_error, abs_td - 0.5)
    elif kind == "mse":
        per_sample = td_error * td_error
    else:
        raise ValueError(f"unknown TD loss {kind!r}")
    if weights is not None:
        per_sample = per_sample * weights
    return per_sample.mean()


def td_loss_grad(td_error: torch.Tensor, kind: str, weights: torch.Tensor | None = None) -> torch.Tensor:
    """d td_loss / d td_error, by hand (no graph): clamp(delta, -1, 1) / B for Huber, 2 delta / B
    for the squared error, times the weights. (B,)"""
    n = td_error.shape[0]
    if kind == "huber":
        grad = td_error.clamp(-1.0, 1.0) / n
    elif kind == "mse":
        grad = td_error * (2.0 / n)
    else:
        raise ValueError(f"unknown TD loss {kind!r}")
    if weights is not None:  # multiplied last, as autograd does through td_loss's product
        grad = grad * weights
    return grad


def quantile_midpoints(n: int, like: torch.Tensor | None = None) -> torch.Tensor:
    """The quantile levels a QR-DQN network's N outputs per action estimate: tau_i = (2i + 1) / 2N,
    i = 0..N-1, the midpoints of N equal slices of [0, 1] (Dabney et al. 2018); in `like`'s dtype
    and device (float32 on the CPU without it). (N,)"""
    tau = (2.0 * torch.arange(n, dtype=torch.float64) + 1.0) / (2.0 * n)
    return tau.to(torch.float32) if like is None else tau.to(like)


def quantile_huber_loss(
    quantiles: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """QR-DQN's loss: for each sample, sum_i mean_j rho_i(u_ij) over the pairwise errors
    u_ij = target_j - quantiles_i, with rho_i(u) = |tau_i - 1{u < 0}| * Huber(u) (delta 1), the
    quantile Huber loss of level tau_i; then the (importance-weighted) mean over the batch.
    quantiles (B, N) are the taken action's estimates, target (B, N') the target distribution's
    samples. A scalar, with a graph when `quantiles` has one.

    Each quantile is pulled up by the targets above it with weight tau_i and down by those below
    with weight 1 - tau_i: its minimum is the tau_i-quantile of the targets (smoothed by the Huber
    part near zero error)."""
    u = target.unsqueeze(1) - quantiles.unsqueeze(2)  # (B, N, N')
    abs_u = u.abs()
    huber = torch.where(abs_u < 1.0, 0.5 * u * u, abs_u - 0.5)
    tau = quantile_midpoints(quantiles.shape[1], quantiles).view(1, -1, 1)
    per_sample = ((tau - (u.detach() < 0).float()).abs() * huber).sum(dim=1).mean(dim=1)  # (B,)
    if weights is not None:
        per_sample = per_sample * weights
    return per_sample.mean()


def quantile_huber_loss_and_grad(
    quantiles: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """quantile_huber_loss and its gradient d loss / d quantiles by hand, from one set of pairwise
    terms (no graph; the fast path's): the gradient is
    -(1 / (B N')) sum_j |tau_i - 1{u_ij < 0}| clamp(u_ij, -1, 1), times the weights, and the
    Huber term is c (u - c / 2) with c = clamp(u, -1, 1). (scalar, (B, N))"""
    u = target.unsqueeze(1) - quantiles.unsqueeze(2)  # (B, N, N')
    tau = quantile_midpoints(quantiles.shape[1], quantiles).view(1, -1, 1)
    c = u.clamp(-1.0, 1.0)
    wc = torch.where(u < 0, 1.0 - tau, tau).mul_(c)  # |tau_i - 1{u < 0}| * clamp(u), (B, N, N')
    grad = wc.sum(dim=2).mul_(-1.0 / (quantiles.shape[0] * target.shape[1]))  # (B, N)
    per_sample = torch.einsum("bij,bij->b", wc, u.sub_(c, alpha=0.5)) / target.shape[1]  # (B,); u is spent
    if weights is not None:
        per_sample = per_sample * weights
        grad = grad * weights.unsqueeze(1)
    return per_sample.mean(), grad


# ---------------------------------------------------------------------------------------------
# n-step returns
# ---------------------------------------------------------------------------------------------


def n_step_return(rewards: np.ndarray, gamma: float) -> float:
    """sum_i gamma^i * rewards[i]."""
    return float(np.sum(rewards * gamma ** np.arange(len(rewards))))


class NStepCollector:
    """Turns the 1-step transitions of N parallel environments into n-step ones.

    Each environment keeps a ring of its last n (obs, action, reward). A full window emits its
    oldest entry as (s_t, a_t, R = sum_{i<n} gamma^i r_{t+i}, s_{t+n}, terminated=0, gamma^n).
    When an episode ends, every pending entry is emitted with its shorter horizon k, bootstrap
    discount gamma^k and the episode's terminated flag: a time-limit truncation still bootstraps.
    The common case (full windows, no episode end) is computed for all environments at once.

    Observations are held in `obs_dtype`, the replay buffer's: pixel frames stay uint8.
    """

    def __init__(
        self,
        n: int,
        gamma: float,
        num_envs: int,
        obs_shape: tuple[int, ...] | None = None,
        obs_dtype: np.dtype | type = np.float32,
    ):
        self.n, self.gamma, self.num_envs = n, gamma, num_envs
        self.obs_dtype = np.dtype(obs_dtype)
        self.powers = gamma ** np.arange(n, dtype=np.float64)  # (n,)
        self.obs: np.ndarray | None = (
            None if obs_shape is None else np.zeros((n, num_envs, *obs_shape), self.obs_dtype)
        )  # (n, N, *obs_shape)
        self.actions = np.zeros((n, num_envs), dtype=np.int64)
        self.rewards = np.zeros((n, num_envs), dtype=np.float64)
        self.pos = np.zeros(num_envs, dtype=np.int64)  # pushes so far, per env (ring slot = pos % n)
        self.count = np.zeros(num_envs, dtype=np.int64)  # entries pending in each window

    def push(
        self,
        env_ids: np.ndarray,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ):
        """Add one transition for each env in `env_ids` (row k of each array belongs to env_ids[k]);
        return the n-step transitions now complete as arrays (obs, actions, returns, next_obs,
        terminated, discounts), or None."""
        env_ids = np.asarray(env_ids, dtype=np.int64)
        if self.obs is None:
            self.obs = np.zeros((self.n, self.num_envs, *obs.shape[1:]), self.obs_dtype)
        slots = self.pos[env_ids] % self.n
        self.obs[slots, env_ids] = obs
        self.actions[slots, env_ids] = actions
        self.rewards[slots, env_ids] = rewards
        self.pos[env_ids] += 1
        self.count[env_ids] += 1
        done = np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool)

        parts = []
        full = ~done & (self.count[env_ids] == self.n)
        if full.any():  # every window of length n: one matrix expression for all of them
            envs = env_ids[full]
            window = (self.pos[envs][None, :] - self.n + np.arange(self.n)[:, None]) % self.n  # (n, k)
            returns = (self.powers[:, None] * self.rewards[window, envs[None, :]]).sum(axis=0)
            first = window[0]
            parts.append(
                (
                    self.obs[first, envs],
                    self.actions[first, envs],
                    returns,
                    next_obs[full],
                    np.zeros(len(envs), dtype=bool),
                    np.full(len(envs), self.gamma**self.n),
                )
            )
            self.count[envs] -= 1
        for k in np.flatnonzero(done):  # episode ends: flush the whole window, shorter horizons
            e = env_ids[k]
            c = int(self.count[e])
            slots_e = (self.pos[e] - c + np.arange(c)) % self.n  # oldest first
            rews = self.rewards[slots_e, e]
            for j in range(c):
                horizon = c - j  # entry j bootstraps after the episode's last step
                parts.append(
                    (
                        self.obs[slots_e[j], e][None],
                        self.actions[slots_e[j], e][None],
                        np.array([n_step_return(rews[j:], self.gamma)]),
                        next_obs[k][None],
                        np.array([bool(terminated[k])]),
                        np.array([self.gamma**horizon]),
                    )
                )
            self.count[e] = 0
        if not parts:
            return None
        cols = list(zip(*parts, strict=True))
        return (
            np.concatenate(cols[0]),
            np.concatenate(cols[1]),
            np.concatenate(cols[2]).astype(np.float32),
            np.concatenate(cols[3]),
            np.concatenate(cols[4]),
            np.concatenate(cols[5]).astype(np.float32),
        )

    def state_dict(self) -> dict:
        return {
            "obs": None if self.obs is None else torch.from_numpy(self.obs.copy()),
            "actions": torch.from_numpy(self.actions.copy()),
            "rewards": torch.from_numpy(self.rewards.copy()),
            "pos": torch.from_numpy(self.pos.copy()),
            "count": torch.from_numpy(self.count.copy()),
        }

    def load_state_dict(self, state: dict) -> None:
        # Shapes are fixed by (n, num_envs); counts index the rings, so damaged ones are refused.
        ring = (self.n, self.num_envs)
        for name, shape in (("actions", ring), ("rewards", ring), ("pos", ring[1:]), ("count", ring[1:])):
            if tuple(state[name].shape) != shape:
                raise ValueError(f"n-step {name} of shape {tuple(state[name].shape)}, expected {shape}")
        if state["obs"] is not None and tuple(state["obs"].shape[:2]) != ring:
            raise ValueError(f"n-step observations of shape {tuple(state['obs'].shape)} do not fit {ring}")
        if (state["pos"] < 0).any() or (state["count"] < 0).any() or (state["count"] > self.n).any():
            raise ValueError("n-step counters out of range")
        self.obs = None if state["obs"] is None else self._in_obs_dtype(state["obs"].numpy())
        self.actions = state["actions"].numpy().copy()
        self.rewards = state["rewards"].numpy().copy()
        self.pos = state["pos"].numpy().copy()
        self.count = state["count"].numpy().copy()

    def _in_obs_dtype(self, obs: np.ndarray) -> np.ndarray:
        """A copy of checkpointed observations in `obs_dtype`. Release 0.1.0 held pixel frames here
        as float32: their values (whole numbers 0..255) convert exactly; any others are refused."""
        if obs.dtype == self.obs_dtype:
            return obs.copy()
        if np.issubdtype(self.obs_dtype, np.integer):
            info = np.iinfo(self.obs_dtype)
            with np.errstate(invalid="ignore"):
                exact = (obs >= info.min) & (obs <= info.max) & (np.floor(obs) == obs)  # NaN: False
            if not exact.all():
                raise ValueError(f"n-step observations do not fit {self.obs_dtype}")
        return obs.astype(self.obs_dtype)


# ---------------------------------------------------------------------------------------------
# The learner: online and target networks, optimizer, update, target sync
# ---------------------------------------------------------------------------------------------


def tensor_pairs(dst: nn.Module, src: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(dst's tensor, src's tensor) for every parameter and buffer of two networks of one
    architecture, in the same order: the in-place copies and averages pair them so."""
    return list(
        zip(list(dst.parameters()) + list(dst.buffers()), list(src.parameters()) + list(src.buffers()), strict=True)
    )


class DQNLearner:
    """Online and target Q-networks with their optimizer, the gradient step and the target sync.

    In-place invariant (what the fast path and the target sync rely on): the learner keeps
    references to the networks' parts, taken once here: the online parameters (``_params``, for
    clipping; the optimizer's own list), the tensors of both networks (``_lerp_pairs`` and
    ``_copy_pairs``, for the soft sync; ``_average_pairs``, for the policy average), and, on
    the fast path, the ``nn.Linear`` modules of both
    networks (``_online_fn``, ``_target_fn``, ``_mlp``; these read ``.weight``/``.bias`` at each
    call), and for pixel networks the methods that build the TD targets (``_next_input``,
    ``_online_next``, ``_target_next``). They stay valid because nothing replaces a module or a
    Parameter afterwards: the hard
    sync is ``target.load_state_dict(online.state_dict())``, and ``load_state_dict`` (also used on
    resume) ``copy_``s into the existing tensors; the optimizers step the parameters in place
    (``_foreach_*_`` or the fused Adam kernel), clipping scales ``.grad`` in place, and BatchNorm
    updates its running statistics in place. The fast backward assigns new ``.grad`` tensors, but
    on the same Parameter objects the optimizer holds. A target rebuilt by ``copy.deepcopy`` (or
    ``load_state_dict(assign=True)``) would break this: the fast path would keep acting on the
    old modules.
    """

    def __init__(self, online: nn.Module, cfg: DQNConfig):
        self.cfg = cfg
        self.online = online
        self.target = copy.deepcopy(online)
        self.target.requires_grad_(False)
        self.optimizer = make_optimizer(cfg.optimizer, online.parameters(), cfg.lr)
        self.batch_norm = has_batch_norm(online)
        # Acting and targets use running statistics; only the gradient step uses batch statistics.
        self.online.eval()
        self.target.eval()
        self.grad_steps = 0
        # dqn.n_quantiles: the networks give N quantiles of the return per action (QR-DQN), and
        # Q(s, a) is their mean; None: one expected value per action.
        self.n_quantiles = cfg.n_quantiles
        # dqn.bound_targets: |y| <= target_limit, the largest |return| of the rewards seen so far;
        # the training loop sets it as rewards come in (inf: unbounded).
        self.target_limit = math.inf
        self._last_td: torch.Tensor | None = None  # signed TD errors of the last update, (B,)
        self._params: list[torch.Tensor] = list(self.online.parameters())
        pairs = tensor_pairs(self.target, self.online)
        self._lerp_pairs = (
            [t for t, o in pairs if t.is_floating_point()],
            [o for t, o in pairs if t.is_floating_point()],
        )
        self._copy_pairs = [(t, o) for t, o in pairs if not t.is_floating_point()]
        # The seam, chosen once: plain MLPs take the hand-written forward/backward unless
        # dqn.fast_path is off; everything else (BatchNorm, dueling, pixels) autograd.
        online_mlp = fast_mlp.mlp_layers(online) if cfg.fast_path and not self.batch_norm else None
        self.fast_path = online_mlp is not None  # the gradient step runs on fast_mlp (else autograd)
        self._online_fn: Callable[[torch.Tensor], torch.Tensor]
        self._target_fn: Callable[[torch.Tensor], torch.Tensor]
        self._mlp = online_mlp
        if online_mlp is not None:
            layers, kind = online_mlp
            target_mlp = fast_mlp.mlp_layers(self.target)  # the same architecture: a plain MLP too
            assert target_mlp is not None
            target_layers = target_mlp[0]
            self._online_fn = functools.partial(fast_mlp.forward, layers, kind)
            self._target_fn = functools.partial(fast_mlp.forward, target_layers, kind)
            self._backward = self._fast_backward
        else:
            self._online_fn, self._target_fn = self.online, self.target
            self._backward = self._autograd_backward
        # What the networks read of next_obs for the TD targets: a pixel network's input, built
        # by its parameter-free ``features``, is the same for the online and target networks, so
        # it is built once per batch for both (about a twentieth of a pixel gradient step). None:
        # the networks read next_obs as it is (no call on the MLP's hot path).
        self._next_input: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._online_next: Callable[[torch.Tensor], torch.Tensor] = self._online_fn
        self._target_next: Callable[[torch.Tensor], torch.Tensor] = self._target_fn
        if isinstance(online, PixelQNetwork) and isinstance(self.target, PixelQNetwork):
            self._next_input = online.features
            self._online_next, self._target_next = online.from_features, self.target.from_features
        # dqn.policy_average_tau: the network evaluated and delivered is a Polyak average of the
        # online one (a third copy, updated in place like the soft target sync); else the online.
        self.average: nn.Module = self.online
        self._average_fn = self._online_fn
        self._average_pairs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
        if cfg.policy_average_tau is not None:
            self.average = copy.deepcopy(online).requires_grad_(False)
            self.average.eval()
            # Parameters and BatchNorm's running statistics, not its integer batch counter.
            floats = [(a, o) for a, o in tensor_pairs(self.average, online) if a.is_floating_point()]
            self._average_pairs = ([a for a, _ in floats], [o for _, o in floats])
            average_mlp = fast_mlp.mlp_layers(self.average) if self.fast_path else None
            if average_mlp is not None:
                self._average_fn = functools.partial(fast_mlp.forward, average_mlp[0], average_mlp[1])
            else:
                self._average_fn = self.average

    @torch.no_grad()
    def targets(self, batch: Batch) -> torch.Tensor:
        """TD targets of `batch`, (B,); with dqn.n_quantiles the target distribution's N samples,
        each a TD target of one quantile of the next action. (B, N)"""
        next_in = batch.next_obs if self._next_input is None else self._next_input(batch.next_obs)
        n = self.n_quantiles
        if n is None:
            next_q = next_state_value(self._online_next, self._target_next, next_in, self.cfg.double)
            return td_target(batch.rewards, next_q, batch.terminated, batch.discounts, self.target_limit)
        next_z = next_state_quantiles(self._online_next, self._target_next, next_in, self.cfg.double, n)
        return td_target(
            batch.rewards.unsqueeze(1),
            next_z,
            batch.terminated.unsqueeze(1),
            batch.discounts.unsqueeze(1),
            self.target_limit,
        )

    def update(self, batch: Batch) -> torch.Tensor:
        """One gradient step on `batch`, then the target sync it calls for; returns the (detached) loss.

        With ``batch.weights`` (prioritised replay) the loss is the importance-weighted mean of
        the per-sample losses; ``last_td_abs`` then holds the batch's new priorities."""
        loss, self._last_td = self.gradients(batch)
        if self.cfg.clip_grad_value is not None:
            clip_grad_value_(self._params, self.cfg.clip_grad_value)
        if self.cfg.max_grad_norm is not None:
            clip_grad_norm_(self._params, self.cfg.max_grad_norm)
        self.optimizer.step()
        self.grad_steps += 1
        self.sync_target("steps", self.grad_steps)
        if self._average_pairs is not None:
            assert self.cfg.policy_average_tau is not None
            with torch.no_grad():
                torch._foreach_lerp_(self._average_pairs[0], self._average_pairs[1], self.cfg.policy_average_tau)
        return loss.detach()

    def gradients(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The TD loss of `batch` and its gradients, written into the online parameters' ``.grad``,
        by the path chosen in ``__init__``. Returns (loss, detached TD errors Q(s, a) - y, (B,));
        with dqn.n_quantiles the TD error is the quantiles' mean less their targets' mean."""
        return self._backward(batch, self.targets(batch))

    def _autograd_backward(self, batch: Batch, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference: the loss through the network module, gradients by autograd."""
        loss, td = self._reference_loss(batch, y)
        self.optimizer.zero_grad()
        loss.backward()
        return loss, td

    def _fast_backward(self, batch: Batch, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same step on dqnlab.nn.fast_mlp: the loss's gradient by hand (``td_loss_grad``, or
        with dqn.n_quantiles ``quantile_huber_loss_and_grad``), backpropagated through the MLP by hand."""
        assert self._mlp is not None
        layers, kind = self._mlp
        q_all, acts = fast_mlp.forward_keeping_activations(layers, kind, batch.obs)  # (B, A), or (B, A * N)
        if self.n_quantiles is not None:
            index = self._quantile_index(batch.actions)
            z = q_all.view(q_all.shape[0], -1, self.n_quantiles)  # (B, A, N)
            z_a = z.gather(1, index).squeeze(1)  # (B, N)
            loss, grad_z = quantile_huber_loss_and_grad(z_a, y, batch.weights)  # grad: dLoss/dz(s, a), (B, N)
            grad_out = torch.zeros_like(z).scatter_(1, index, grad_z.unsqueeze(1)).view_as(q_all)
            fast_mlp.backward(layers, kind, acts, grad_out)
            return loss, z_a.mean(dim=1) - y.mean(dim=1)
        actions = batch.actions.unsqueeze(1)  # (B, 1)
        td = q_all.gather(1, actions).squeeze(1) - y  # (B,)
        loss = td_loss(td, self.cfg.loss, batch.weights)
        grad_q = td_loss_grad(td, self.cfg.loss, batch.weights)  # dLoss/dQ(s, a), (B,)
        grad_out = torch.zeros_like(q_all).scatter_(1, actions, grad_q.unsqueeze(1))  # dLoss/dQ(s, .), (B, A)
        fast_mlp.backward(layers, kind, acts, grad_out)
        return loss, td

    def _reference_loss(self, batch: Batch, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss with its autograd graph, detached TD errors Q(s, a) - y, (B,))."""
        if self.batch_norm:
            self.online.train()
        out = self.online(batch.obs)  # (B, A), or (B, A * N)
        if self.batch_norm:
            self.online.eval()
        if self.n_quantiles is not None:
            z = out.view(out.shape[0], -1, self.n_quantiles)
            z_a = z.gather(1, self._quantile_index(batch.actions)).squeeze(1)  # (B, N)
            td = z_a.detach().mean(dim=1) - y.mean(dim=1)
            return quantile_huber_loss(z_a, y, batch.weights), td
        q = out.gather(1, batch.actions.unsqueeze(1)).squeeze(1)  # (B,)
        td = q - y
        return td_loss(td, self.cfg.loss, batch.weights), td.detach()

    def _quantile_index(self, actions: torch.Tensor) -> torch.Tensor:
        """Gather index of the taken actions' N quantiles in a (B, A, N) view. (B, 1, N)"""
        assert self.n_quantiles is not None
        return actions.view(-1, 1, 1).expand(-1, 1, self.n_quantiles)

    def values(self, out: torch.Tensor) -> torch.Tensor:
        """Q(s, .) from the networks' output: itself, or with dqn.n_quantiles the quantiles' mean. (B, A)"""
        return out if self.n_quantiles is None else quantile_mean(out, self.n_quantiles)

    def loss(self, batch: Batch) -> torch.Tensor:
        """The TD loss of `batch` with its autograd graph, through the network module (the reference)."""
        return self._reference_loss(batch, self.targets(batch))[0]

    @property
    def last_td_abs(self) -> torch.Tensor | None:
        """|Q(s, a) - y| of each sample of the last update's batch, (B,), detached: the new
        priorities for prioritised replay. None before the first update."""
        return None if self._last_td is None else self._last_td.abs()

    # -- target sync ---------------------------------------------------------------------------
    def sync_target(self, unit: str, count: int) -> None:
        """Bring the target network up to date as `target_update` says; the one place that does.

        Called with ("steps", gradient steps so far) after every gradient step (by ``update``) and
        with ("episodes", finished training episodes so far) after every episode end (by the loop):
        soft: target <- target + tau * (online - target) after every gradient step;
        hard: a copy of the online network when `count` of `target_update_unit` reaches a multiple
        of `target_update_every`.
        """
        cfg = self.cfg
        if cfg.target_update == "soft":
            if unit == "steps":
                self.soft_update(cfg.tau)
        elif unit == cfg.target_update_unit and count % cfg.target_update_every == 0:
            self.hard_update()

    def hard_update(self) -> None:
        """target <- online, parameters and BatchNorm statistics, copied in place (see the class)."""
        self.target.load_state_dict(self.online.state_dict())

    @torch.no_grad()
    def soft_update(self, tau: float) -> None:
        """target <- target + tau * (online - target), parameters and BatchNorm statistics alike."""
        torch._foreach_lerp_(self._lerp_pairs[0], self._lerp_pairs[1], tau)
        for t, o in self._copy_pairs:  # BatchNorm's integer num_batches_tracked counter
            t.copy_(o)

    # -- acting and checkpoints ----------------------------------------------------------------
    @torch.no_grad()
    def greedy_actions(self, obs: torch.Tensor) -> torch.Tensor:
        return self.values(self._online_fn(obs)).argmax(dim=1)

    @torch.no_grad()
    def policy_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """Greedy actions of the network evaluated and delivered (the average, or the online)."""
        return self.values(self._average_fn(obs)).argmax(dim=1)

    @torch.no_grad()
    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """The online network's Q(s, .) of a batch of observations. (B, A)"""
        return self.values(self._online_fn(obs))

    def state_dict(self) -> dict:
        return {
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "grad_steps": self.grad_steps,
            **({} if self._average_pairs is None else {"average": self.average.state_dict()}),
        }

    def load_state_dict(self, state: dict) -> None:
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.grad_steps = int(state["grad_steps"])
        if self._average_pairs is not None:
            if "average" not in state:
                raise ValueError("the checkpoint has no averaged network (dqn.policy_average_tau)")
            self.average.load_state_dict(state["average"])


# ---------------------------------------------------------------------------------------------
# Acting
# ---------------------------------------------------------------------------------------------


def epsilon_greedy(greedy: np.ndarray, epsilon: float, rng: np.random.Generator, n_actions: int) -> np.ndarray:
    """Each greedy action replaced, with probability `epsilon`, by a uniformly random one. (N,)

    Draws N uniforms, then N random actions, from `rng` whatever epsilon is, so that the stream
    (and a resumed run) does not depend on how many envs explored."""
    n = len(greedy)
    explore = rng.random(n) < epsilon
    random_actions = rng.integers(0, n_actions, size=n)
    return np.where(explore, random_actions, greedy)


class HeldExploration:
    """Temporally extended epsilon-greedy (Dabney et al. 2021, "ez-greedy") over N environments:
    an exploratory random action is held for several steps instead of one.

    Each step, an environment that is not holding an action starts one with probability epsilon:
    a uniformly random action and a duration, `max_hold` steps (``duration`` "fixed") or n ~ zeta(mu)
    capped at `max_hold` ("zeta"). While a hold lasts, its action replaces the greedy one. The
    state (the action held and the steps left, per environment) is checkpointed with the run.

    Every call draws N uniforms, N actions and (zeta) N durations from `rng` whatever happens, so
    that the stream does not depend on how many environments explored."""

    def __init__(self, num_envs: int, max_hold: int, duration: str, mu: float):
        self.max_hold, self.duration, self.mu = max_hold, duration, mu
        self.action = np.zeros(num_envs, dtype=np.int64)  # the action held, per env
        self.left = np.zeros(num_envs, dtype=np.int64)  # steps the hold still lasts, this one included

    def act(self, greedy: np.ndarray, epsilon: float, rng: np.random.Generator, n_actions: int) -> np.ndarray:
        """The actions of one step: held ones where a hold lasts, greedy ones elsewhere. (N,)"""
        n = len(greedy)
        start = (rng.random(n) < epsilon) & (self.left == 0)
        random_actions = rng.integers(0, n_actions, size=n)
        if self.duration == "zeta":
            durations = np.minimum(rng.zipf(self.mu, size=n), self.max_hold)
        else:
            durations = np.full(n, self.max_hold, dtype=np.int64)
        self.action = np.where(start, random_actions, self.action)
        self.left = np.where(start, durations, self.left)
        actions = np.where(self.left > 0, self.action, greedy)
        self.left = np.maximum(self.left - 1, 0)
        return actions

    def cut(self, which: np.ndarray) -> None:
        """End the holds of the environments where `which` is True (their episode ended). (N,) bool"""
        self.left[which] = 0

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"action": torch.from_numpy(self.action.copy()), "left": torch.from_numpy(self.left.copy())}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        action, left = state["action"].numpy(), state["left"].numpy()
        if action.shape != self.action.shape or left.shape != self.left.shape:
            raise ValueError("the held-exploration state has another number of environments")
        self.action, self.left = action.astype(np.int64), left.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------------------------


class DQNLoop(TrainLoop):
    algo = "dqn"

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        cfg, obs_shape, n_actions = ctx.cfg, ctx.obs_shape, ctx.n_actions
        self.explore_rng = np.random.default_rng(self.streams.explore)
        self.replay_gen = torch.Generator().manual_seed(self.streams.replay)
        pixels = cfg.env.pixels
        # dqn.n_quantiles: N outputs per action (the quantiles of its return), else one.
        outputs = n_actions * (cfg.dqn.n_quantiles or 1)
        online = seeded_q_network(cfg.network, obs_shape[0], outputs, self.streams.network, pixels)
        self.learner = DQNLearner(online, cfg.dqn)
        # Frames are uint8 in 0..255 and stay so in replay (the network scales them): 4x less
        # memory. Uniform replay of pixels stores each frame once (FrameReplayBuffer): the n-step
        # windows and transitions then carry the pool slots of their frames, (K,) int32 each.
        obs_dtype = torch.uint8 if pixels.enabled else torch.float32
        self.buffer: ReplayBuffer | FrameReplayBuffer
        if cfg.dqn.prioritized:
            self.buffer = PrioritizedReplayBuffer(
                cfg.dqn.buffer_size, obs_shape, cfg.dqn.per_alpha, cfg.dqn.per_eps, obs_dtype
            )
        elif pixels.enabled:
            frame_shape = (pixels.channels, pixels.height, pixels.width)
            assert obs_shape == (pixels.frames * pixels.channels, pixels.height, pixels.width)
            self.buffer = FrameReplayBuffer(
                cfg.dqn.buffer_size, pixels.frames, frame_shape, cfg.env.num_envs, cfg.dqn.n_step
            )
        else:
            self.buffer = ReplayBuffer(cfg.dqn.buffer_size, obs_shape, obs_dtype)
        # The pool slots of each environment's current observation (frame replay only). (N, K) int32
        self.frame_ids = self._observe_first(self.obs)
        self.gammas = np.full(cfg.env.num_envs, cfg.dqn.gamma, dtype=np.float32)
        self.nstep = self._new_nstep()
        self.since_update = 0  # transitions collected since the last round of gradient steps
        self.reward_abs_max = 0.0  # the largest |reward| of a step collected so far (the guard's bound)
        self.hold = self._new_hold()
        # network.input_scaling: observations are scaled once, on the way in (acting, replay), so
        # that the learner (and its fast path) sees a plain MLP; the delivered network includes the map.
        self.scaling: InputScaling | None = None
        # The online network unless dqn.policy_average_tau; with dqn.n_quantiles, behind it the
        # mean of the quantiles (the delivered policy reads Q-values, as build_policy_net's does).
        self.delivered: nn.Module = self.learner.average
        if cfg.dqn.n_quantiles is not None:
            self.delivered = nn.Sequential(self.learner.average, QuantileMean(cfg.dqn.n_quantiles))
        if cfg.network.input_scaling == "bounds":
            space = ctx.envs.single_observation_space
            assert isinstance(space, gym.spaces.Box)  # check_spaces: a flat Box
            offset, scale = bounds_scaling(space.low.tolist(), space.high.tolist())
            self.scaling = InputScaling(offset, scale)
            self.scale_offset, self.scale_factor = self.scaling.offset.numpy(), self.scaling.scale.numpy()
            self.delivered = nn.Sequential(self.scaling, self.delivered)

    @classmethod
    def build_policy_net(cls, network, obs_shape, n_actions, extra) -> nn.Module:
        # A pixel policy keeps its env.pixels section in extra["pixels"]: its frames' shape comes from there.
        if "pixels" in extra:
            return PixelQNetwork(network, PixelConfig.model_validate(extra["pixels"]), n_actions)
        mlp: nn.Module = build_mlp(network, obs_shape[0], n_actions)
        if "n_quantiles" in extra:  # dqn.n_quantiles: N outputs per action, and their mean behind them
            n = extra["n_quantiles"]
            if not isinstance(n, int) or isinstance(n, bool) or not 2 <= n <= MAX_QUANTILES:
                raise ValueError(f"n_quantiles must be an integer from 2 to {MAX_QUANTILES}")
            mlp = nn.Sequential(build_mlp(network, obs_shape[0], n_actions * n), QuantileMean(n))
        if "input_scaling" in extra:  # network.input_scaling: the map in front of the Q-network
            scaling = extra["input_scaling"]
            return nn.Sequential(InputScaling(scaling["offset"], scaling["scale"]), mlp)
        return mlp

    @classmethod
    def memory_estimate(cls, cfg, obs_shape, n_actions) -> dict[str, float]:
        pixels, d = cfg.env.pixels, cfg.dqn
        if pixels.enabled and not d.prioritized:  # FrameReplayBuffer: a pool of single frames
            pool = frame_pool_size(d.buffer_size, cfg.env.num_envs, pixels.frames, d.n_step)
            frame_bytes = float(np.prod(obs_shape)) / pixels.frames
            slot = 2 * pixels.frames * 4 + 8 + 4 + 4 + 4  # frame slots of obs and next_obs, action, reward, ...
            replay = pool * (frame_bytes + 8) + d.buffer_size * slot  # each pool slot: a frame, its last use
        else:
            obs_bytes = float(np.prod(obs_shape)) * (1 if pixels.enabled else 4)
            slot = 2 * obs_bytes + 8 + 4 + 4 + 4  # obs, next_obs, action, reward, terminated, discount
            replay = d.buffer_size * slot
        if cfg.dqn.prioritized:
            replay += 2 * 2 * cfg.dqn.buffer_size * 8  # the sum tree: about 2 leaves' worth of float64 nodes
        params = q_network_parameters(cfg.network, obs_shape, n_actions * (d.n_quantiles or 1))
        return {
            "replay buffer": replay,
            # torch.save serialises the whole buffer in memory before the atomic write
            "replay buffer copy while checkpointing": replay,
            # online, target, gradients, two Adam moments, the best network kept (and the average)
            "Q-networks and optimizer": (6.0 + (d.policy_average_tau is not None)) * 4 * params,
            # eval.shortlist's networks, in memory and in the checkpoint
            **({"shortlisted networks": cfg.eval.shortlist * 4 * params} if cfg.eval.shortlist > 1 else {}),
            # dqn.n_quantiles: the loss's (batch, N, N) pairwise terms, about 8 float32 tensors at once
            **({"quantile loss terms": 8 * 4 * d.batch_size * d.n_quantiles**2} if d.n_quantiles else {}),
        }

    def _new_nstep(self) -> NStepCollector | None:
        d = self.cfg.dqn
        if d.n_step <= 1:
            return None
        if isinstance(self.buffer, FrameReplayBuffer):  # the windows hold pool slots
            return NStepCollector(d.n_step, d.gamma, self.cfg.env.num_envs, (self.buffer.frames,), np.int32)
        # The replay buffer's observation dtype (a zero-copy view gives its NumPy name).
        return NStepCollector(d.n_step, d.gamma, self.cfg.env.num_envs, self.obs_shape, self.buffer.obs.numpy().dtype)

    def _observe_first(self, obs: np.ndarray) -> np.ndarray | None:
        """Frame replay: store the frames of observations that follow no stored one (a reset, a
        converted checkpoint); their pool slots. (N, K) int32, or None without frame replay."""
        if not isinstance(self.buffer, FrameReplayBuffer):
            return None
        return self.buffer.observe(exact_uint8(obs, "observations"), None, None)

    def _new_hold(self) -> HeldExploration | None:
        ex = self.cfg.explore
        if ex.hold <= 1:
            return None
        return HeldExploration(self.cfg.env.num_envs, ex.hold, ex.hold_duration, ex.hold_zeta)

    def exploration(self) -> float:
        return epsilon_at(self.cfg.explore, self.env_steps, self.episodes)

    def inputs(self, obs: np.ndarray) -> np.ndarray:
        """What the Q-network reads: `obs`, scaled with network.input_scaling (in float32, as
        the delivered network's InputScaling computes it). (N, *obs_shape)"""
        if self.scaling is None:
            return obs
        return (obs.astype(np.float32, copy=False) - self.scale_offset) * self.scale_factor

    def greedy_act(self, obs: np.ndarray) -> np.ndarray:
        return self.learner.policy_actions(torch.from_numpy(self.inputs(obs))).numpy()

    def policy_net(self) -> nn.Module:
        return self.delivered

    def advance(self) -> None:
        obs = self.inputs(self.obs)
        greedy = self.learner.greedy_actions(torch.from_numpy(obs)).numpy()
        if self.hold is None:
            actions = epsilon_greedy(greedy, self.exploration(), self.explore_rng, self.n_actions)
        else:
            actions = self.hold.act(greedy, self.exploration(), self.explore_rng, self.n_actions)
        valid, next_obs, reward, terminated, truncated = self.env_step(actions)
        if self.hold is not None:  # an episode's end, or the ignored action of an autoreset step, ends a hold
            self.hold.cut(~valid | terminated | truncated)
        n_valid = int(valid.sum())
        if self.frame_ids is None:
            if n_valid:
                self._collect(valid, obs, actions, reward, self.inputs(next_obs), terminated, truncated)
        else:  # frame replay: every new frame goes to the pool (a restart's too); transitions carry slots
            assert isinstance(self.buffer, FrameReplayBuffer)
            next_ids = self.buffer.observe(next_obs, self.frame_ids, valid)
            if n_valid:
                self._collect(valid, self.frame_ids, actions, reward, next_ids, terminated, truncated)
            self.frame_ids = next_ids
        self.obs = next_obs
        self._learn(n_valid)

    def _collect(self, valid, obs, actions, reward, next_obs, terminated, truncated) -> None:
        """Store the valid transitions of one step, as n-step transitions when n > 1."""
        n_valid = int(valid.sum())
        self.reward_abs_max = max(self.reward_abs_max, float(np.abs(reward[valid]).max()))
        if self.nstep is None:
            self.buffer.add(
                obs[valid], actions[valid], reward[valid], next_obs[valid], terminated[valid], self.gammas[:n_valid]
            )
            return
        out = self.nstep.push(
            np.flatnonzero(valid),
            obs[valid],
            actions[valid],
            reward[valid],
            next_obs[valid],
            terminated[valid],
            truncated[valid],
        )
        if out is not None:
            self.buffer.add(*out)

    def _learn(self, n_valid: int) -> None:
        """`gradient_steps` updates for every `train_freq` transitions collected, once
        `learning_starts` environment steps are done and replay holds a batch."""
        dqn = self.cfg.dqn
        if self.env_steps < dqn.learning_starts or len(self.buffer) < dqn.batch_size:
            return
        self.since_update += n_valid
        while self.since_update >= dqn.train_freq:
            self.since_update -= dqn.train_freq
            if isinstance(self.buffer, PrioritizedReplayBuffer):  # importance-sampling exponent, over env steps
                self.buffer.beta = beta_at(self.env_steps, dqn.per_beta_start, dqn.per_beta_steps)
            self.learner.optimizer.lr = lr_at(dqn.lr, dqn.lr_schedule, self.env_steps, self.cfg.total_steps)
            if dqn.bound_targets:  # no return of the rewards seen so far lies beyond this
                self.learner.target_limit = value_bound(self.reward_abs_max, dqn.gamma)
            for _ in range(dqn.gradient_steps):
                batch = self.buffer.sample(dqn.batch_size, self.replay_gen, dqn.replay_sampling == "sequential")
                self.last_loss = self.learner.update(batch)  # the target sync per gradient step included
                if isinstance(self.buffer, PrioritizedReplayBuffer):  # new TD errors are the new priorities
                    assert batch.indices is not None and self.learner.last_td_abs is not None
                    self.buffer.update_priorities(batch.indices, self.learner.last_td_abs)

    def on_episode_end(self, env_index: int) -> None:
        self.learner.sync_target("episodes", self.episodes)

    def value_range(self) -> tuple[float, float, float] | None:
        # The newest PROBE_STATES stored states: no random draw (the replay stream stays as it
        # was), and the states the current policy visits, where a diverging estimate shows first.
        n = min(len(self.buffer), PROBE_STATES)
        if n == 0:
            return None
        newest = (self.buffer.pos - 1 - torch.arange(n)) % self.buffer.capacity
        q = self.learner.q_values(self.buffer.observations(newest))  # (n, A)
        return float(q.abs().max()), self.reward_abs_max, self.cfg.dqn.gamma

    def algo_state(self) -> dict[str, Any]:
        return {
            "learner": self.learner.state_dict(),
            "buffer": self.buffer.state_dict(),
            "nstep": None if self.nstep is None else self.nstep.state_dict(),
            "rng": {"explore": self.explore_rng.bit_generator.state, "replay": self.replay_gen.get_state()},
            "since_update": self.since_update,
            "reward_abs_max": self.reward_abs_max,
            "hold": None if self.hold is None else self.hold.state_dict(),
            "frame_ids": None if self.frame_ids is None else torch.from_numpy(self.frame_ids.copy()),
        }

    def load_algo_state(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.buffer.load_state_dict(state["buffer"])
        nstep = state["nstep"]
        if isinstance(self.buffer, FrameReplayBuffer):
            # Checkpoints written before frame replay hold full stacks: the current observations'
            # are converted by load_checkpoint once they are loaded, the n-step windows' here.
            ids = state.get("frame_ids")
            self.frame_ids = None if ids is None else ids.numpy().astype(np.int32)
            if nstep is not None and nstep["obs"] is not None and nstep["obs"].dim() == 2 + len(self.obs_shape):
                nstep = {**nstep, "obs": torch.from_numpy(self._pending_ids(nstep))}
        if self.nstep is not None:
            self.nstep.load_state_dict(nstep)
        self.explore_rng.bit_generator.state = state["rng"]["explore"]
        self.replay_gen.set_state(state["rng"]["replay"])
        self.since_update = int(state["since_update"])
        if "reward_abs_max" in state:
            self.reward_abs_max = float(state["reward_abs_max"])
        elif len(self.buffer):  # a checkpoint from before the guard: what replay holds (n-step sums at most)
            self.reward_abs_max = float(self.buffer.rewards[: len(self.buffer)].abs().max())
        if self.hold is not None:
            self.hold.load_state_dict(state["hold"])

    def _pending_ids(self, nstep: dict) -> np.ndarray:
        """The pool slots of an n-step state's pending observations, given as full stacks (a
        checkpoint written before frame replay); the entries no longer pending get slot 0, never read.
        (n, N, K) int32"""
        assert isinstance(self.buffer, FrameReplayBuffer) and self.buffer.converting is not None
        n, envs = nstep["obs"].shape[:2]
        pos, count = nstep["pos"].numpy(), nstep["count"].numpy()
        ids = np.zeros((n, envs, self.buffer.frames), dtype=np.int32)
        for e in range(envs):
            for slot in (pos[e] - count[e] + np.arange(count[e])) % n:  # oldest first
                ids[slot, e] = self.buffer.convert_stacks(nstep["obs"][slot, e][None].numpy())[0]
        return ids

    def load_checkpoint(self, state: dict) -> None:
        super().load_checkpoint(state)
        if not isinstance(self.buffer, FrameReplayBuffer):
            return
        try:
            if self.buffer.converting is not None:  # a checkpoint written before frame replay
                if self.frame_ids is None:  # (else the environments were restarted)
                    self.frame_ids = self.buffer.convert_stacks(self.obs)
                self.buffer.finish_conversion()
            if self.frame_ids is None:
                raise ValueError("no frame slots of the current observations")
            self.buffer.check_slots(self.frame_ids, "current observations")
            if not np.array_equal(self.buffer.stacks(torch.from_numpy(self.frame_ids)).numpy(), self.obs):
                raise ValueError("the current observations' frame slots do not hold them")
            if self.nstep is not None and self.nstep.obs is not None:
                self.buffer.check_slots(self.nstep.obs, "n-step observations")
        except (ValueError, RuntimeError) as exc:
            raise DqnlabError(
                f"checkpoint in {self.run_dir} does not fit this run's config ({str(exc)[:200]})", exit_code=1
            ) from None

    def on_env_restart(self) -> None:
        self.nstep = self._new_nstep()
        self.hold = self._new_hold()
        self.frame_ids = self._observe_first(self.obs)

    def policy_extra(self) -> dict[str, Any]:
        pixels = self.cfg.env.pixels
        if pixels.enabled:
            return {"pixels": pixels.model_dump(mode="json")}
        extra: dict[str, Any] = {}
        if self.cfg.dqn.n_quantiles is not None:
            extra["n_quantiles"] = self.cfg.dqn.n_quantiles
        if self.scaling is not None:
            extra["input_scaling"] = {"offset": self.scale_offset.tolist(), "scale": self.scale_factor.tolist()}
        return extra

    def algo_summary(self) -> dict[str, Any]:
        return {"grad_steps": self.learner.grad_steps}
