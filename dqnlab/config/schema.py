"""Typed, validated run configuration.

A config is a preset (``dqnlab.config.presets``) or a YAML file, plus ``--set section.key=value``
overrides. Every field is documented where it is declared; ``dqnlab presets --show NAME`` prints
a resolved config. Validation errors become one line naming the key and what is allowed.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dqnlab.config.algorithms import ALGORITHM_SECTIONS, ALGORITHMS
from dqnlab.core.errors import ConfigError, preview

# Upper bounds of size- and count-like fields. Generous for real use, they exist so that a typo
# or a sweep drawing 1e299 fails at once with one line instead of after an hour, or by running
# out of memory; the memory a run will need is estimated separately before it starts.
MAX_STEPS = 10**10
"""Environment steps, episodes and every period counted in them (about a year of CartPole at
300k steps per second)."""
MAX_EVAL_EPISODES = 10**6
"""Episodes of one evaluation."""
MAX_SHORTLIST = 100
"""Networks of eval.shortlist, kept in memory (and in checkpoints) at once."""
MAX_QUANTILES = 200
"""Quantiles per action of a QR-DQN network (dqn.n_quantiles; the loss compares N x N pairs per
sample, which the memory estimate counts). 200 is QR-DQN's Atari setting."""
MAX_ENVS = 4096
"""Environments stepped together (training and evaluation)."""
MAX_BUFFER = 10**9
"""Replay capacity in transitions."""
MAX_BATCH = 10**6
"""Samples in one gradient step (DQN batch, PPO minibatch)."""
MAX_UNITS = 65536
"""Units of one hidden layer, and channels of one convolution."""
MAX_LAYERS = 64
"""Hidden layers, and convolutions."""
MAX_KERNEL = 600
"""Kernel size and stride of a convolution: the widest frame (env.pixels.width)."""
MAX_TABLE_CELLS = 10**8
"""Cells of a Q-table (the product of tabular.bins)."""
MAX_THREADS = 256
"""torch intra-op threads."""
MAX_GRADIENT_STEPS = 10**5
"""Gradient steps per update, and PPO epochs per rollout."""
MAX_ROLLOUT_STEPS = 10**6
"""PPO steps per environment in one rollout."""

VECTOR_KWARGS = ("vector_kwargs", "autoreset_mode", "vectorization_mode", "wrappers", "num_envs", "max_episode_steps")
"""Arguments of Gymnasium's make_vec that dqnlab sets itself. In env.kwargs they would reach
make_vec too: `vector_kwargs: {autoreset_mode: SameStep}` would change how episodes restart,
which dqnlab's loops assume (NEXT_STEP), and the run would train silently wrong."""


class _Section(BaseModel):
    # allow_inf_nan: a threshold of .inf or a bound of .nan is never meant, and would end up in
    # summary.json, where JSON has no way to write it.
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=False, allow_inf_nan=False)


class RandomizeConfig(_Section):
    """Physics randomisation (CartPole-style environments only): each range set here is drawn
    from uniformly, per environment, at every episode start. The total mass and pole-mass-length
    are always derived from the drawn masses and length."""

    length: tuple[float, float] | None = None
    """[lo, hi] of HALF the pole length in m, as Gymnasium's `length` (nominal 0.5; None: fixed)."""
    masspole: tuple[float, float] | None = None
    """[lo, hi] of the pole mass in kg (nominal 0.1; None: fixed)."""
    masscart: tuple[float, float] | None = None
    """[lo, hi] of the cart mass in kg (nominal 1.0; None: fixed)."""
    force_mag: tuple[float, float] | None = None
    """[lo, hi] of the push force in N (nominal 10; None: fixed)."""

    @model_validator(mode="after")
    def _valid_ranges(self) -> RandomizeConfig:
        for name, bounds in self.ranges().items():
            lo, hi = bounds
            if not 0 < lo <= hi:
                raise ValueError(f"env.randomize.{name} must be [lo, hi] with 0 < lo <= hi, got [{lo}, {hi}]")
        return self

    def ranges(self) -> dict[str, tuple[float, float]]:
        """{name: (lo, hi)} of the randomised constants."""
        return {name: value for name, value in self if value is not None}


class PixelConfig(_Section):
    """Observations rendered as images of the CartPole scene (CartPole-v0/v1 only; see
    dqnlab/pixels). The environment still simulates the state; each observation becomes the last
    `frames` frames drawn from it (a per-environment history, restarted at every episode start)."""

    mode: Literal["off", "tutorial", "track"] = "off"
    """`off`: the state vector. `tutorial`: S1's view, rows 40-80% of Gymnasium's 600x400 screen
    and a window 60% of its width centred on the cart (clamped at the edges), so the cart's own
    position is invisible. `track`: the same rows across the whole width, so the cart's position
    on the track is in view."""
    height: int = Field(default=32, ge=8, le=400)
    """Frame height in pixels (the view's 160 screen rows scaled to this)."""
    width: int = Field(default=96, ge=8, le=600)
    """Frame width in pixels (`tutorial`: its 360 screen columns, `track`: all 600, scaled to this)."""
    color: bool = False
    """RGB frames (3 channels) instead of grayscale (1 channel, Pillow's luma)."""
    frames: int = Field(default=2, ge=1, le=8)
    """Frames per observation, oldest first, stacked along the channel axis. At an episode start
    the history is filled with that episode's first frame."""
    input: Literal["frames", "difference", "last_and_difference"] = "last_and_difference"
    """What the Q-network reads. `frames`: all `frames` frames. `difference`: the last frame minus
    the one before (S1's state, zero at an episode start). `last_and_difference`: the last frame
    and DIFFERENCE_GAIN times that difference, as channels (velocities at a glance). Except for
    `difference`, intensities are inverted (the white background becomes 0). Both differences
    need `frames` 2. Frames are stored as uint8 in every case."""

    @model_validator(mode="after")
    def _consistent(self) -> PixelConfig:
        if self.mode == "off":
            changed = [
                name
                for name, field in type(self).model_fields.items()
                if name != "mode" and getattr(self, name) != field.get_default()
            ]
            if changed:
                raise ValueError(
                    f"env.pixels.{changed[0]} has no effect unless env.pixels.mode is "
                    "'tutorial' or 'track'; remove it or set the mode"
                )
        if self.input != "frames" and self.frames != 2:
            raise ValueError(
                f"env.pixels.input '{self.input}' subtracts the previous frame from the last one: "
                f"it needs env.pixels.frames 2, got {self.frames}"
            )
        return self

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @property
    def channels(self) -> int:
        """Channels per frame."""
        return 3 if self.color else 1

    def obs_shape(self) -> tuple[int, int, int]:
        """(frames * channels, height, width) of one observation."""
        return (self.frames * self.channels, self.height, self.width)


