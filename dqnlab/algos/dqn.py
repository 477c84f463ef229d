"""The DQN update: TD targets, loss, gradient step, target-network updates."""

from __future__ import annotations

from collections.abc import Callable

import copy
import functools

import torch
from torch import nn

from dqnlab.nn import fast_mlp
from dqnlab.config import DQNConfig
from dqnlab.nn.networks import has_batch_norm
from dqnlab.nn.optim import clip_grad_norm_, clip_grad_value_, make_optimizer
from dqnlab.algos.replay import Batch


def td_target(rewards: torch.Tensor, next_q: torch.Tensor, terminated: torch.Tensor,
              gamma: float | torch.Tensor) -> torch.Tensor:
    """r + gamma * (1 - terminated) * next_q, with `gamma` the bootstrap discount (gamma^k for
    a k-step transition, so per transition).

    Only termination cuts the bootstrap: a time-limit truncation is not a terminal state, so a
    truncated transition (terminated = 0) still bootstraps from its next observation.
    """
    return rewards + gamma * (1.0 - terminated) * next_q


def next_state_value(
    online: Callable[[torch.Tensor], torch.Tensor], target: Callable[[torch.Tensor], torch.Tensor],
    next_obs: torch.Tensor, double: bool,
) -> torch.Tensor:
    """max_a Q_target(s', a), or with Double DQN Q_target(s', argmax_a Q_online(s', a)). (B,)"""
    next_q_target = target(next_obs)  # (B, A)
    if not double:
        return next_q_target.max(dim=1).values
    best = online(next_obs).argmax(dim=1, keepdim=True)  # (B, 1)
    return next_q_target.gather(1, best).squeeze(1)


class DQNLearner:
    """Online and target Q-networks with their optimizer and update rules."""

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
        self._last_td: torch.Tensor | None = None  # signed TD errors of the last update, (B,)
        self._params = list(self.online.parameters())
        pairs = list(zip(list(self.target.parameters()) + list(self.target.buffers()),
                         list(self.online.parameters()) + list(self.online.buffers())))
        self._lerp_pairs = ([t for t, o in pairs if t.is_floating_point()],
                            [o for t, o in pairs if t.is_floating_point()])
        self._copy_pairs = [(t, o) for t, o in pairs if not t.is_floating_point()]
        # Plain MLPs take the hand-written forward/backward (dqnlab.nn.fast_mlp); others autograd.
        online_mlp = None if self.batch_norm else fast_mlp.mlp_layers(online)
        self._fast = online_mlp
        if online_mlp is not None:
            target_layers, kind = fast_mlp.mlp_layers(self.target)
            self._online_fn = functools.partial(fast_mlp.forward, online_mlp[0], kind)
            self._target_fn = functools.partial(fast_mlp.forward, target_layers, kind)
        else:
            self._online_fn, self._target_fn = self.online, self.target

    @torch.no_grad()
    def targets(self, batch: Batch) -> torch.Tensor:
        """TD targets of `batch`. (B,)"""
        next_q = next_state_value(self._online_fn, self._target_fn, batch.next_obs, self.cfg.double)
        return td_target(batch.rewards, next_q, batch.terminated, batch.discounts)

    def loss(self, batch: Batch) -> torch.Tensor:
        """The TD loss with its autograd graph (the reference for the fast path)."""
        return self._loss_and_td(batch)[0]

    def _loss_and_td(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss with its autograd graph, detached TD errors Q - y of shape (B,)).

        The loss is the batch mean of per-sample Huber or squared errors, each times its
        importance weight when the batch carries weights (prioritised replay)."""
        y = self.targets(batch)
        if self.batch_norm:
            self.online.train()
        q = self.online(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)  # (B,)
        if self.batch_norm:
            self.online.eval()
        if self.cfg.loss == "huber":
            per_sample = nn.functional.smooth_l1_loss(q, y, reduction="none")
        else:
            per_sample = nn.functional.mse_loss(q, y, reduction="none")
        if batch.weights is not None:
            per_sample = per_sample * batch.weights
        return per_sample.mean(), (q.detach() - y)

    @property
    def last_td_abs(self) -> torch.Tensor | None:
        """|Q(s, a) - y| of each sample of the last update's batch, (B,), detached: the new
        priorities for prioritised replay. None before the first update."""
        return None if self._last_td is None else self._last_td.abs()

    def update(self, batch: Batch) -> torch.Tensor:
        """One gradient step on `batch`; returns the (detached) loss. Soft target update included.

        With ``batch.weights`` (prioritised replay) the loss is the importance-weighted mean of
        the per-sample losses; ``last_td_abs`` then holds the batch's new priorities."""
        if self._fast is None:
            loss, self._last_td = self._loss_and_td(batch)
            self.optimizer.zero_grad()
            loss.backward()
        else:
            loss, self._last_td = fast_mlp.td_loss_backward(*self._fast, batch.obs, batch.actions, self.targets(batch),
                                                            self.cfg.loss, batch.weights)
        if self.cfg.clip_grad_value is not None:
            clip_grad_value_(self._params, self.cfg.clip_grad_value)
        if self.cfg.max_grad_norm is not None:
            clip_grad_norm_(self._params, self.cfg.max_grad_norm)
        self.optimizer.step()
        self.grad_steps += 1
        if self.cfg.target_update == "soft":
            self.soft_update(self.cfg.tau)
        elif self.cfg.target_update_unit == "steps" and self.grad_steps % self.cfg.target_update_every == 0:
            self.hard_update()
        return loss.detach()

    def hard_update(self) -> None:
        self.target.load_state_dict(self.online.state_dict())

    @torch.no_grad()
    def soft_update(self, tau: float) -> None:
        """target <- target + tau * (online - target), parameters and BatchNorm statistics alike."""
        torch._foreach_lerp_(self._lerp_pairs[0], self._lerp_pairs[1], tau)
        for t, o in self._copy_pairs:  # BatchNorm's integer num_batches_tracked counter
            t.copy_(o)

    @torch.no_grad()
    def greedy_actions(self, obs: torch.Tensor) -> torch.Tensor:
        return self._online_fn(obs).argmax(dim=1)

    def state_dict(self) -> dict:
        return {
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "grad_steps": self.grad_steps,
        }

    def load_state_dict(self, state: dict) -> None:
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.grad_steps = int(state["grad_steps"])
