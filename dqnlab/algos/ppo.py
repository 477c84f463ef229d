"""PPO (Schulman et al. 2017) with a clipped surrogate, GAE, an entropy bonus and separate actor
and critic MLPs, collecting rollouts on the same vector environments as DQN.

The delivered policy is the actor acting greedily (argmax of its logits).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from dqnlab.algos.schedules import lr_at
from dqnlab.config import NetworkConfig, PPOConfig
from dqnlab.nn.networks import build_mlp, mlp_parameters
from dqnlab.nn.optim import Adam, clip_grad_norm_
from dqnlab.runtime.loop import RunContext, TrainLoop


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    done: np.ndarray,
    valid: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """Generalised advantage estimates of a (T, N) rollout, computed backwards in time.

    delta_t = r_t + gamma * (1 - terminated_t) * V(s_{t+1}) - V(s_t)
    A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1}

    `next_values` are the values of each step's own next observation, so a time-limit
    truncation (done but not terminated) bootstraps from the state it was cut at, and the
    rollout's last step bootstraps too. `done` (terminated or truncated) stops the recursion at
    an episode's end. Invalid steps (the NEXT_STEP autoreset steps, which are no transitions)
    get advantage 0 and must be left out of the loss; they always follow a done step, so they
    never leak into a valid step's estimate.
    """
    T = rewards.shape[0]
    adv = np.zeros_like(values)
    running = np.zeros(values.shape[1:], dtype=values.dtype)
    for t in range(T - 1, -1, -1):
        delta = rewards[t] + gamma * (1.0 - terminated[t]) * next_values[t] - values[t]
        running = delta + gamma * lam * (1.0 - done[t]) * running
        running = np.where(valid[t], running, 0.0)
        adv[t] = running
    return adv


def ppo_losses(
    logits: torch.Tensor,
    actions: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    values: torch.Tensor,
    returns: torch.Tensor,
    clip: float,
) -> tuple[torch.Tensor, ...]:
    """(policy loss, value loss, entropy) of a minibatch.

    policy loss = -mean(min(ratio * A, clip(ratio, 1 - clip, 1 + clip) * A)),
    ratio = exp(log pi(a|s) - log pi_old(a|s)); value loss = mean((V(s) - R)^2).
    """
    logp_all = torch.log_softmax(logits, dim=1)
    logp = logp_all.gather(1, actions.unsqueeze(1)).squeeze(1)
    ratio = torch.exp(logp - old_logp)
    surrogate = torch.min(ratio * adv, torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * adv)
    entropy = -(logp_all.exp() * logp_all).sum(dim=1).mean()
    return -surrogate.mean(), ((values - returns) ** 2).mean(), entropy


def build_actor_critic(
    network: NetworkConfig, ppo: PPOConfig, obs_dim: int, n_actions: int, seed: int
) -> tuple[nn.Sequential, nn.Sequential]:
    """Actor (obs -> logits) and critic (obs -> value) MLPs with orthogonal initialisation
    (gain sqrt 2 on hidden layers, 0.01 on the actor's head so the first policy is near uniform,
    1 on the critic's head), drawn from `seed`."""
    critic_cfg = network.model_copy(
        update={"hidden": ppo.critic_hidden if ppo.critic_hidden is not None else network.hidden}
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        actor = build_mlp(network, obs_dim, n_actions)
        critic = build_mlp(critic_cfg, obs_dim, 1)
        for net, head_gain in ((actor, 0.01), (critic, 1.0)):
            linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
            for i, layer in enumerate(linears):
                nn.init.orthogonal_(layer.weight, gain=head_gain if i == len(linears) - 1 else math.sqrt(2))
                nn.init.zeros_(layer.bias)
    return actor, critic


class PPOLoop(TrainLoop):
    algo = "ppo"

    @classmethod
    def build_policy_net(cls, network, obs_shape, n_actions, extra) -> nn.Module:
        return build_mlp(network, obs_shape[0], n_actions)  # the actor: logits from the same MLP builder

    @classmethod
    def memory_estimate(cls, cfg, obs_shape, n_actions) -> dict[str, float]:
        p, obs_dim = cfg.ppo, int(np.prod(obs_shape))
        critic = p.critic_hidden if p.critic_hidden is not None else cfg.network.hidden
        params = mlp_parameters([obs_dim, *cfg.network.hidden, n_actions]) + mlp_parameters([obs_dim, *critic, 1])
        samples = float(p.n_steps) * cfg.env.num_envs
        return {
            "rollout": samples * (2 * 4 * obs_dim + 8 + 4 * 5 + 1) * 3,  # the arrays, their tensors, a copy
            "actor, critic and optimizers": 6.0 * 4 * params,
        }

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        cfg, obs_shape, n_actions = ctx.cfg, ctx.obs_shape, ctx.n_actions
        p = cfg.ppo
        self.actor, self.critic = build_actor_critic(cfg.network, p, obs_shape[0], n_actions, self.streams.network)
        self.actor_opt = Adam(self.actor.parameters(), p.lr, eps=1e-5)
        self.critic_opt = Adam(self.critic.parameters(), p.critic_lr or p.lr, eps=1e-5)
        self._params = list(self.actor.parameters()) + list(self.critic.parameters())
        self.act_rng = np.random.default_rng(self.streams.explore)
        self.shuffle_gen = torch.Generator().manual_seed(self.streams.replay)
        self.updates = 0
        self.grad_steps = 0
        n, T = cfg.env.num_envs, p.n_steps
        # Preallocated rollout storage, (T, N, ...).
        self.r_obs = np.zeros((T, n, *obs_shape), dtype=np.float32)
        self.r_next_obs = np.zeros((T, n, *obs_shape), dtype=np.float32)
        self.r_actions = np.zeros((T, n), dtype=np.int64)
        self.r_logp = np.zeros((T, n), dtype=np.float32)
        self.r_rewards = np.zeros((T, n), dtype=np.float32)
        self.r_terminated = np.zeros((T, n), dtype=np.float32)
        self.r_done = np.zeros((T, n), dtype=np.float32)
        self.r_valid = np.zeros((T, n), dtype=bool)

    def greedy_act(self, obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.actor(torch.from_numpy(obs)).argmax(dim=1).numpy()

    def policy_net(self) -> nn.Module:
        return self.actor

    def check_finite(self) -> None:
        super().check_finite()
        if any(not torch.isfinite(q).all() for q in self.critic.parameters()):
            self.last_loss = torch.tensor(float("nan"))
            super().check_finite()

    def _set_lr(self) -> None:
        p = self.cfg.ppo
        self.actor_opt.lr = lr_at(p.lr, p.lr_schedule, self.env_steps, self.cfg.total_steps)
        self.critic_opt.lr = lr_at(p.critic_lr or p.lr, p.lr_schedule, self.env_steps, self.cfg.total_steps)

    def advance(self) -> None:
        p = self.cfg.ppo
        T = 0
        while p.n_steps > T:
            obs = self.obs
            with torch.inference_mode():
                logits = self.actor(torch.from_numpy(obs))
                logp_all = torch.log_softmax(logits, dim=1).numpy()
            # Inverse-CDF sampling from the explicit generator (reproducible, checkpointable).
            cdf = np.cumsum(np.exp(logp_all), axis=1)
            u = self.act_rng.random(len(obs))[:, None] * cdf[:, -1:]
            actions = np.minimum((u > cdf).sum(axis=1), self.n_actions - 1)
            valid, next_obs, reward, terminated, truncated = self.env_step(actions)
            self.r_obs[T] = obs
            self.r_next_obs[T] = next_obs
            self.r_actions[T] = actions
            self.r_logp[T] = logp_all[np.arange(len(actions)), actions]
            self.r_rewards[T] = reward
            self.r_terminated[T] = terminated
            self.r_done[T] = terminated | truncated
            self.r_valid[T] = valid
            self.obs = next_obs
            T += 1
            if p.rollout_until_done and (valid & (terminated | truncated)).any():
                break
        self._update(T)

    def _update(self, T: int) -> None:
        p = self.cfg.ppo
        self._set_lr()
        obs = torch.from_numpy(self.r_obs[:T].reshape(-1, *self.obs_shape))
        with torch.inference_mode():
            values = self.critic(obs).squeeze(1).numpy().reshape(T, -1)
            next_values = self.critic(torch.from_numpy(self.r_next_obs[:T].reshape(-1, *self.obs_shape)))
            next_values = next_values.squeeze(1).numpy().reshape(T, -1)
        adv = gae(
            self.r_rewards[:T],
            values,
            next_values,
            self.r_terminated[:T],
            self.r_done[:T],
            self.r_valid[:T],
            p.gamma,
            p.gae_lambda,
        )
        keep = torch.from_numpy(np.flatnonzero(self.r_valid[:T].reshape(-1)))
        if len(keep) == 0:
            return
        obs = obs[keep]
        actions = torch.from_numpy(self.r_actions[:T].reshape(-1))[keep]
        old_logp = torch.from_numpy(self.r_logp[:T].reshape(-1))[keep]
        adv_t = torch.from_numpy(adv.reshape(-1).astype(np.float32))[keep]
        returns = adv_t + torch.from_numpy(values.reshape(-1).astype(np.float32))[keep]
        n = len(keep)
        for _ in range(p.epochs):
            order = torch.randperm(n, generator=self.shuffle_gen)
            for start in range(0, n, p.minibatch_size):
                idx = order[start : start + p.minibatch_size]
                a = adv_t[idx]
                if p.normalize_advantages and len(idx) > 1:
                    a = (a - a.mean()) / (a.std() + 1e-8)
                pol, val, ent = ppo_losses(
                    self.actor(obs[idx]),
                    actions[idx],
                    old_logp[idx],
                    a,
                    self.critic(obs[idx]).squeeze(1),
                    returns[idx],
                    p.clip_range,
                )
                loss = pol + p.vf_coef * val - p.ent_coef * ent
                self.actor_opt.zero_grad()
                self.critic_opt.zero_grad()
                loss.backward()
                if p.max_grad_norm is not None:
                    clip_grad_norm_(self._params, p.max_grad_norm)
                self.actor_opt.step()
                self.critic_opt.step()
                self.grad_steps += 1
                self.last_loss = loss.detach()
        self.updates += 1

    def algo_state(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "rng": {"act": self.act_rng.bit_generator.state, "shuffle": self.shuffle_gen.get_state()},
            "updates": self.updates,
            "grad_steps": self.grad_steps,
        }

    def load_algo_state(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.act_rng.bit_generator.state = state["rng"]["act"]
        self.shuffle_gen.set_state(state["rng"]["shuffle"])
        self.updates, self.grad_steps = int(state["updates"]), int(state["grad_steps"])

    def algo_summary(self) -> dict[str, Any]:
        return {"updates": self.updates, "grad_steps": self.grad_steps}