def conv_output_hw(height: int, width: int, conv: list[tuple[int, int, int]]) -> tuple[int, int]:
    """Spatial size after unpadded convolutions (out_channels, kernel, stride): each maps
    n to (n - kernel) // stride + 1."""
    for _, kernel, stride in conv:
        height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    return height, width


class EnvConfig(_Section):
    id: str = Field(default="CartPole-v1", min_length=1, max_length=200)
    """Gymnasium environment id: any with a Discrete action space and a flat Box observation."""
    num_envs: int = Field(default=8, ge=1, le=MAX_ENVS)
    """Number of vectorised training environments stepped together."""
    max_episode_steps: int | None = Field(default=None, ge=1, le=MAX_STEPS)
    """Override the registered time limit (None keeps it). Reaching it truncates, and truncated
    transitions are bootstrapped."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments for the environment's constructor, e.g. `{target_range: [1.0, 1.0]}`
    (a fixed target) or `{move_prob: 0.005}` for dqnlab/CartPoleTarget-v0."""
    obs_noise: float | list[float] = 0.0
    """Standard deviation of Gaussian noise added to every observation the agent sees (the true
    state is untouched): one value for all dimensions, or one per dimension. Any environment."""
    action_noise: float = Field(default=0.0, ge=0.0, le=1.0)
    """Probability that the agent's action is replaced by one drawn uniformly from all actions
    (possibly the same one: with 2 actions it flips with half this probability). Any environment."""
    force_noise: float = Field(default=0.0, ge=0.0)
    """CartPole-style environments only: each push is force_mag * max(0, 1 + force_noise * N(0, 1)),
    a relative Gaussian error on its magnitude that never reverses it."""
    randomize: RandomizeConfig = Field(default_factory=RandomizeConfig)
    """Physics randomisation per episode (CartPole-style environments only)."""
    pixels: PixelConfig = Field(default_factory=PixelConfig)
    """Learn from rendered frames instead of the state vector (CartPole-v0/v1, algo dqn)."""

    @model_validator(mode="after")
    def _valid_obs_noise(self) -> EnvConfig:
        values = self.obs_noise if isinstance(self.obs_noise, list) else [self.obs_noise]
        if not values or any(not 0.0 <= v < float("inf") for v in values):
            raise ValueError(f"env.obs_noise must be one or more finite values >= 0, got {preview(self.obs_noise)}")
        for key in self.kwargs:
            if key == "max_episode_steps":
                raise ValueError("env.kwargs.max_episode_steps: set env.max_episode_steps instead")
            if key in VECTOR_KWARGS:
                raise ValueError(
                    f"env.kwargs.{key} is an argument of Gymnasium's make_vec, which dqnlab sets "
                    "itself (NEXT_STEP autoreset, env.num_envs copies); remove it"
                )
        _check_finite(self.kwargs, "env.kwargs")
        return self

    def perturbed(self) -> bool:
        """Whether any noise or physics randomisation is configured."""
        noise = self.obs_noise if isinstance(self.obs_noise, list) else [self.obs_noise]
        return any(noise) or self.action_noise > 0 or self.force_noise > 0 or bool(self.randomize.ranges())


class NetworkConfig(_Section):
    hidden: list[int] = Field(default_factory=lambda: [128, 128])
    """Sizes of the hidden layers of the MLP (may be empty: a linear function of the observation)."""
    activation: Literal["relu", "tanh", "leaky_relu"] = "relu"
    """Nonlinearity after each hidden layer."""
    batch_norm: bool = False
    """BatchNorm1d after each hidden linear layer (before the activation). Acting and targets use
    the running statistics (eval mode); only gradient steps use batch statistics."""
    layer_norm: bool = False
    """LayerNorm after each hidden linear layer (before the activation): normalises each sample's
    features, so unlike BatchNorm it acts the same in training and acting. PQN relies on it in
    place of a target network (Gallici et al. 2024)."""
    conv: list[tuple[int, int, int]] = Field(default_factory=list)
    """Pixel observations (env.pixels) only: convolutions (out_channels, kernel, stride), no
    padding, each followed by [BatchNorm2d and] the activation, applied before the `hidden`
    layers. Empty: the hidden layers read the flattened frames."""
    input_scaling: Literal["none", "bounds"] = "none"
    """DQN on state vectors: `bounds` maps each observation dimension linearly from the
    observation space's [low, high] to [-1, 1] before the first layer (a dimension with an
    infinite bound is left as it is), so that inputs of very different scales weigh alike from
    the start (MountainCar's position spans 1.8, its velocity 0.14). The map is part of the
    delivered network: policy.pt and its exports take raw observations. `none`: raw inputs."""
    dueling: bool = False
    """Dueling architecture (Wang et al. 2016): the last hidden layer feeds two linear heads, a
    state value V(s) and advantages A(s, a), combined as Q = V + A - mean_a A. No extra hidden
    layer per head. With `hidden` empty both heads read the observation directly."""

    @model_validator(mode="after")
    def _positive_sizes(self) -> NetworkConfig:
        check_hidden(self.hidden, "network.hidden")
        if self.batch_norm and self.layer_norm:
            raise ValueError("network.batch_norm and network.layer_norm: choose one normalisation")
        if len(self.conv) > MAX_LAYERS:
            raise ValueError(f"network.conv: at most {MAX_LAYERS} convolutions, got {len(self.conv)}")
        if any(min(layer) < 1 for layer in self.conv):
            raise ValueError("network.conv: channels, kernel and stride must all be >= 1")
        if any(ch > MAX_UNITS or kernel > MAX_KERNEL or stride > MAX_KERNEL for ch, kernel, stride in self.conv):
            raise ValueError(
                f"network.conv: channels must be at most {MAX_UNITS}, kernel and stride at most {MAX_KERNEL}"
            )
        return self


