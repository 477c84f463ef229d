"""n-step returns: turning the 1-step transitions of N parallel environments into n-step ones.

Each environment keeps a ring of its last n (obs, action, reward). A full window emits its
oldest entry as (s_t, a_t, R = sum_{i<n} gamma^i r_{t+i}, s_{t+n}, terminated=0, gamma^n).
When an episode ends, every pending entry is emitted with its shorter horizon k, bootstrap
discount gamma^k and the episode's terminated flag: a time-limit truncation still bootstraps.
The common case (full windows, no episode end) is computed for all environments at once.
"""

from __future__ import annotations

import numpy as np
import torch


def n_step_return(rewards: np.ndarray, gamma: float) -> float:
    """sum_i gamma^i * rewards[i]."""
    return float(np.sum(rewards * gamma ** np.arange(len(rewards))))


class NStepCollector:
    def __init__(self, n: int, gamma: float, num_envs: int, obs_shape: tuple[int, ...] | None = None):
        self.n, self.gamma, self.num_envs = n, gamma, num_envs
        self.powers = gamma ** np.arange(n, dtype=np.float64)  # (n,)
        self.obs: np.ndarray | None = None if obs_shape is None else np.zeros((n, num_envs, *obs_shape), np.float32)
        self.actions = np.zeros((n, num_envs), dtype=np.int64)
        self.rewards = np.zeros((n, num_envs), dtype=np.float64)
        self.pos = np.zeros(num_envs, dtype=np.int64)  # pushes so far, per env (ring slot = pos % n)
        self.count = np.zeros(num_envs, dtype=np.int64)  # entries pending in each window

    def push(self, env_ids: np.ndarray, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
             next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray):
        """Add one transition for each env in `env_ids` (row k of each array belongs to env_ids[k]);
        return the n-step transitions now complete as arrays (obs, actions, returns, next_obs,
        terminated, discounts), or None."""
        env_ids = np.asarray(env_ids, dtype=np.int64)
        if self.obs is None:
            self.obs = np.zeros((self.n, self.num_envs, *obs.shape[1:]), np.float32)
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
            parts.append((self.obs[first, envs], self.actions[first, envs], returns, next_obs[full],
                          np.zeros(len(envs), dtype=bool), np.full(len(envs), self.gamma**self.n)))
            self.count[envs] -= 1
        for k in np.flatnonzero(done):  # episode ends: flush the whole window, shorter horizons
            e = env_ids[k]
            c = int(self.count[e])
            slots_e = (self.pos[e] - c + np.arange(c)) % self.n  # oldest first
            rews = self.rewards[slots_e, e]
            for j in range(c):
                horizon = c - j  # entry j bootstraps after the episode's last step
                parts.append((self.obs[slots_e[j], e][None], self.actions[slots_e[j], e][None],
                              np.array([n_step_return(rews[j:], self.gamma)]), next_obs[k][None],
                              np.array([bool(terminated[k])]), np.array([self.gamma**horizon])))
            self.count[e] = 0
        if not parts:
            return None
        cols = list(zip(*parts))
        return (np.concatenate(cols[0]), np.concatenate(cols[1]), np.concatenate(cols[2]).astype(np.float32),
                np.concatenate(cols[3]), np.concatenate(cols[4]), np.concatenate(cols[5]).astype(np.float32))

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
        self.obs = None if state["obs"] is None else state["obs"].numpy().copy()
        self.actions = state["actions"].numpy().copy()
        self.rewards = state["rewards"].numpy().copy()
        self.pos = state["pos"].numpy().copy()
        self.count = state["count"].numpy().copy()
