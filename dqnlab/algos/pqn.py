"""PQN (Gallici et al. 2024, "Simplifying Deep Temporal Difference Learning"): Q-learning with
neither a replay buffer nor a target network.

What replaces them: many environments stepped in parallel decorrelate the data a gradient step
sees (the job of replay), LayerNorm in the Q-network keeps the bootstrapped targets from running
away (the job of a target network; see ``network.layer_norm``), and Q(lambda) targets over each
rollout carry rewards back several steps at once. Each iteration, in the order of ``advance``:

  1. act epsilon-greedily for ``pqn.n_steps`` steps on every environment (the rollout);
  2. compute max_a Q(s', a) of every transition with the network as it is, then the Q(lambda)
     targets backwards in time (``q_lambda_returns``);
  3. ``pqn.epochs`` passes over the rollout in ``pqn.minibatches`` shuffled minibatches, each a
     gradient step on the loss between Q(s, a) and its target (``dqn.td_loss``, the one
     definition of the squared-error and Huber losses).

Unlike CleanRL's pqn.py, a time-limit truncation bootstraps from the state it cut (it is not a
terminal state), and a return never runs on into the next episode of the same environment.
The delivered policy is the Q-network acting greedily, as DQN's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from dqnlab.algos.dqn import epsilon_greedy, td_loss
from dqnlab.algos.schedules import epsilon_at, lr_at
from dqnlab.nn.networks import build_mlp, q_network_parameters, seeded_q_network
from dqnlab.nn.optim import Adam, clip_grad_norm_
from dqnlab.runtime.loop import RunContext, TrainLoop


def q_lambda_returns(
    rewards: np.ndarray,
    next_q: np.ndarray,
    terminated: np.ndarray,
    done: np.ndarray,
    valid: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """Peng's Q(lambda) targets of a (T, N) rollout, computed backwards in time.

    G_t = r_t + gamma * (1 - terminated_t) * ((1 - lam) * next_q_t + lam * G'_t)
    G'_t = G_{t+1} while the episode goes on inside the rollout, else next_q_t

    `next_q` is max_a Q(s', a) of each step's own next observation, so the rollout's last step
    and a time-limit truncation (done but not terminated) bootstrap from the state they cut;
    `done` (terminated or truncated) keeps one episode's return out of the previous one's.
    lam 0 gives the one-step target r + gamma * max Q(s'), lam 1 the discounted return to the
    episode's or the rollout's end. Invalid steps (NEXT_STEP autoreset steps, no transitions) get
    0 and must be left out of the loss; they always follow a done step, so no valid step reads them.
    """
    T = rewards.shape[0]
    returns = np.zeros_like(next_q)
    for t in range(T - 1, -1, -1):
        following = next_q[t] if t == T - 1 else np.where(done[t], next_q[t], returns[t + 1])
        g = rewards[t] + gamma * (1.0 - terminated[t]) * ((1.0 - lam) * next_q[t] + lam * following)
        returns[t] = np.where(valid[t], g, 0.0)
    return returns


class PQNLoop(TrainLoop):
    algo = "pqn"

    @classmethod
    def build_policy_net(cls, network, obs_shape, n_actions, extra) -> nn.Module:
        return build_mlp(network, obs_shape[0], n_actions)

    @classmethod
    def memory_estimate(cls, cfg, obs_shape, n_actions) -> dict[str, float]:
        obs_dim = float(np.prod(obs_shape))
        samples = float(cfg.pqn.n_steps) * cfg.env.num_envs
        params = q_network_parameters(cfg.network, obs_shape, n_actions)
        return {
            # obs and next_obs, action, reward, next max Q, terminated, done, valid; their tensors and a copy
            "rollout": samples * (2 * 4 * obs_dim + 8 + 4 * 4 + 1) * 3,
            "Q-network and optimizer": 5.0 * 4 * params,  # weights, gradients, two Adam moments, the best network
        }

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        cfg, obs_shape = ctx.cfg, ctx.obs_shape
        p = cfg.pqn
        self.net = seeded_q_network(cfg.network, obs_shape[0], ctx.n_actions, self.streams.network)
        self.optimizer = Adam(self.net.parameters(), p.lr)
        self._params = list(self.net.parameters())
        self.explore_rng = np.random.default_rng(self.streams.explore)
        self.shuffle_gen = torch.Generator().manual_seed(self.streams.replay)
        self.updates = 0
        self.grad_steps = 0
        self.reward_abs_max = 0.0  # the largest |reward| of a transition so far (the divergence guard's bound)
        n, T = cfg.env.num_envs, p.n_steps
        # Preallocated rollout storage, (T, N, ...).
        self.r_obs = np.zeros((T, n, *obs_shape), dtype=np.float32)
        self.r_next_obs = np.zeros((T, n, *obs_shape), dtype=np.float32)
        self.r_actions = np.zeros((T, n), dtype=np.int64)
        self.r_rewards = np.zeros((T, n), dtype=np.float32)
        self.r_terminated = np.zeros((T, n), dtype=np.float32)
        self.r_done = np.zeros((T, n), dtype=bool)
        self.r_valid = np.zeros((T, n), dtype=bool)

    def exploration(self) -> float:
        return epsilon_at(self.cfg.explore, self.env_steps, self.episodes)

    def greedy_act(self, obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.net(torch.from_numpy(obs)).argmax(dim=1).numpy()

    def policy_net(self) -> nn.Module:
        return self.net

    # -- 1. the rollout -----------------------------------------------------------------------
    def advance(self) -> None:
        for t in range(self.cfg.pqn.n_steps):
            obs = self.obs
            actions = epsilon_greedy(self.greedy_act(obs), self.exploration(), self.explore_rng, self.n_actions)
            valid, next_obs, reward, terminated, truncated = self.env_step(actions)
            self.r_obs[t] = obs
            self.r_next_obs[t] = next_obs
            self.r_actions[t] = actions
            self.r_rewards[t] = reward
            self.r_terminated[t] = terminated
            self.r_done[t] = terminated | truncated
            self.r_valid[t] = valid
            if valid.any():
                self.reward_abs_max = max(self.reward_abs_max, float(np.abs(reward[valid]).max()))
            self.obs = next_obs
        self._learn()

    # -- 2. the targets, 3. the gradient steps ---------------------------------------------------
    def _learn(self) -> None:
        p, T = self.cfg.pqn, self.cfg.pqn.n_steps
        with torch.inference_mode():
            next_q = self.net(torch.from_numpy(self.r_next_obs.reshape(-1, *self.obs_shape))).max(dim=1).values
        targets = q_lambda_returns(
            self.r_rewards,
            next_q.numpy().reshape(T, -1),
            self.r_terminated,
            self.r_done,
            self.r_valid,
            p.gamma,
            p.q_lambda,
        )
        keep = torch.from_numpy(np.flatnonzero(self.r_valid.reshape(-1)))
        n = len(keep)
        if n == 0:
            return
        obs = torch.from_numpy(self.r_obs.reshape(-1, *self.obs_shape))[keep]
        actions = torch.from_numpy(self.r_actions.reshape(-1))[keep].unsqueeze(1)  # (n, 1)
        y = torch.from_numpy(targets.reshape(-1))[keep]  # (n,)
        self.optimizer.lr = lr_at(p.lr, p.lr_schedule, self.env_steps, self.cfg.total_steps)
        size = math.ceil(n / p.minibatches)
        for _ in range(p.epochs):
            order = torch.randperm(n, generator=self.shuffle_gen)
            for start in range(0, n, size):
                idx = order[start : start + size]
                q = self.net(obs[idx]).gather(1, actions[idx]).squeeze(1)  # (b,)
                loss = td_loss(q - y[idx], p.loss)
                self.optimizer.zero_grad()
                loss.backward()
                if p.max_grad_norm is not None:
                    clip_grad_norm_(self._params, p.max_grad_norm)
                self.optimizer.step()
                self.grad_steps += 1
                self.last_loss = loss.detach()
        self.updates += 1

    # -- the divergence guard, checkpoints, summary ---------------------------------------------
    def value_range(self) -> tuple[float, float, float] | None:
        # The last rollout's states: the ones the current policy visits.
        if not self.updates:
            return None
        with torch.inference_mode():
            q = self.net(torch.from_numpy(self.r_obs.reshape(-1, *self.obs_shape)[self.r_valid.reshape(-1)]))
        if not len(q):
            return None
        return float(q.abs().max()), self.reward_abs_max, self.cfg.pqn.gamma

    def algo_state(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": {"explore": self.explore_rng.bit_generator.state, "shuffle": self.shuffle_gen.get_state()},
            "updates": self.updates,
            "grad_steps": self.grad_steps,
            "reward_abs_max": self.reward_abs_max,
            # the last rollout's states, where value_range reads |Q| (an evaluation that a signal
            # cut off is redone on resume, before any new rollout)
            "last_obs": torch.from_numpy(self.r_obs.copy()),
            "last_valid": torch.from_numpy(self.r_valid.copy()),
        }

    def load_algo_state(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.explore_rng.bit_generator.state = state["rng"]["explore"]
        self.shuffle_gen.set_state(state["rng"]["shuffle"])
        self.updates, self.grad_steps = int(state["updates"]), int(state["grad_steps"])
        self.reward_abs_max = float(state["reward_abs_max"])
        if state["last_obs"].shape != self.r_obs.shape or state["last_valid"].shape != self.r_valid.shape:
            raise ValueError("the last rollout's shape differs from pqn.n_steps x env.num_envs")
        self.r_obs[:] = state["last_obs"].numpy()
        self.r_valid[:] = state["last_valid"].numpy()

    def algo_summary(self) -> dict[str, Any]:
        return {"updates": self.updates, "grad_steps": self.grad_steps}