def check_hidden(hidden: list[int], key: str) -> None:
    """ValueError unless `hidden` is at most MAX_LAYERS sizes in [1, MAX_UNITS]."""
    if len(hidden) > MAX_LAYERS:
        raise ValueError(f"{key}: at most {MAX_LAYERS} hidden layers, got {len(hidden)}")
    if any(not 1 <= h <= MAX_UNITS for h in hidden):
        raise ValueError(f"{key}: every layer size must be between 1 and {MAX_UNITS}")


def _check_finite(value: Any, key: str, depth: int = 0) -> None:
    """ValueError if a float anywhere in `value` (nested dicts and lists) is inf or nan."""
    if depth > 20:
        raise ValueError(f"{key} is nested too deeply")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{key} must hold finite numbers only, got {value}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{key}.{k}", depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_finite(v, key, depth + 1)


class DQNConfig(_Section):
    gamma: float = Field(default=0.99, ge=0.0, le=1.0)
    """Discount factor."""
    lr: float = Field(default=3e-3, gt=0.0, le=1.0)
    """Learning rate of the optimizer."""
    lr_schedule: Literal["constant", "linear"] = "constant"
    """A constant `lr`, or `lr` decayed linearly to 0 over `total_steps` (finer steps late in
    training, for tasks where the last few centimetres matter)."""
    optimizer: Literal["adam", "adamw", "rmsprop"] = "adam"
    """Optimizer for the Q-network."""
    batch_size: int = Field(default=128, ge=1, le=MAX_BATCH)
    """Transitions per gradient step."""
    buffer_size: int = Field(default=50_000, ge=1, le=MAX_BUFFER)
    """Replay capacity in transitions (preallocated)."""
    learning_starts: int = Field(default=1_000, ge=0, le=MAX_STEPS)
    """Environment steps collected before the first gradient step."""
    train_freq: int = Field(default=8, ge=1, le=MAX_STEPS)
    """Environment steps (transitions, over all vectorised envs) between updates."""
    gradient_steps: int = Field(default=2, ge=1, le=MAX_GRADIENT_STEPS)
    """Gradient steps per update."""
    target_update: Literal["hard", "soft"] = "hard"
    """Hard copy of the online network every `target_update_every` units, or soft (Polyak)
    averaging with `tau` after every gradient step."""
    target_update_every: int = Field(default=50, ge=1, le=MAX_STEPS)
    """For hard updates: the period, in `target_update_unit`."""
    target_update_unit: Literal["steps", "episodes"] = "steps"
    """For hard updates: count gradient steps or finished training episodes."""
    tau: float = Field(default=0.005, gt=0.0, le=1.0)
    """For soft updates: target <- tau * online + (1 - tau) * target after each gradient step."""
    policy_average_tau: float | None = Field(default=0.001, gt=0.0, le=1.0)
    """The network evaluated, kept as the best and delivered: None, the online network itself;
    a number, a Polyak average of the online network's weights, avg <- avg + tau * (online -
    avg) after every gradient step (weight averaging, as in Nikishin et al. 2018). Training
    still acts and learns with the online network; the average smooths over the few thousand
    steps in which a greedy policy forgets what it had solved (BENCHMARKS.md, "collapse")."""
    bound_targets: bool = True
    """Clamp every TD target to [-B, B], B = max |reward| / (1 - gamma) over the rewards collected
    so far: no discounted return of those rewards lies outside, so a target beyond B is the
    bootstrap's overestimate feeding on itself (the divergence guard's bound, enforced rather than
    only watched; no bound for gamma 1). On CartPole it kept |Q| within 1.2x its bound on runs
    whose values had drifted to 1.6-3.8x it and collapsed (BENCHMARKS.md, "Bounded targets")."""
    n_step: int = Field(default=3, ge=1, le=100)
    """Bootstrap after n steps: targets sum n discounted rewards before the network's estimate."""
    double: bool = True
    """Double DQN: the online network picks the next action, the target network values it."""
    loss: Literal["huber", "mse"] = "huber"
    """TD loss: Huber (smooth L1, delta 1) or mean squared error."""
    n_quantiles: int | None = Field(default=None, ge=2, le=MAX_QUANTILES)
    """QR-DQN (Dabney et al. 2018): the network gives N quantiles of each action's return instead
    of its mean, trained by the quantile Huber loss against the N quantiles of the next action's
    TD targets; Q(s, a), which acts and picks the next action, is the quantiles' mean (null: plain
    DQN, one expected value per action). The delivered policy is an ordinary Q-network (the mean
    is its last step). Plain and LayerNorm/BatchNorm MLPs only (not dueling, not pixels); the
    loss is always the quantile Huber loss, so `loss` must be 'huber' (its default; presets that
    set 'mse' need `dqn.loss=huber` beside it). A gradient step compares batch x N x N pairs."""
    max_grad_norm: float | None = Field(default=10.0, gt=0.0)
    """Clip the global gradient norm to this value (None: no norm clipping)."""
    clip_grad_value: float | None = Field(default=None, gt=0.0)
    """Clamp every gradient element to [-v, v] (None: no value clipping)."""
    replay_sampling: Literal["uniform", "sequential"] = "uniform"
    """Uniform sampling, or one random contiguous slice of the buffer per batch (a tutorial's mode)."""
    prioritized: bool = False
    """Prioritised experience replay (Schaul et al. 2016, proportional): sample transition i with
    probability p_i^alpha / sum_k p_k^alpha, p_i = |TD error| + `per_eps`, and weight its loss by
    the importance weight (N * P(i))^-beta normalised by the batch's largest weight."""
    per_alpha: float = Field(default=0.6, ge=0.0, le=1.0)
    """Prioritised replay: priority exponent (0: uniform sampling, 1: fully proportional)."""
    per_beta_start: float = Field(default=0.4, ge=0.0, le=1.0)
    """Prioritised replay: importance-sampling exponent at step 0, annealed linearly to 1."""
    per_beta_steps: int = Field(default=50_000, ge=1, le=MAX_STEPS)
    """Prioritised replay: environment steps over which beta goes from `per_beta_start` to 1."""
    per_eps: float = Field(default=1e-6, gt=0.0)
    """Prioritised replay: added to |TD error| so that no transition gets probability zero."""
    fast_path: bool = True
    """Use the hand-written forward/backward (dqnlab.nn.fast_mlp) for plain MLPs; false: always
    autograd (the reference). Same loss and gradients up to float rounding."""

    @model_validator(mode="after")
    def _prioritized_needs_random_sampling(self) -> DQNConfig:
        if self.prioritized and self.replay_sampling == "sequential":
            raise ValueError(
                "dqn.prioritized samples by priority; it cannot be combined with dqn.replay_sampling='sequential'"
            )
        return self


