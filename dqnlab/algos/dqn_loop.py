"""DQN in the training loop: epsilon-greedy collection into replay, gradient steps, target updates."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from dqnlab.algos.dqn import DQNLearner
from dqnlab.runtime.loop import RunContext, TrainLoop
from dqnlab.config import PixelConfig
from dqnlab.nn.networks import PixelQNetwork, build_q_network, q_network_parameters, seeded_q_network
from dqnlab.algos.nstep import NStepCollector
from dqnlab.algos.replay import PrioritizedReplayBuffer, beta_at
from dqnlab.algos.replay import ReplayBuffer
from dqnlab.algos.schedules import epsilon_at, lr_at


class DQNLoop(TrainLoop):
    algo = "dqn"

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        cfg, obs_shape, n_actions = ctx.cfg, ctx.obs_shape, ctx.n_actions
        self.explore_rng = np.random.default_rng(self.seeds.explore)
        self.replay_gen = torch.Generator().manual_seed(self.seeds.replay)
        pixels = cfg.env.pixels
        online = seeded_q_network(cfg.network, obs_shape[0], n_actions, self.seeds.network, pixels)
        self.learner = DQNLearner(online, cfg.dqn)
        # Frames are uint8 in 0..255 and stay so in replay (the network scales them): 4x less memory.
        obs_dtype = torch.uint8 if pixels.enabled else torch.float32
        if cfg.dqn.prioritized:
            self.buffer = PrioritizedReplayBuffer(cfg.dqn.buffer_size, obs_shape, cfg.dqn.per_alpha, cfg.dqn.per_eps,
                                                  obs_dtype)
        else:
            self.buffer = ReplayBuffer(cfg.dqn.buffer_size, obs_shape, obs_dtype)
        self.gammas = np.full(cfg.env.num_envs, cfg.dqn.gamma, dtype=np.float32)
        self.nstep = self._new_nstep()
        self.since_update = 0

    @classmethod
    def build_policy_net(cls, network, obs_shape, n_actions, extra) -> nn.Module:
        # A pixel policy keeps its env.pixels section in extra["pixels"]: its frames' shape comes from there.
        if "pixels" in extra:
            return PixelQNetwork(network, PixelConfig.model_validate(extra["pixels"]), n_actions)
        return build_q_network(network, obs_shape[0], n_actions)

    @classmethod
    def memory_estimate(cls, cfg, obs_shape, n_actions) -> dict[str, float]:
        obs_bytes = float(np.prod(obs_shape)) * (1 if cfg.env.pixels.enabled else 4)
        slot = 2 * obs_bytes + 8 + 4 + 4 + 4  # obs, next_obs, action, reward, terminated, discount
        replay = cfg.dqn.buffer_size * slot
        if cfg.dqn.prioritized:
            replay += 2 * 2 * cfg.dqn.buffer_size * 8  # the sum tree: about 2 leaves' worth of float64 nodes
        params = q_network_parameters(cfg.network, obs_shape, n_actions)
        return {
            "replay buffer": replay,
            # torch.save serialises the whole buffer in memory before the atomic write
            "replay buffer copy while checkpointing": replay,
            # online, target, gradients, two Adam moments, the best network kept
            "Q-networks and optimizer": 6.0 * 4 * params,
        }

    def _new_nstep(self) -> NStepCollector | None:
        d = self.cfg.dqn
        return NStepCollector(d.n_step, d.gamma, self.cfg.env.num_envs, self.obs_shape) if d.n_step > 1 else None

    def exploration(self) -> float:
        return epsilon_at(self.cfg.explore, self.env_steps, self.episodes)

    def greedy_act(self, obs: np.ndarray) -> np.ndarray:
        return self.learner.greedy_actions(torch.from_numpy(obs)).numpy()

    def policy_net(self) -> nn.Module:
        return self.learner.online

    def advance(self) -> None:
        cfg, n = self.cfg, self.cfg.env.num_envs
        eps = self.exploration()
        with torch.no_grad():
            greedy = self.learner.greedy_actions(torch.from_numpy(self.obs)).numpy()
        explore = self.explore_rng.random(n) < eps
        random_actions = self.explore_rng.integers(0, self.n_actions, size=n)
        actions = np.where(explore, random_actions, greedy)
        obs = self.obs
        valid, next_obs, reward, terminated, truncated = self.env_step(actions)
        n_valid = int(valid.sum())
        if n_valid:
            if self.nstep is None:
                self.buffer.add(obs[valid], actions[valid], reward[valid], next_obs[valid], terminated[valid],
                                self.gammas[:n_valid])
            else:
                out = self.nstep.push(np.flatnonzero(valid), obs[valid], actions[valid], reward[valid],
                                      next_obs[valid], terminated[valid], truncated[valid])
                if out is not None:
                    self.buffer.add(*out)
        self.obs = next_obs

        if self.env_steps >= cfg.dqn.learning_starts and len(self.buffer) >= cfg.dqn.batch_size:
            self.since_update += n_valid
            while self.since_update >= cfg.dqn.train_freq:
                self.since_update -= cfg.dqn.train_freq
                if cfg.dqn.prioritized:  # importance-sampling exponent, annealed over env steps
                    self.buffer.beta = beta_at(self.env_steps, cfg.dqn.per_beta_start, cfg.dqn.per_beta_steps)
                self.learner.optimizer.lr = lr_at(cfg.dqn.lr, cfg.dqn.lr_schedule, self.env_steps, cfg.total_steps)
                for _ in range(cfg.dqn.gradient_steps):
                    batch = self.buffer.sample(cfg.dqn.batch_size, self.replay_gen,
                                               cfg.dqn.replay_sampling == "sequential")
                    self.last_loss = self.learner.update(batch)
                    if batch.indices is not None:  # prioritised replay: new TD errors are the new priorities
                        self.buffer.update_priorities(batch.indices, self.learner.last_td_abs)

    def on_episode_end(self, env_index: int) -> None:
        dqn = self.cfg.dqn
        if dqn.target_update == "hard" and dqn.target_update_unit == "episodes" and \
                self.episodes % dqn.target_update_every == 0:
            self.learner.hard_update()

    def algo_state(self) -> dict[str, Any]:
        return {
            "learner": self.learner.state_dict(),
            "buffer": self.buffer.state_dict(),
            "nstep": None if self.nstep is None else self.nstep.state_dict(),
            "rng": {"explore": self.explore_rng.bit_generator.state, "replay": self.replay_gen.get_state()},
            "since_update": self.since_update,
        }

    def load_algo_state(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.buffer.load_state_dict(state["buffer"])
        if self.nstep is not None:
            self.nstep.load_state_dict(state["nstep"])
        self.explore_rng.bit_generator.state = state["rng"]["explore"]
        self.replay_gen.set_state(state["rng"]["replay"])
        self.since_update = int(state["since_update"])

    def on_env_restart(self) -> None:
        self.nstep = self._new_nstep()

    def policy_extra(self) -> dict[str, Any]:
        pixels = self.cfg.env.pixels
        return {"pixels": pixels.model_dump(mode="json")} if pixels.enabled else {}

    def algo_summary(self) -> dict[str, Any]:
        return {"grad_steps": self.learner.grad_steps}
