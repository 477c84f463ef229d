"""n-step returns: turning the 1-step transitions of N parallel environments into n-step ones.

For each environment we keep a window of its last n (obs, action, reward). A full window emits
its oldest entry as (s_t, a_t, R = sum_{i<n} gamma^i r_{t+i}, s_{t+n}, terminated, gamma^n).
When an episode ends, every pending entry is emitted with its shorter horizon k, bootstrap
discount gamma^k and the episode's terminated flag: a time-limit truncation still bootstraps.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch


def n_step_return(rewards: np.ndarray, gamma: float) -> float:
    """sum_i gamma^i * rewards[i]."""
    return float(np.sum(rewards * gamma ** np.arange(len(rewards))))


class NStepCollector:
    def __init__(self, n: int, gamma: float, num_envs: int):
        self.n, self.gamma = n, gamma
        self.windows: list[deque] = [deque() for _ in range(num_envs)]

    def push(self, env_ids: np.ndarray, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
             next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray):
        """Add one transition per env in `env_ids`; return the n-step transitions now complete as
        arrays (obs, actions, returns, next_obs, terminated, discounts), possibly empty."""
        out_obs, out_act, out_ret, out_next, out_term, out_disc = [], [], [], [], [], []
        for k, e in enumerate(env_ids):
            window = self.windows[e]
            window.append((obs[k], actions[k], rewards[k]))
            done = bool(terminated[k] or truncated[k])
            while window and (len(window) == self.n or done):
                rs = np.array([r for _, _, r in window], dtype=np.float64)
                o, a, _ = window.popleft()
                out_obs.append(o)
                out_act.append(a)
                out_ret.append(n_step_return(rs, self.gamma))
                out_next.append(next_obs[k])
                out_term.append(terminated[k])
                out_disc.append(self.gamma ** len(rs))
        if not out_obs:
            return None
        return (np.stack(out_obs), np.array(out_act), np.array(out_ret, dtype=np.float32), np.stack(out_next),
                np.array(out_term), np.array(out_disc, dtype=np.float32))

    def state_dict(self) -> dict:
        return {"windows": [
            {"obs": torch.from_numpy(np.array([o for o, _, _ in w], dtype=np.float32)),
             "actions": [int(a) for _, a, _ in w], "rewards": [float(r) for _, _, r in w]}
            for w in self.windows]}

    def load_state_dict(self, state: dict) -> None:
        for window, saved in zip(self.windows, state["windows"], strict=True):
            window.clear()
            obs = saved["obs"].numpy()
            for i, (a, r) in enumerate(zip(saved["actions"], saved["rewards"], strict=True)):
                window.append((obs[i].copy(), a, r))