class ExploreConfig(_Section):
    schedule: Literal["linear", "exponential", "decrement", "per_episode", "log_episode", "constant"] = "linear"
    """Epsilon schedule: linear over `decay_steps`; exponential with time constant `decay_steps`;
    `decrement` subtracted per action; multiplied by `episode_decay` per finished episode;
    `log_episode`: min(start, 1 - log10((episode + 1) / log_divisor)) floored at `end` (the
    tabular tutorial's); or constant at `start`."""
    start: float = Field(default=1.0, ge=0.0, le=1.0)
    """Epsilon at step 0."""
    end: float = Field(default=0.05, ge=0.0, le=1.0)
    """Final epsilon (the floor of every decaying schedule)."""
    decay_steps: int = Field(default=5_000, ge=1, le=MAX_STEPS)
    """Linear: steps to go from start to end. Exponential: the time constant in steps."""
    decrement: float = Field(default=0.001, ge=0.0, le=1.0)
    """Decrement schedule: subtracted per environment step (action sampled)."""
    episode_decay: float = Field(default=0.99, gt=0.0, le=1.0)
    """Per-episode schedule: multiplier applied after each finished training episode."""
    log_divisor: float = Field(default=25.0, gt=0.0)
    """log_episode schedule: epsilon starts to fall below 1 after this many episodes."""
    hold: int = Field(default=1, ge=1, le=MAX_STEPS)
    """DQN: the most steps one exploratory random action is held (temporally extended
    epsilon-greedy, Dabney et al. 2021, "ez-greedy"). 1 is plain epsilon-greedy. Above 1, an
    environment that is not holding an action starts one with probability epsilon: a uniformly
    random action, repeated for a duration drawn as `hold_duration` says (the greedy action is
    taken otherwise). An episode's end cuts a hold short. Dithering one step at a time cannot
    cross a long valley (MountainCar-v0 never reaches its goal that way); a held action can."""
    hold_duration: Literal["fixed", "zeta"] = "fixed"
    """How long each exploratory action is held: `fixed`, exactly `hold` steps; `zeta`, n steps
    with P(n) proportional to n^-`hold_zeta` (mostly short, sometimes long), capped at `hold`."""
    hold_zeta: float = Field(default=2.0, gt=1.0, le=10.0)
    """The exponent mu of the zeta distribution of hold durations (Dabney et al. use 2)."""


EVAL_ENV_KEYS = ("max_episode_steps", "kwargs", "obs_noise", "action_noise", "force_noise", "randomize")
"""The env fields that eval.env may change: those that leave the observation and action spaces alone."""


