"""Named starting configs. A preset is a dict of overrides on top of ``RunConfig``'s defaults.

The field defaults in ``dqnlab.config.schema`` *are* the ``default`` preset: the best DQN we have for
CartPole-v1 (see BENCHMARKS.md for how it was measured and tuned).
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

from dqnlab.config.overrides import deep_merge
from dqnlab.config.schema import DQN_STABILITY_AIDS_OFF
from dqnlab.core.errors import ConfigError, preview

# S0's DQN, shared by s0-keras and s0-keras-fixed.
_S0: dict[str, Any] = {
    "env": {"num_envs": 1},
    "network": {"hidden": [32, 16], "activation": "tanh"},
    "dqn": {
        "gamma": 0.9,
        "lr": 1e-2,
        "batch_size": 128,
        "buffer_size": 2048,
        "learning_starts": 512,
        "train_freq": 5,
        "gradient_steps": 1,
        "target_update_every": 200,
        "n_step": 1,
        "double": False,
        "max_grad_norm": 1.0,
    },
    "explore": {"schedule": "decrement", "start": 0.1, "end": 0.01, "decrement": 0.001},
    "total_steps": 300_000,
    "total_episodes": 600,
    "eval": {"every_episodes": 1, "episodes": 1, "fresh_starts": True, "patience": 100, "early_stop": False},
}

# S2's DQN, shared by s2-config and s2-config-fixed.
_S2: dict[str, Any] = {
    "env": {"id": "CartPole-v0", "num_envs": 1},
    "dqn": {
        "gamma": 0.99,
        "lr": 1e-3,
        "batch_size": 64,
        "buffer_size": 10_000,
        "learning_starts": 64,
        "train_freq": 1,
        "gradient_steps": 1,
        "target_update_every": 10,
        "target_update_unit": "episodes",
        "n_step": 1,
        "double": False,
        "loss": "mse",
        "max_grad_norm": None,
        "clip_grad_value": 1.0,
    },
    "explore": {"schedule": "exponential", "start": 0.9, "end": 0.05, "decay_steps": 200},
    "total_steps": 40_000,
    "total_episodes": 200,
    "eval": {"every_steps": 2000, "episodes": 10, "early_stop": False, "deliver": "last"},
}

# S3c's DQN, shared by its two presets.
_S3C: dict[str, Any] = {
    "env": {"num_envs": 1},
    "network": {"hidden": [32, 16, 8], "activation": "leaky_relu"},
    "dqn": {
        "gamma": 0.9,
        "lr": 5e-4,
        "batch_size": 64,
        "buffer_size": 10_000,
        "learning_starts": 64,
        "train_freq": 1,
        "gradient_steps": 1,
        "target_update": "soft",
        "tau": 1e-3,
        "n_step": 1,
        "double": False,
        "loss": "mse",
        "max_grad_norm": None,
    },
    "explore": {"schedule": "per_episode", "start": 1.0, "end": 0.2, "episode_decay": 0.99},
    "total_steps": 500_000,
    "total_episodes": 2500,
    "eval": {"every_steps": 5000, "episodes": 20, "early_stop": False, "deliver": "last", "stop_train_return": 400},
}

# S1 and S4 both come from PyTorch's DQN tutorial of the time and share its learning settings.
_PYTORCH_TUTORIAL: dict[str, Any] = {
    "dqn": {
        "gamma": 0.999,
        "optimizer": "rmsprop",
        "lr": 1e-2,
        "batch_size": 128,
        "buffer_size": 10_000,
        "learning_starts": 128,
        "train_freq": 1,
        "gradient_steps": 1,
        "target_update_every": 10,
        "target_update_unit": "episodes",
        "n_step": 1,
        "double": False,
        "max_grad_norm": None,
        "clip_grad_value": 1.0,
    },
    "explore": {"schedule": "exponential", "start": 0.9, "end": 0.05, "decay_steps": 200},
}

_S4: dict[str, Any] = {
    "env": {"id": "CartPole-v0", "num_envs": 1, "max_episode_steps": 10_000},
    "network": {"hidden": [256, 128], "batch_norm": True},
    **_PYTORCH_TUTORIAL,
    "total_steps": 50_000,
    "total_episodes": 3000,
    "eval": {"every_steps": 10_000, "episodes": 10, "early_stop": False, "deliver": "longest_episode"},
}

_S1: dict[str, Any] = {
    "env": {
        "id": "CartPole-v0",
        "num_envs": 1,
        "max_episode_steps": 10_000,
        "pixels": {
            "mode": "tutorial",
            "height": 40,
            "width": 90,
            "color": True,
            "frames": 2,
            "input": "difference",
        },
    },
    "network": {"conv": [[16, 5, 2], [32, 5, 2], [32, 5, 2]], "hidden": [], "batch_norm": True},
    **_PYTORCH_TUTORIAL,
    "total_steps": 100_000,
    "total_episodes": 50,
    "eval": {"every_steps": 5000, "episodes": 10, "early_stop": False, "deliver": "last"},
}

PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "default": (
        "Double DQN for CartPole-v1 tuned for reliability first, then speed: 128-128 MLP, 3-step "
        "returns, 8 vector envs, confirmed early stop; evaluated and delivered: a Polyak average of "
        "the online network (tau 0.001); TD targets bounded by the largest possible return. Trained "
        "on past its solve, it held on 38 of 40 held-out seeds.",
        {},
    ),
    "fast": (
        "The default with half the gradient steps on twice the batch (lr 4e-3) and without the "
        "policy average: about 25% faster than the default without it, a little less reliable, and "
        "it can collapse if trained past its solve (see BENCHMARKS.md).",
        {"dqn": {"batch_size": 256, "gradient_steps": 1, "lr": 4e-3, "target_update_every": 20}},
    ),
    # --- the source tutorials (../shared/SEEDS.md), hyperparameters kept, bugs not -------------
    "s0-keras": (
        "S0, the Keras-style fit loop: tanh 32-16, gamma 0.9, epsilon 0.1 minus 0.001 per action, "
        "hard sync every 200 gradient steps, one step per 5 actions, replay 2048 (warm-up 512), "
        "Adam 1e-2; a greedy validation episode after each of up to 600 training episodes, the best "
        "kept, patience 100.",
        _S0,
    ),
    "s0-keras-fixed": (
        "S0 fixed (BENCHMARKS.md, 'the tutorials fixed'): as s0-keras with no patience (it counted "
        "10-step episodes and stopped before learning), gamma 0.99 (at 0.9 the cart drifts off the "
        "track after 250-400 steps), 10 validation episodes, a stop once they reach 475, and up to 2000 episodes.",
        deep_merge(
            _S0,
            {
                "dqn": {"gamma": 0.99},
                "total_episodes": 2000,
                "eval": {"episodes": 10, "patience": None, "early_stop": True},
            },
        ),
    ),
    "s2-config": (
        "S2, the config-object DQN on CartPole-v0: ReLU 128-128, MSE, gradients clamped to [-1, 1], "
        "epsilon 0.9 to 0.05 (exponential, 200 steps), Adam 1e-3, batch 64, replay 10000, target "
        "copied every 10 episodes (a separate network, unlike the text), 200 training episodes.",
        _S2,
    ),
    "s2-config-fixed": (
        "S2 fixed (BENCHMARKS.md, 'the tutorials fixed'): as s2-config, but stopped once an "
        "evaluation reaches 195 (confirmed), judged on 100 episodes every 1000 steps (10 could not tell "
        "200 from 192), the best evaluated network delivered (the evaluations swing; the last one is "
        "a random point of the swing), and up to 400 episodes or 80k steps.",
        deep_merge(
            _S2,
            {
                "total_steps": 80_000,
                "total_episodes": 400,
                "eval": {"every_steps": 1000, "episodes": 100, "early_stop": True, "deliver": "best_eval"},
            },
        ),
    ),
    "s3b-tabular": (
        "S3b, the tutorial's Q-table: pole angle x angular velocity in 6 x 12 bins, discount 1, "
        "learning and exploration rates max(floor, min(1, 1 - log10((n + 1) / 25))) with floors 0.01 "
        "and 0.1, 1000 episodes capped at 100 steps.",
        {
            "algo": "tabular",
            "env": {"num_envs": 1, "max_episode_steps": 100},
            "tabular": {
                "dims": [2, 3],
                "bins": [6, 12],
                "low": [-0.41887903, -0.87266463],
                "high": [0.41887903, 0.87266463],
                "gamma": 1.0,
                "lr": 0.01,
                "lr_schedule": "log_episode",
            },
            "explore": {"schedule": "log_episode", "start": 1.0, "end": 0.1},
            "total_steps": 100_000,
            "total_episodes": 1000,
            "eval": {"every_steps": 2000, "episodes": 20, "early_stop": False, "deliver": "last", "threshold": 95},
        },
    ),
    "s3c-soft": (
        "S3c, DQN with soft target updates: leaky ReLU 32-16-8, Adam 5e-4, replay 10000, batch 64, "
        "gamma 0.9, tau 1e-3 after every gradient step, MSE, epsilon x0.99 per episode down to 0.2; "
        "stops at the first 400-step training episode (or 2500 episodes).",
        _S3C,
    ),
    "s3c-soft-fixed": (
        "S3c fixed (BENCHMARKS.md, 'the tutorials fixed'): as s3c-soft, but stopped once an evaluation "
        "of 100 greedy episodes reaches 475 (confirmed) instead of at the first 400-step training "
        "episode (played with epsilon 0.2, it says little about the greedy network), gamma 0.99 (at 0.9 "
        "the cart drifts off the track) and tau 1e-2 (at 1e-3 the target network lags too far for "
        "gamma 0.99: 4 of 10 seeds solved within 100k steps, against 10 of 10 within 75k).",
        deep_merge(
            _S3C,
            {
                "dqn": {"gamma": 0.99, "tau": 1e-2},
                "eval": {"episodes": 100, "early_stop": True, "stop_train_return": None},
            },
        ),
    ),
    "s3c-lucky": (
        "S3c's 'lucky' variant: as s3c-soft with lr 1e-3, replay 1000 and batch 512.",
        deep_merge(_S3C, {"dqn": {"lr": 1e-3, "batch_size": 512, "buffer_size": 1000, "learning_starts": 512}}),
    ),
    "s3d-ppo": (
        "S3d, the tutorial's PPO: actor and critic with one hidden layer of 100, one update of 10 "
        "epochs (minibatch 32) per episode, Monte-Carlo returns (GAE lambda 1), clip 0.2, gradient "
        "norm 0.5, actor lr 1e-3, critic lr 3e-3, gamma 0.99.",
        {
            "algo": "ppo",
            "env": {"num_envs": 1},
            "network": {"hidden": [100], "activation": "relu"},
            "ppo": {
                "n_steps": 500,
                "rollout_until_done": True,
                "epochs": 10,
                "minibatch_size": 32,
                "lr": 1e-3,
                "critic_lr": 3e-3,
                "lr_schedule": "constant",
                "gamma": 0.99,
                "gae_lambda": 1.0,
                "vf_coef": 1.0,
                "normalize_advantages": False,
            },
            "total_steps": 100_000,
            "eval": {"every_steps": 2000},
        },
    ),
    "s4-batchnorm": (
        "S4, the BatchNorm DQN on CartPole-v0 without its time limit (episodes capped at 10,000 "
        "steps): 256-128 with BatchNorm, RMSprop (lr 1e-2, torch's default), gamma 0.999, batch 128, "
        "replay 10000, Huber, gradients clamped to [-1, 1], target copied every 10 episodes; the "
        "network of the longest training episode is delivered. Budget 50k steps (the text: 3000 episodes).",
        _S4,
    ),
    "s4-batchnorm-fixed": (
        "S4 fixed (BENCHMARKS.md, 'the tutorials fixed'): as s4-batchnorm, but stopped once an "
        "evaluation of 100 greedy episodes reaches 195 (confirmed), the best evaluation delivered "
        "instead of the network of the longest training episode (played with epsilon 0.05, it says "
        "little about the greedy network), and evaluated every 2500 steps on 100 episodes instead of "
        "every 10,000 on 10 (the evaluations swing from about 100 to several thousand within 5k steps, "
        "and a sparse schedule misses the good networks).",
        deep_merge(_S4, {"eval": {"every_steps": 2500, "episodes": 100, "early_stop": True, "deliver": "best_eval"}}),
    ),
    "s1-pixels": (
        "S1, the pixel tutorial, as it was set up: CartPole-v0 without its time limit (episodes capped "
        "at 10,000 steps), S1's colour 3x40x90 view centred on the cart, the state the difference of "
        "the last two frames, conv 16-32-32 (kernel 5, stride 2) with BatchNorm and a linear head, "
        "RMSprop (lr 1e-2, torch's default), gamma 0.999, batch 128, replay 10000, Huber, gradients "
        "clamped to [-1, 1], epsilon 0.9 to 0.05 (exponential, 200 steps), target copied every 10 "
        "episodes, 50 episodes (the text suggests 300+: --set total_episodes=300).",
        _S1,
    ),
    "s1-pixels-fixed": (
        "S1 fixed (BENCHMARKS.md, 'the tutorials fixed'): as s1-pixels, but without BatchNorm (the "
        "loss's Q(s, a) is computed with batch statistics, the targets and the actions with running "
        "ones), lr 1e-3 (at 1e-2 nothing learns), Double DQN with 3-step returns, "
        "epsilon falling over 5000 steps (not 200), a gradient step per 4 env steps (S1 takes one per "
        "step: 4x the CPU), stopped once 100 evaluation episodes reach 195 (confirmed), evaluated every "
        "1000 steps (its good networks do not last: every 2500 missed them on 2 of 10 seeds), the "
        "best evaluation delivered, and up to 300 episodes (not 50).",
        deep_merge(
            _S1,
            {
                "network": {"batch_norm": False},
                "dqn": {"lr": 1e-3, "double": True, "n_step": 3, "train_freq": 4},
                "explore": {"decay_steps": 5000},
                "total_episodes": 300,
                "eval": {"every_steps": 1000, "episodes": 100, "early_stop": True, "deliver": "best_eval"},
            },
        ),
    ),
    # --- other algorithms and baselines -----------------------------------------------------
    "ppo": (
        "PPO for CartPole-v1: tanh 64-64 actor and critic, 8 vector envs x 32 steps, 20 epochs of "
        "minibatch 256, GAE (gamma 0.98, lambda 0.8), clip 0.2, lr 1e-3 decayed linearly.",
        {
            "algo": "ppo",
            "network": {"hidden": [64, 64], "activation": "tanh"},
            "total_steps": 100_000,
            "eval": {"every_steps": 2000},
        },
    ),
    "pqn": (
        "PQN for CartPole-v1: Q(lambda 0.65) on rollouts of 16 vector envs x 16 steps, 2 epochs of 4 "
        "minibatches, a relu 128-128 Q-network with LayerNorm, no replay and no target network, lr 3e-3 "
        "decayed linearly, epsilon 1 -> 0.05 over 5k steps.",
        {
            "algo": "pqn",
            "env": {"num_envs": 16},
            "network": {"layer_norm": True},
            "pqn": {"n_steps": 16, "lr": 3e-3},
            "explore": {"decay_steps": 5_000},
            "total_steps": 100_000,
            "eval": {"every_steps": 2000},
        },
    ),
    "tabular": (
        "Tabular Q-learning with our discretisation: all four dimensions in 3 x 3 x 8 x 8 bins, "
        "lr 0.1, gamma 0.99, epsilon falling as log10 of the episode to 0.05.",
        {
            "algo": "tabular",
            "env": {"num_envs": 1},
            "explore": {"schedule": "log_episode", "start": 1.0, "end": 0.05},
            "total_steps": 300_000,
            "eval": {"every_steps": 5000},
        },
    ),
    # --- the "later work" of S4: targets and robustness ---------------------------------------
    "target": (
        "DQN on dqnlab/CartPoleTarget-v0: balance and stop the cart within 0.1 m of a random target "
        "in [-1.5, 1.5]. Trains on the task's reward with a sharper peak at the target (margin "
        "0.25 m), evaluates on the registered one (the success test is the same); the default DQN "
        "with 4 gradient steps per update, lr 2e-3 decayed linearly, replay 100k, target copied every "
        "200 gradient steps; solved, stopped and delivered by a success rate of 95% over 100 episodes "
        "(stopping needs 95% plus three standard errors, about 99%).",
        {
            "env": {"id": "dqnlab/CartPoleTarget-v0", "kwargs": {"margin": 0.25}},
            "dqn": {
                "lr": 2e-3,
                "lr_schedule": "linear",
                "buffer_size": 100_000,
                "gradient_steps": 4,
                "target_update_every": 200,
            },
            "total_steps": 500_000,
            "eval": {
                "every_steps": 5000,
                "episodes": 100,
                "success_threshold": 0.95,
                "stop_z": 3.0,
                "env": {"kwargs": {"margin": 0.5}},
            },
        },
    ),
    "target-ppo": (
        "PPO on dqnlab/CartPoleTarget-v0 (the ppo preset's settings, 200k steps), solved, stopped "
        "and delivered by a success rate of 95% over 100 episodes.",
        {
            "algo": "ppo",
            "env": {"id": "dqnlab/CartPoleTarget-v0"},
            "network": {"hidden": [64, 64], "activation": "tanh"},
            "total_steps": 200_000,
            "eval": {"every_steps": 5000, "episodes": 100, "success_threshold": 0.95},
        },
    ),
    "target-lqr": (
        "Baseline for dqnlab/CartPoleTarget-v0: the LQR regulating the cart to the target (the "
        "offset x - target in place of x), pushing in the sign of its force.",
        {
            "algo": "baseline",
            "env": {"id": "dqnlab/CartPoleTarget-v0"},
            "baseline": {"controller": "target_lqr"},
            "total_steps": 5000,
            "eval": {"success_threshold": 0.95},
        },
    ),
    "robust": (
        "PPO trained under observation noise (sigma 0.05 on every dimension) and randomised physics "
        "(pole half-length 0.4-0.6 m, cart mass 0.8-1.2 kg) on 10,000-step episodes with a long "
        "horizon (gamma 0.999, GAE lambda 0.95), so that drifting off the track costs: a controller "
        "that holds under noise and far past 500 steps. Evaluated on the clean environment (no noise, "
        "nominal physics), where a slow drift would show.",
        {
            "algo": "ppo",
            "env": {
                "obs_noise": 0.05,
                "max_episode_steps": 10_000,
                "randomize": {"length": [0.4, 0.6], "masscart": [0.8, 1.2]},
            },
            "network": {"hidden": [64, 64], "activation": "tanh"},
            "ppo": {"gamma": 0.999, "gae_lambda": 0.95},
            "total_steps": 400_000,
            "eval": {
                "threshold": 9500,
                "every_steps": 20_000,
                "episodes": 10,
                "env": {"obs_noise": 0.0, "randomize": {}},
            },
        },
    ),
    "pixels": (
        "DQN from pixels on CartPole-v1: grayscale 32x96 frames of the whole track (the cart's position "
        "in view), the network reading the last frame and its difference from the previous one, "
        "conv 16 (8x8, stride 4) and 32 (4x4, stride 2) and a 256 hidden layer, Double DQN with "
        "3-step returns, lr 2e-3, 8 vector envs, frames kept as uint8 in replay; evaluated and "
        "delivered: a Polyak average of the online network (tau 0.01); TD targets bounded.",
        {
            "env": {"pixels": {"mode": "track", "height": 32, "width": 96, "frames": 2}},
            "network": {"conv": [[16, 8, 4], [32, 4, 2]], "hidden": [256]},
            "dqn": {
                "lr": 2e-3,
                "batch_size": 64,
                "buffer_size": 25_000,
                "learning_starts": 2000,
                "train_freq": 8,
                "gradient_steps": 1,
                "target_update_every": 100,
                "policy_average_tau": 0.01,
            },
            "explore": {"decay_steps": 10_000},
            "total_steps": 150_000,
            "checkpoint_every": 25_000,
            "eval": {"every_steps": 5000, "episodes": 20},
        },
    ),
    # --- beyond CartPole: tuned for other Gymnasium tasks (chosen by --env, see ENV_PRESETS) ----
    "acrobot": (
        "DQN for Acrobot-v1: the default network and Double DQN with 3-step returns, squared loss, "
        "lr 1e-3, 4 gradient steps of batch 512 per 8 env steps; 49,992 steps (8 envs stepping "
        "together end a run within 7 steps of it: at most half the RL Zoo's 100k), evaluated "
        "every 2000 steps on 100 episodes (cut short once hopeless: no step pays more than 0), "
        "stopped at -72.",
        {
            "env": {"id": "Acrobot-v1"},
            "dqn": {"loss": "mse", "lr": 1e-3, "batch_size": 512, "gradient_steps": 4},
            "total_steps": 49_992,
            "eval": {
                "every_steps": 2000,
                "episodes": 100,
                "threshold": -77,
                "stop_threshold": -72,
                "max_return_to_go": 0.0,
            },
        },
    ),
    "mountaincar": (
        "DQN for MountainCar-v0: the default DQN exploring with random actions held for 16 steps "
        "(explore.hold), which cross the valley where one-step dithering never does, epsilon 1 to "
        "0.01 over 20k steps; observations scaled to [-1, 1] (network.input_scaling), 4 gradient "
        "steps per update; 59,992 steps (8 envs stepping together end a run within 7 steps of it: "
        "at most half the RL Zoo's 120k), evaluations cut short once hopeless; the policy average "
        "(tau 0.001) and bounded TD targets, which keep Q-values from diverging.",
        {
            "env": {"id": "MountainCar-v0"},
            "network": {"input_scaling": "bounds"},
            "dqn": {"gradient_steps": 4, "policy_average_tau": 0.001},
            "explore": {"hold": 16, "decay_steps": 20_000, "end": 0.01},
            "total_steps": 59_992,
            "eval": {
                "every_steps": 2000,
                "episodes": 100,
                "threshold": -101,
                "stop_threshold": -99,
                "max_return_to_go": 0.0,
            },
        },
    ),
    "lunarlander": (
        "DQN for LunarLander-v3 (needs Box2D: pip install 'dqnlab[box2d]'): the default DQN, 49,992 "
        "steps (8 envs stepping together end a run within 7 steps of it: at most half the RL Zoo's "
        "100k), evaluated every 2500 steps on 50 episodes, stopped at 220.",
        {
            "env": {"id": "LunarLander-v3"},
            "total_steps": 49_992,
            "eval": {"every_steps": 2500, "episodes": 50, "threshold": 200, "stop_threshold": 220},
        },
    ),
    "random": (
        "Baseline: uniformly random actions.",
        {"algo": "baseline", "baseline": {"controller": "random"}, "total_steps": 5000},
    ),
    "angle-rule": (
        "Baseline (S3a): push right when the pole leans right, else left.",
        {"algo": "baseline", "baseline": {"controller": "angle"}, "total_steps": 5000},
    ),
    "lqr": (
        "Baseline: LQR on the linearised cart-pole, pushing in the sign of its force; an upper "
        "reference for how long balance can last.",
        {"algo": "baseline", "baseline": {"controller": "lqr"}, "total_steps": 5000},
    ),
}

# dqn.policy_average_tau and dqn.bound_targets (issue #16) are on in `default` (their field
# defaults), `pixels` (tau 0.01) and `mountaincar`, each measured with them (BENCHMARKS.md). The
# presets below were tuned and measured without them and keep them off, so that their figures
# still describe them; a tutorial preset reproduces its tutorial, which had neither.
TUNED_WITHOUT_STABILITY_AIDS = (
    "fast",
    "s0-keras",
    "s0-keras-fixed",
    "s2-config",
    "s2-config-fixed",
    "s3c-soft",
    "s3c-soft-fixed",
    "s3c-lucky",
    "s4-batchnorm",
    "s4-batchnorm-fixed",
    "s1-pixels",
    "s1-pixels-fixed",
    "target",
    "acrobot",
    "lunarlander",
)
for _name in TUNED_WITHOUT_STABILITY_AIDS:
    PRESETS[_name] = (PRESETS[_name][0], deep_merge(PRESETS[_name][1], {"dqn": DQN_STABILITY_AIDS_OFF}))

ENV_PRESETS: dict[str, str] = {
    "Acrobot-v1": "acrobot",
    "MountainCar-v0": "mountaincar",
    "LunarLander-v3": "lunarlander",
}
"""The preset tuned for an environment: `dqnlab train --env ID` (and ``build_config(env=ID)``)
without a preset starts from it."""


def preset_for_env(env_id: object) -> str | None:
    """The preset tuned for `env_id`, or None (also for anything that is not an env id, such as a
    whole `env` section passed as a mapping)."""
    return ENV_PRESETS.get(env_id) if isinstance(env_id, str) else None


def preset_names() -> list[str]:
    return list(PRESETS)


def preset_description(name: str) -> str:
    return PRESETS[name][0]


def preset_dict(name: str) -> dict[str, Any]:
    """The overrides of preset ``name`` (a deep copy), or a ConfigError naming the closest one."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name[:100], PRESETS, n=1)  # its cost grows with the name's length
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"unknown preset {preview(name, 60)}{hint} (available: {', '.join(PRESETS)}; see 'dqnlab presets')"
        )
    return copy.deepcopy(PRESETS[name][1])