class EvalConfig(_Section):
    every_steps: int = Field(default=1_000, ge=1, le=MAX_STEPS)
    """Evaluate the greedy policy every this many environment steps during training."""
    episodes: int = Field(default=100, ge=1, le=MAX_EVAL_EPISODES)
    """Episodes per evaluation during training, run in parallel on vectorised envs (100 in
    parallel cost about as much as 20: the longest episode sets the time)."""
    final_episodes: int = Field(default=100, ge=1, le=MAX_EVAL_EPISODES)
    """Episodes, on seeds never used in training, for the final evaluation of the delivered policy."""
    early_stop: bool = True
    """Stop training once an evaluation mean reaches `threshold`."""
    threshold: float | None = None
    """Reward threshold for early stopping and `solved` (None: the environment's registered
    reward_threshold, 475 for CartPole-v1, 195 for v0)."""
    success_threshold: float | None = Field(default=None, gt=0.0, le=1.0)
    """For tasks that report success per episode (info["success"] on the last step, as in
    dqnlab/CartPoleTarget-v0): the share of successful episodes that solves the task. When set,
    it replaces the return threshold: `solved`, early stopping (the success rate minus `stop_z`
    binomial standard errors must reach it, and the confirmation too) and the best evaluation
    (highest success rate, then mean return) all go by success. None: by return."""
    stop_threshold: float | None = None
    """Early stopping needs an evaluation mean of at least this (None: `threshold`). A margin
    above `threshold` makes it likelier that the delivered policy also passes the final
    evaluation on fresh episodes."""
    stop_z: float = Field(default=2.0, ge=0.0)
    """Early stopping needs the evaluation mean minus `stop_z` standard errors
    (z * std / sqrt(episodes)) to reach the stop threshold: a margin that scales with how
    uncertain the evaluation is (0: the mean alone)."""
    confirm: bool = True
    """Before stopping early, evaluate the candidate again on as many other episodes; stop only
    if that mean also reaches the stop threshold (one lucky evaluation is not a solve)."""
    max_envs: int = Field(default=100, ge=1, le=MAX_ENVS)
    """At most this many evaluation environments run at once."""
    every_episodes: int | None = Field(default=None, ge=1, le=MAX_STEPS)
    """Evaluate after every this many finished training episodes instead of every `every_steps`
    environment steps (a tutorial's validation episode per epoch is 1, with `episodes` 1)."""
    fresh_starts: bool = False
    """Draw new start states at every evaluation during training (a tutorial's validation
    episode). Off, every evaluation replays the same starts, so two evaluations differ only by
    the policy: the better comparison with many episodes."""
    patience: int | None = Field(default=None, ge=1, le=MAX_STEPS)
    """Stop once this many evaluations in a row have not beaten the best (None: never)."""
    stop_train_return: float | None = None
    """Stop as soon as one training episode's return reaches this (a tutorial's criterion;
    None: off). The stop reason in summary.json is then `train_return`."""
    env: dict[str, Any] = Field(
        default_factory=dict,
        # A description built from EVAL_ENV_KEYS: an attribute docstring must be a plain literal.
        description="Changes to the `env` section for evaluation only (during training and the final one), e.g. "
        "`{obs_noise: 0.0, randomize: {}}` to judge a policy trained under noise on the clean environment, "
        "or `{kwargs: {}}` to drop a training-only environment option. Allowed keys: " + ", ".join(EVAL_ENV_KEYS) + ".",
    )
    max_return_to_go: float | None = None
    """An upper bound on the return an episode can still collect from any point of it (0 where
    no step pays more than 0, as in Acrobot-v1 and MountainCar-v0). Set, an evaluation during
    training stops as soon as the mean it could still reach, every unfinished or unstarted
    episode collecting this much, could neither beat the best evaluation so far (with
    `shortlist` above 1: enter the shortlist) nor reach the stop threshold (the early stop's):
    a policy far from good costs a few steps instead of whole episodes. Such an evaluation is written to metrics.csv as kind `partial` with that upper
    bound as eval_mean; it is never kept as the best, never stops or solves a run, and counts
    toward `patience`. None: every evaluation runs to the end (the final one always does)."""
    deliver: Literal["best_eval", "last", "longest_episode"] = "best_eval"
    """Which network becomes policy.pt: the best evaluated one, the one training ended with, or
    the one at the end of the longest training episode so far (a tutorial's rule; with DQN it
    needs dqn.policy_average_tau null, since the online network plays the training episodes)."""
    shortlist: int = Field(default=1, ge=1, le=MAX_SHORTLIST)
    """With `deliver` best_eval: keep the networks of this many best evaluations, evaluate each
    again when training ends on `shortlist_episodes` fresh episodes (from a random stream of
    their own; the same episodes for all, so they are compared on equal terms), and deliver the
    best of that second look. The best of many noisy evaluations is best partly by luck (it
    scores lower on fresh episodes: the winner's curse); a second, independent look at the few
    best chooses among them on new evidence. Its time counts as training time (it is part of
    choosing the delivered policy); summary.json's `recheck_seconds` says how much. 1: deliver
    the best evaluation as it is."""
    shortlist_episodes: int = Field(default=500, ge=1, le=MAX_EVAL_EPISODES)
    """Episodes of that second evaluation, for each network on the shortlist."""


class PPOConfig(_Section):
    n_steps: int = Field(default=32, ge=1, le=MAX_ROLLOUT_STEPS)
    """Steps per environment in each rollout (rollout size = n_steps * env.num_envs)."""
    rollout_until_done: bool = False
    """End each rollout when an episode finishes (needs env.num_envs 1): one update per
    episode, as in the tutorial. `n_steps` is then the most a rollout can hold."""
    epochs: int = Field(default=20, ge=1, le=MAX_GRADIENT_STEPS)
    """Passes over each rollout."""
    minibatch_size: int = Field(default=256, ge=1, le=MAX_BATCH)
    """Samples per gradient step (the last minibatch of an epoch may be smaller)."""
    lr: float = Field(default=1e-3, gt=0.0, le=1.0)
    """Adam learning rate of the actor (and of the critic unless `critic_lr` is set)."""
    critic_lr: float | None = Field(default=None, gt=0.0, le=1.0)
    """Adam learning rate of the critic (None: `lr`)."""
    lr_schedule: Literal["constant", "linear"] = "linear"
    """Constant rates, or both decayed linearly to 0 over `total_steps`."""
    gamma: float = Field(default=0.98, ge=0.0, le=1.0)
    """Discount factor."""
    gae_lambda: float = Field(default=0.8, ge=0.0, le=1.0)
    """GAE lambda: 1 gives Monte-Carlo returns minus the value (bootstrapped only where a
    rollout or a time limit cuts an episode), 0 the one-step TD error."""
    clip_range: float = Field(default=0.2, gt=0.0)
    """PPO's probability-ratio clip epsilon."""
    ent_coef: float = Field(default=0.0, ge=0.0)
    """Weight of the entropy bonus."""
    vf_coef: float = Field(default=0.5, gt=0.0)
    """Weight of the critic's squared-error loss."""
    max_grad_norm: float | None = Field(default=0.5, gt=0.0)
    """Clip the global gradient norm of actor and critic together (None: no clipping)."""
    normalize_advantages: bool = True
    """Standardise advantages within each minibatch."""
    critic_hidden: list[int] | None = None
    """Hidden layers of the critic (None: the same as `network.hidden`)."""

    @model_validator(mode="after")
    def _critic_sizes(self) -> PPOConfig:
        if self.critic_hidden is not None:
            check_hidden(self.critic_hidden, "ppo.critic_hidden")
        return self


class PQNConfig(_Section):
    n_steps: int = Field(default=32, ge=1, le=MAX_ROLLOUT_STEPS)
    """Steps per environment in each rollout (rollout size = n_steps * env.num_envs)."""
    epochs: int = Field(default=2, ge=1, le=MAX_GRADIENT_STEPS)
    """Passes over each rollout."""
    minibatches: int = Field(default=4, ge=1, le=MAX_BATCH)
    """Minibatches per pass: each gradient step takes about rollout size / minibatches samples."""
    lr: float = Field(default=1e-3, gt=0.0, le=1.0)
    """Adam learning rate."""
    lr_schedule: Literal["constant", "linear"] = "linear"
    """A constant rate, or decayed linearly to 0 over `total_steps`."""
    gamma: float = Field(default=0.99, ge=0.0, le=1.0)
    """Discount factor."""
    q_lambda: float = Field(default=0.65, ge=0.0, le=1.0)
    """Lambda of the Q(lambda) targets: 0 is the one-step target r + gamma max Q(s'), 1 the
    discounted return to the end of the rollout (bootstrapped where a rollout or a time limit
    cuts an episode)."""
    loss: Literal["mse", "huber"] = "mse"
    """Squared error (PQN's) or Huber (smooth L1, delta 1) between Q(s, a) and its target."""
    max_grad_norm: float | None = Field(default=10.0, gt=0.0)
    """Clip the gradient's global norm (None: no clipping)."""


class TabularConfig(_Section):
    dims: list[int] = Field(default_factory=lambda: [0, 1, 2, 3])
    """Observation dimensions that are discretised; the others are ignored."""
    bins: list[int] = Field(default_factory=lambda: [3, 3, 8, 8])
    """Number of bins of each dimension in `dims` (1 ignores that dimension)."""
    low: list[float] = Field(default_factory=lambda: [-2.4, -1.5, -0.21, -1.5])
    """Lower bound of each discretised dimension; values outside fall in the end bins."""
    high: list[float] = Field(default_factory=lambda: [2.4, 1.5, 0.21, 1.5])
    """Upper bound of each discretised dimension."""
    gamma: float = Field(default=0.99, ge=0.0, le=1.0)
    """Discount factor."""
    lr: float = Field(default=0.1, gt=0.0, le=1.0)
    """Learning rate; with `lr_schedule` log_episode, its floor."""
    lr_schedule: Literal["constant", "log_episode"] = "constant"
    """Constant `lr`, or min(1, 1 - log10((episode + 1) / lr_divisor)) floored at `lr` (the
    tutorial's schedule)."""
    lr_divisor: float = Field(default=25.0, gt=0.0)
    """log_episode schedule: the rate starts to fall below 1 after this many episodes."""

    @model_validator(mode="after")
    def _shapes(self) -> TabularConfig:
        n = len(self.dims)
        if n == 0 or not (len(self.bins) == len(self.low) == len(self.high) == n):
            raise ValueError("tabular.dims, bins, low and high must be non-empty lists of the same length")
        if any(b < 1 for b in self.bins) or any(d < 0 for d in self.dims) or len(set(self.dims)) != n:
            raise ValueError("tabular: bins must be >= 1 and dims distinct indices >= 0")
        if n > MAX_LAYERS or max(self.dims) >= MAX_UNITS:
            raise ValueError(f"tabular: at most {MAX_LAYERS} dims, each an index below {MAX_UNITS}")
        if math.prod(min(b, MAX_TABLE_CELLS + 1) for b in self.bins) > MAX_TABLE_CELLS:
            raise ValueError(
                f"tabular.bins: the table would have more than {MAX_TABLE_CELLS:.0e} cells (the product of the bins)"
            )
        if any(lo >= hi for lo, hi in zip(self.low, self.high, strict=True)):
            raise ValueError("tabular: every low must be below its high")
        return self


class BaselineConfig(_Section):
    controller: Literal["random", "angle", "lqr", "target_lqr"] = "lqr"
    """`random`: uniform actions. `angle`: push right when the pole leans right (the tutorial's
    rule). `lqr`: a linear-quadratic regulator on the linearised cart-pole, the sign of its
    force picking the push (an upper reference for balance). `target_lqr`: the same regulator
    driving the cart to the target of dqnlab/CartPoleTarget-v0 (the offset x - target, its 5th
    observation, takes the place of x)."""


class RunConfig(BaseModel):
    """A complete, resolved training run."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)

    preset: str | None = Field(default=None, max_length=200)
    """Name of the preset this config started from (informational)."""
    algo: str = "dqn"
    """Training algorithm, a name in dqnlab.config.algorithms.ALGORITHMS: dqn, ppo, pqn (Q(lambda)
    over parallel environments, no replay, no target network), tabular (Q-learning on a table) or
    baseline (a fixed controller, no learning)."""
    seed: int = Field(default=0, ge=0, lt=2**32)
    """Seed for environments, network initialisation, exploration and replay sampling."""
    total_steps: int = Field(default=50_000, ge=1, le=MAX_STEPS)
    """Budget of environment steps (transitions over all vectorised envs)."""
    total_episodes: int | None = Field(default=None, ge=1, le=MAX_STEPS)
    """Also stop after this many finished training episodes (None: no episode budget)."""
    checkpoint_every: int = Field(default=10_000, ge=1, le=MAX_STEPS)
    """Write checkpoint.pt every this many environment steps (and always at the end)."""
    artifacts: bool = True
    """When training ends, write curves.png, episode.gif and report.html into the run directory
    (about a third of a second, not counted in train_seconds)."""
    torch_threads: int = Field(default=1, ge=1, le=MAX_THREADS)
    """torch intra-op threads: 1 is fastest for small networks, and reproducible."""
    env: EnvConfig = Field(default_factory=EnvConfig)
    """Environment."""
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    """The networks: DQN's Q-network, PPO's actor and (unless ppo.critic_hidden) critic."""
    dqn: DQNConfig = Field(default_factory=DQNConfig)
    """DQN learning settings."""
    explore: ExploreConfig = Field(default_factory=ExploreConfig)
    """Epsilon-greedy exploration."""
    eval: EvalConfig = Field(default_factory=EvalConfig)
    """Evaluation, early stopping and delivery."""
    ppo: PPOConfig = Field(default_factory=PPOConfig)
    """PPO settings (algo ppo; the actor and critic MLPs take `network`)."""
    pqn: PQNConfig = Field(default_factory=PQNConfig)
    """PQN settings (algo pqn; the Q-network takes `network`, exploration `explore`)."""
    tabular: TabularConfig = Field(default_factory=TabularConfig)
    """Tabular Q-learning settings (algo tabular; exploration from `explore`)."""
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    """The fixed controller (algo baseline)."""

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if self.algo not in ALGORITHMS:
            raise ValueError(f"unknown algo {preview(self.algo, 60)} (choose from: {', '.join(ALGORITHMS)})")
        for section in ALGORITHM_SECTIONS:
            algos = [name for name, entry in ALGORITHMS.items() if section in entry.sections]
            if (
                section not in ALGORITHMS[self.algo].sections
                and getattr(self, section) != type(getattr(self, section))()
            ):
                raise ValueError(
                    f"section '{section}' has no effect with algo '{self.algo}' "
                    f"(it is used by: {', '.join(algos)}); remove it"
                )
        if self.algo == "ppo" and (self.network.batch_norm or self.network.dueling or self.network.layer_norm):
            raise ValueError(
                "network.batch_norm, layer_norm and dueling are options of the Q-network; PPO's networks are plain MLPs"
            )
        if self.algo == "dqn" and self.eval.deliver == "longest_episode" and self.dqn.policy_average_tau is not None:
            raise ValueError(
                "eval.deliver 'longest_episode' keeps the network that played the longest training "
                "episode, the online one, but with dqn.policy_average_tau the delivered network is their "
                "average; set dqn.policy_average_tau to null (or deliver 'best_eval' or 'last')"
            )
        if (
            self.algo == "dqn"
            and self.dqn.n_quantiles is not None
            and (self.network.dueling or self.env.pixels.enabled)
        ):
            raise ValueError(
                "dqn.n_quantiles (QR-DQN) needs an MLP Q-network on state vectors: not network.dueling, not env.pixels"
            )
        if self.algo == "pqn" and (self.network.batch_norm or self.network.dueling):
            raise ValueError("network.batch_norm and network.dueling are DQN options; PQN's Q-network is an MLP")
        if self.algo == "ppo" and self.ppo.rollout_until_done and self.env.num_envs != 1:
            raise ValueError("ppo.rollout_until_done needs env.num_envs 1 (one episode per update)")
        pixels = self.env.pixels
        if pixels.enabled and self.algo != "dqn":
            raise ValueError(
                f"env.pixels is for algo dqn (a convolutional Q-network); algo '{self.algo}' "
                "needs the state vector (env.pixels.mode off)"
            )
        if self.network.conv and not pixels.enabled:
            raise ValueError("network.conv needs pixel observations (env.pixels.mode 'tutorial' or 'track')")
        if pixels.enabled and min(conv_output_hw(pixels.height, pixels.width, self.network.conv)) < 1:
            raise ValueError(
                f"network.conv shrinks the {pixels.height}x{pixels.width} frames to nothing; "
                "use fewer or smaller kernels and strides, or larger frames"
            )
        if self.network.batch_norm and self.algo == "dqn" and self.dqn.batch_size < 2:
            raise ValueError(
                "network.batch_norm needs dqn.batch_size >= 2 (batch statistics of one sample are undefined)"
            )
        unknown = sorted(set(self.eval.env) - set(EVAL_ENV_KEYS))
        if unknown:
            raise ValueError(f"eval.env cannot change env.{unknown[0]} (it may change: {', '.join(EVAL_ENV_KEYS)})")
        self.eval_env()  # validates the merged section
        for section, name, applies, when in CONDITIONAL_OPTIONS:
            sect = getattr(self, section)
            default = type(sect).model_fields[name].get_default(call_default_factory=True)
            if not applies(self) and getattr(sect, name) != default:
                raise ValueError(f"{section}.{name} has no effect unless {when}; remove it or change that setting")
        return self

    def eval_env(self) -> EnvConfig:
        """The environment that evaluations run on: `env` with `eval.env`'s changes."""
        if not self.eval.env:
            return self.env
        merged = {**self.env.model_dump(), **self.eval.env}
        try:
            return EnvConfig.model_validate(merged)
        except ValidationError as exc:
            err = exc.errors()[0]
            msg = format_error({**err, "loc": ("env", *err["loc"])}).removeprefix("invalid config: ")
            raise ValueError(f"in eval.env: {msg}") from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


CONDITIONAL_OPTIONS = (
    ("dqn", "tau", lambda c: c.dqn.target_update == "soft", "dqn.target_update is 'soft'"),
    ("dqn", "target_update_every", lambda c: c.dqn.target_update == "hard", "dqn.target_update is 'hard'"),
    ("dqn", "target_update_unit", lambda c: c.dqn.target_update == "hard", "dqn.target_update is 'hard'"),
    (
        "explore",
        "decay_steps",
        lambda c: c.explore.schedule in ("linear", "exponential"),
        "explore.schedule is 'linear' or 'exponential'",
    ),
    ("explore", "decrement", lambda c: c.explore.schedule == "decrement", "explore.schedule is 'decrement'"),
    ("explore", "episode_decay", lambda c: c.explore.schedule == "per_episode", "explore.schedule is 'per_episode'"),
    (
        "eval",
        "stop_threshold",
        lambda c: c.eval.early_stop and c.eval.success_threshold is None,
        "eval.early_stop is true and eval.success_threshold is null",
    ),
    ("eval", "threshold", lambda c: c.eval.success_threshold is None, "eval.success_threshold is null"),
    ("explore", "log_divisor", lambda c: c.explore.schedule == "log_episode", "explore.schedule is 'log_episode'"),
    ("explore", "hold", lambda c: c.algo == "dqn", "algo is 'dqn'"),
    (
        "network",
        "input_scaling",
        lambda c: c.algo == "dqn" and not c.env.pixels.enabled,
        "algo is 'dqn' on state vectors (env.pixels.mode off)",
    ),
    ("explore", "hold_duration", lambda c: c.explore.hold > 1, "explore.hold is above 1"),
    (
        "explore",
        "hold_zeta",
        lambda c: c.explore.hold > 1 and c.explore.hold_duration == "zeta",
        "explore.hold is above 1 and explore.hold_duration is 'zeta'",
    ),
    ("tabular", "lr_divisor", lambda c: c.tabular.lr_schedule == "log_episode", "tabular.lr_schedule is 'log_episode'"),
    ("eval", "every_steps", lambda c: c.eval.every_episodes is None, "eval.every_episodes is null"),
    ("eval", "stop_z", lambda c: c.eval.early_stop, "eval.early_stop is true"),
    ("eval", "shortlist", lambda c: c.eval.deliver == "best_eval", "eval.deliver is 'best_eval'"),
    (
        "dqn",
        "loss",
        lambda c: c.dqn.n_quantiles is None,
        "dqn.n_quantiles is null (QR-DQN trains by the quantile Huber loss: set dqn.loss=huber)",
    ),
    ("eval", "shortlist_episodes", lambda c: c.eval.shortlist > 1, "eval.shortlist is above 1"),
    (
        "eval",
        "max_return_to_go",
        lambda c: c.eval.deliver == "best_eval" and c.eval.success_threshold is None,
        "eval.deliver is 'best_eval' and eval.success_threshold is null",
    ),
    *(
        ("dqn", name, lambda c: c.dqn.prioritized, "dqn.prioritized is true")
        for name in ("per_alpha", "per_beta_start", "per_beta_steps", "per_eps")
    ),
)
"""Options that only mean something in one mode: (section, field, applies(config), when). Setting
one (to other than its default) while the mode is off is almost always a mistake, so it is refused
rather than silently ignored; `dqnlab presets --show` notes when each applies."""


# ---------------------------------------------------------------------------------------------
# Validation errors as one line
# ---------------------------------------------------------------------------------------------


def model_for_path(path: tuple[str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = RunConfig
    for part in path:
        if model is None or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return model


def _known_keys(path: tuple[str, ...]) -> list[str]:
    model = model_for_path(path)
    return list(model.model_fields) if model else []


def format_error(err: Mapping[str, Any]) -> str:
    # A key comes from the user too (a YAML key can be a megabyte long): each part is cut short.
    loc = tuple(str(p) if len(str(p)) <= 60 else str(p)[:57] + "..." for p in err["loc"])
    key = ".".join(loc) or "config"
    kind = err["type"]
    if kind == "extra_forbidden":
        parent, name = loc[:-1], loc[-1]
        valid = _known_keys(parent)
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f"; did you mean '{'.'.join((*parent, close[0]))}'?" if close else ""
        return f"unknown config key '{key}'{hint} (valid: {', '.join(valid)})"
    value = err.get("input")
    msg = err["msg"]
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
        return f"invalid config: {msg}"
    return f"invalid config value for '{key}': {msg[:200]} (got {preview(value)})"


# The values of issue #16's two stability aids, dqn.policy_average_tau and dqn.bound_targets,
# that turn them off: what a DQN config recorded before they existed meant, and what every preset
# tuned without them keeps (dqnlab.config.presets).
DQN_STABILITY_AIDS_OFF: dict[str, Any] = {"policy_average_tau": None, "bound_targets": False}


def validate_recorded_config(data: object) -> RunConfig:
    """``validate_config`` for a config that dqnlab recorded (a run's config.yaml, a checkpoint's):
    a field added since it was written takes the value that reproduces that run, which is not
    always the field's default. A DQN run recorded before ``dqn.policy_average_tau`` existed
    evaluated and delivered its online network (null), where the default is now 0.001; one
    recorded before ``dqn.bound_targets`` left its targets unbounded (false, the default true)."""
    if isinstance(data, dict) and data.get("algo", "dqn") == "dqn" and isinstance(data.get("dqn"), dict):
        missing = {key: value for key, value in DQN_STABILITY_AIDS_OFF.items() if key not in data["dqn"]}
        if missing:
            data = {**data, "dqn": {**data["dqn"], **missing}}
    return validate_config(data)


def validate_config(data: object) -> RunConfig:
    """Validate a plain dict into a RunConfig, or raise ConfigError with one clear line."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of keys to values, got {type(data).__name__}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_error(exc.errors()[0])) from None
