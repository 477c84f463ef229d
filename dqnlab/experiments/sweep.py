"""`dqnlab sweep`: Optuna hyperparameter search, each trial scored on several seeds.

    OUT/study.db              the Optuna study (SQLite) unless --storage names another database
    OUT/trial-<n>/seed-<k>/   one ordinary run directory per (trial, seed)
    OUT/trials.csv            one row per trial: state, score, seeds that reached the threshold, params
    OUT/best.yaml             the best trial's full config (`dqnlab train --config OUT/best.yaml`)

Search space (YAML):

    preset: default              # the base: a preset, or `config: base.yaml` (relative to this file)
    fixed:                       # overrides applied to every trial (dotted keys)
      total_steps: 30000
      artifacts: false
    params:                      # what the sampler chooses (dotted keys)
      dqn.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      dqn.batch_size: {type: categorical, choices: [64, 128, 256]}
      dqn.target_update_every: {type: int, low: 10, high: 200, log: true}

Score (lower is better): every trial trains on seeds 0..K-1 (the same seeds for every trial, so
trials differ by their parameters, not by luck of the draw). A seed's time to solve is the env
step of its first evaluation whose mean reached the threshold (`dqnlab.experiments.compare.solve_point`); a
seed that never reached it, or whose run failed, counts as 2 × total_steps. The trial's score is
the interquartile mean (IQM) of these K values: robust to one lucky or unlucky seed, and it still
ranks "solves everything late" above "solves half the seeds fast".

Pruning (MedianPruner): a trial's seeds run in chunks of `workers` runs at a time; after each
chunk the score over the seeds finished so far is reported at step = number of seeds (in seed
order, so the steps mean the same on every machine), and a trial whose intermediate score is worse
than the median of earlier trials at that step is stopped (state PRUNED) before its remaining
seeds train. With K <= workers every trial trains all its seeds at once and nothing is pruned.

Resuming and failures: `--trials N` is the number of trials the study should hold; running the
same command again (or with a larger N) continues the study. A trial whose sweep process died
(same host, process gone) is taken over with its parameters: its finished runs are read back from
their summary.json, unfinished runs resume from their checkpoints. A run that crashes counts with
the penalty; a trial whose parameters make an invalid config is recorded FAIL; the sweep goes on.
SIGINT or SIGTERM stops the sweep (see dqnlab.experiments.fanout): the trial's runs under way checkpoint, its
queued runs and later trials never start, and the trial stays RUNNING, so that the same command
takes it over.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dqnlab.config import RunConfig, build_config, config_to_yaml, load_yaml_file, validate_config
from dqnlab.config.overrides import apply_dotted
from dqnlab.core.errors import ConfigError, DqnlabError, preview
from dqnlab.core.fileio import atomic_write_text
from dqnlab.core.stopping import catch_stop_signals, stop_signal
from dqnlab.experiments.compare import solve_point
from dqnlab.experiments.fanout import RunsInterrupted, backend_session, check_backend, default_workers
from dqnlab.experiments.runs import PlannedRun, seeded, train_runs
from dqnlab.experiments.stats import iqm
from dqnlab.runtime.rundir import open_output_folder

STUDY_DB = "study.db"
TRIALS_CSV = "trials.csv"
BEST_YAML = "best.yaml"
DEFAULT_STUDY_NAME = "dqnlab-sweep"
UNSOLVED_PENALTY = 2.0
"""A seed that never reached the threshold counts as this many times the step budget."""
SWEEP_INSTALL_HINT = "dqnlab sweep needs Optuna: pip install 'dqnlab[sweep]'"

PARAM_TYPES = ("float", "int", "categorical")


# ---------------------------------------------------------------------------------------------
# The search space
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    """One sampled config field."""

    key: str
    """Dotted config key, e.g. dqn.lr."""
    type: str
    """float, int or categorical."""
    low: float | None = None
    """Lower bound (float and int, inclusive)."""
    high: float | None = None
    """Upper bound (float and int, inclusive)."""
    log: bool = False
    """Sample on a log scale (float and int; needs low > 0)."""
    step: float | None = None
    """Grid step (float and int; not with log)."""
    choices: tuple[Any, ...] = ()
    """The values of a categorical (numbers, strings, booleans, null, or lists such as hidden sizes)."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.type == "categorical":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high, log=self.log, step=self.step)
        return out


@dataclass(frozen=True)
class SearchSpace:
    """A base config, overrides fixed for every trial, and the sampled parameters."""

    preset: str | None
    """Base preset (None: the config file's, or 'default')."""
    config_file: str | None
    """Base YAML config, resolved against the search-space file's folder."""
    fixed: dict[str, Any] = field(default_factory=dict)
    """Dotted key -> value, applied to every trial before the sampled values."""
    params: tuple[ParamSpec, ...] = ()
    """The sampled parameters, in file order."""
    enqueue: tuple[dict[str, Any], ...] = ()
    """Parameter sets tried first, before the sampler draws (e.g. the base preset's own values,
    so that the study measures the starting point on the same seeds)."""

    def as_dict(self) -> dict[str, Any]:
        """Plain data, used to refuse resuming a study with a different search space."""
        return {
            "preset": self.preset,
            "config": self.config_file,
            "fixed": self.fixed,
            "params": {p.key: p.as_dict() for p in self.params},
            "enqueue": list(self.enqueue),
        }


MAX_MAGNITUDE = 1e18
"""Largest |low|, |high| or step of a range: far beyond any config value (total_steps is at most
1e10), and small enough that high - low never overflows and ints fit Optuna's storage (int64)."""
MAX_GRID_POINTS = 1e12
"""Most values a stepped range may hold: Optuna counts them in decimal arithmetic of 28 digits."""


def _number(value: Any, what: str) -> float:
    """A range bound: a finite number of magnitude 0 or in [float_info.min, MAX_MAGNITUDE]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} must be a finite number, got {preview(value)}")
    if isinstance(value, int) and abs(value) > MAX_MAGNITUDE:  # before float(): a 400-digit int overflows it
        raise ConfigError(f"{what} must be at most {MAX_MAGNITUDE:.0e} in magnitude, got {preview(value)}")
    if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise ConfigError(
            f"{what} must be a finite number of magnitude at most {MAX_MAGNITUDE:.0e}, got {preview(value)}"
        )
    if value != 0 and abs(value) < sys.float_info.min:
        # subnormal: log scale and Optuna's arithmetic lose all precision down there
        raise ConfigError(f"{what} is too close to 0 ({value!r}); use 0 or at least {sys.float_info.min:.1e}")
    return value


def parse_param(key: str, spec: Any) -> ParamSpec:
    """One `params` entry -> ParamSpec, or a one-line ConfigError naming the key."""
    where = f"search space: params.{preview(key, 60)[1:-1]}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be a mapping like {{type: float, low: 1e-4, high: 1e-2}}, got {preview(spec)}")
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise ConfigError(f"{where}: type must be one of {', '.join(PARAM_TYPES)}, got {preview(kind)}")
    allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log", "step"}
    extra = sorted(map(str, set(spec) - allowed))
    if extra:
        raise ConfigError(
            f"{where}: unknown field {preview(extra[0], 40)} for type {kind} (allowed: {', '.join(sorted(allowed))})"
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: categorical needs a non-empty list of choices")
        return ParamSpec(key, kind, choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where}: type {kind} needs low and high")
    low, high = _number(spec["low"], f"{where}.low"), _number(spec["high"], f"{where}.high")
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log must be true or false, got {preview(log)}")
    if kind == "int" and (low != int(low) or high != int(high)):
        raise ConfigError(f"{where}: int bounds must be whole numbers, got {low} and {high}")
    if low > high:
        raise ConfigError(f"{where}: low ({low}) is above high ({high})")
    if log and low <= 0:
        raise ConfigError(f"{where}: log scale needs low > 0, got {low}")
    if step is not None:
        step = _number(step, f"{where}.step")
        if step <= 0 or log:
            raise ConfigError(f"{where}: step must be > 0 and cannot be combined with log")
        if kind == "int" and step != int(step):
            raise ConfigError(f"{where}: an int step must be a whole number, got {step}")
        if (high - low) / step > MAX_GRID_POINTS:
            raise ConfigError(
                f"{where}: step {step:g} cuts [{low:g}, {high:g}] into more than "
                f"{MAX_GRID_POINTS:.0e} values; use a larger step or log: true"
            )
    return ParamSpec(key, kind, low=low, high=high, log=log, step=step)


def range_ends(spec: ParamSpec) -> list[Any]:
    """The values a parameter can take at its extremes: every choice of a categorical, the
    lowest and the highest value of a range (the highest on its step grid)."""
    if spec.type == "categorical":
        return list(spec.choices)
    assert spec.low is not None and spec.high is not None
    high = spec.high
    if spec.step:
        high = spec.low + math.floor((spec.high - spec.low) / spec.step) * spec.step
    if spec.type == "int":
        return [int(spec.low), int(high)]
    return [float(spec.low), float(high)]


def load_search_space(path: str | Path) -> SearchSpace:
    """Read and check a search-space file: every key is a real config field and the base with
    each parameter at its low end (or first choice) is a valid config. Errors are one line."""
    p = Path(path)
    data = load_yaml_file(p)
    allowed = {"preset", "config", "fixed", "params", "enqueue"}
    extra = sorted(set(data) - allowed)
    if extra:
        raise ConfigError(
            f"search space {p}: unknown top-level key '{extra[0]}' (allowed: {', '.join(sorted(allowed))})"
        )
    preset, config = data.get("preset"), data.get("config")
    if preset is not None and not isinstance(preset, str):
        raise ConfigError(f"search space {p}: preset must be a preset name")
    if config is not None:
        if not isinstance(config, str):
            raise ConfigError(f"search space {p}: config must be a path to a YAML config")
        config = str((p.parent / config) if not Path(config).is_absolute() else Path(config))
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise ConfigError(f"search space {p}: fixed must be a mapping of dotted config keys to values")
    params = data.get("params")
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"search space {p}: params must map at least one dotted config key to a distribution")
    both = sorted(set(fixed) & set(params))
    if both:
        raise ConfigError(f"search space {p}: '{both[0]}' is both fixed and a parameter")
    enqueue = data.get("enqueue") or []
    if not isinstance(enqueue, list) or not all(isinstance(e, dict) for e in enqueue):
        raise ConfigError(f"search space {p}: enqueue must be a list of mappings of parameters to values")
    for e in enqueue:
        unknown = sorted(set(e) - set(params))
        if unknown:
            raise ConfigError(f"search space {p}: enqueue names '{unknown[0]}', which is not a parameter")
    space = SearchSpace(
        preset,
        config,
        {str(k): v for k, v in fixed.items()},
        tuple(parse_param(str(k), v) for k, v in params.items()),
        tuple({str(k): v for k, v in e.items()} for e in enqueue),
    )
    base = base_config(space)
    lows = {s.key: range_ends(s)[0] for s in space.params}
    validate_config(apply_dotted(base, {**space.fixed, **lows}))
    # Each parameter at its other end (every choice), the others low: a range whose top is
    # invalid (1e299 evaluation episodes) is refused now, not found by a trial hours later.
    for s in space.params:
        for value in range_ends(s)[1:]:
            try:
                validate_config(apply_dotted(base, {**space.fixed, **lows, s.key: value}))
            except ConfigError as exc:
                raise ConfigError(
                    f"search space {p}: params.{preview(s.key, 60)[1:-1]} at {preview(value, 40)} "
                    f"makes an invalid config: {exc}"
                ) from None
    for e in space.enqueue:
        validate_config(apply_dotted(base, {**space.fixed, **e}))
    return space


def base_config(space: SearchSpace) -> dict[str, Any]:
    """The resolved base (preset or file) as a plain dict, before fixed overrides."""
    return build_config(space.preset, space.config_file).to_dict()


def trial_config(space: SearchSpace, params: dict[str, Any]) -> RunConfig:
    """The config of one trial: base, then fixed overrides, then the sampled values."""
    return validate_config(apply_dotted(base_config(space), {**space.fixed, **params}))


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def seed_cost(steps_to_solve: int | None, total_steps: int) -> float:
    """Env steps to the first evaluation at the threshold, or UNSOLVED_PENALTY × the budget."""
    return float(steps_to_solve) if steps_to_solve is not None else UNSOLVED_PENALTY * total_steps


def trial_score(costs: list[float]) -> float:
    """IQM of the per-seed costs (lower is better)."""
    return iqm(costs)


def run_cost(run_dir: Path, summary: dict[str, Any], total_steps: int) -> tuple[float, int | None]:
    """(cost, steps to solve) of one finished or failed run."""
    steps = None
    if summary.get("status") == "finished":
        steps, _ = solve_point(run_dir, summary)
    return seed_cost(steps, total_steps), steps


# ---------------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------------


def _import_optuna():
    try:
        import optuna
    except ImportError:
        raise DqnlabError(SWEEP_INSTALL_HINT) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _encode_choices(choices: tuple[Any, ...]) -> tuple[tuple[Any, ...], bool]:
    """Optuna's categoricals hold scalars only: lists (hidden sizes) travel as JSON strings."""
    if all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
        return choices, False
    return tuple(json.dumps(c) for c in choices), True


def suggest(trial, space: SearchSpace) -> dict[str, Any]:
    """Ask the trial for every parameter; returns dotted key -> config value."""
    values: dict[str, Any] = {}
    for p in space.params:
        if p.type == "float":
            values[p.key] = trial.suggest_float(p.key, p.low, p.high, log=p.log, step=p.step)
        elif p.type == "int":
            assert p.low is not None and p.high is not None  # parse_param: int and float have bounds
            values[p.key] = trial.suggest_int(
                p.key, int(p.low), int(p.high), log=p.log, step=int(p.step) if p.step else 1
            )
        else:
            choices, encoded = _encode_choices(p.choices)
            value = trial.suggest_categorical(p.key, choices)
            values[p.key] = json.loads(value) if encoded else value
    return values


def _encoded(space: SearchSpace, key: str) -> bool:
    """Whether parameter `key` is categorical with choices Optuna holds as JSON text."""
    return any(p.key == key and p.type == "categorical" and _encode_choices(p.choices)[1] for p in space.params)


def _decode_params(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    for p in space.params:
        if p.type == "categorical" and _encode_choices(p.choices)[1] and p.key in out:
            out[p.key] = json.loads(out[p.key])
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(frozen) -> bool:
    """A RUNNING trial whose sweep process on this host is gone (or is us: we run none yet)."""
    host, pid = frozen.user_attrs.get("host"), frozen.user_attrs.get("pid")
    if host != socket.gethostname() or not isinstance(pid, int):
        return False
    return pid == os.getpid() or not _pid_alive(pid)


@dataclass
class SweepResult:
    """What `sweep` returns: the study's trials and the best one."""

    rows: list[dict[str, Any]]
    """One row per trial (as written to trials.csv)."""
    best: dict[str, Any] | None
    """The best complete trial's row, or None if no trial completed."""
    out: Path
    """The output folder."""


@catch_stop_signals()  # between trials too, a signal only sets the flag checked below
def sweep(
    space: SearchSpace,
    trials: int,
    n_seeds: int | list[int],
    out: str | Path,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    workers: int | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    sampler_seed: int = 0,
    on_event: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run (or continue) the study until it holds `trials` trials; write trials.csv and best.yaml."""
    optuna = _import_optuna()
    check_backend(backend, ray_address, workers)
    seeds = list(range(n_seeds)) if isinstance(n_seeds, int) else sorted(set(n_seeds))
    if trials < 1 or not seeds:
        raise ConfigError("--trials and --seeds must be at least 1")
    root = Path(out)
    # Sweeps that share one study through --storage (several machines) share the folder too,
    # each writing its own trials' runs (every run directory has its own lock); with the
    # folder's own study.db it has one writer.
    lock = open_output_folder(root, "sweep", shared=storage is not None)
    try:
        return _sweep(
            optuna,
            space,
            trials,
            seeds,
            root,
            storage,
            study_name,
            workers,
            backend,
            ray_address,
            sampler_seed,
            on_event,
        )
    finally:
        lock.release()


def _sweep(
    optuna,
    space: SearchSpace,
    trials: int,
    seeds: list[int],
    root: Path,
    storage: str | None,
    study_name: str | None,
    workers: int | None,
    backend: str,
    ray_address: str | None,
    sampler_seed: int,
    on_event: Callable[[str], None] | None,
) -> SweepResult:
    storage = storage or f"sqlite:///{(root / STUDY_DB).resolve()}"
    name = study_name or DEFAULT_STUDY_NAME
    say = on_event or (lambda _msg: None)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction="minimize",
            load_if_exists=True,
            # n_startup_trials: compare against a few complete trials before pruning anything
            pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
        )
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise DqnlabError(
            f"cannot open the Optuna storage '{storage}': {type(exc).__name__}: {first_line}", exit_code=1
        ) from None
    # A study records its seeds: 0..K-1 as the count K (as dqnlab 0.1.0 did), others as the list.
    recorded_seeds: int | list[int] = len(seeds) if seeds == list(range(len(seeds))) else seeds
    recorded = study.user_attrs.get("search_space")
    if recorded is None:
        study.set_user_attr("search_space", space.as_dict())
        study.set_user_attr("seeds", recorded_seeds)
        for params in space.enqueue:  # in Optuna's terms: list-valued choices travel as JSON text
            study.enqueue_trial({k: json.dumps(v) if _encoded(space, k) else v for k, v in params.items()})
    elif recorded != json.loads(json.dumps(space.as_dict())) or study.user_attrs.get("seeds") != recorded_seeds:
        raise DqnlabError(
            f"study '{name}' in {storage} was started with another search space or --seeds; "
            "use another --out, --storage or --study-name"
        )
    # Seeded by the study's size: reproducible, and a resumed sweep does not redraw earlier trials.
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed + len(study.trials))
    chunk = workers or (len(seeds) if backend == "ray" and ray_address else default_workers())

    with backend_session(backend, workers, ray_address):
        while True:
            signum = stop_signal()
            if signum is not None:
                raise RunsInterrupted(signum)
            all_trials = study.get_trials(deepcopy=False)
            stale = [t for t in all_trials if t.state == optuna.trial.TrialState.RUNNING and _is_stale(t)]
            counted = [t for t in all_trials if t.state != optuna.trial.TrialState.WAITING]
            if stale:
                trial = optuna.trial.Trial(study, stale[0]._trial_id)
                say(f"trial {trial.number}: taking over (its sweep process is gone)")
            elif len(counted) >= trials:
                break
            else:
                trial = study.ask()
            trial.set_user_attr("host", socket.gethostname())
            trial.set_user_attr("pid", os.getpid())
            _run_trial(optuna, study, trial, space, seeds, root, chunk, backend, ray_address, say)
    return write_outputs(study, space, root)


def _run_trial(
    optuna,
    study,
    trial,
    space: SearchSpace,
    seeds: list[int],
    root: Path,
    chunk: int,
    backend: str,
    ray_address: str | None,
    say: Callable[[str], None],
) -> None:
    try:
        params = suggest(trial, space)
        cfg = trial_config(space, params)
    except ConfigError as exc:  # a combination the config refuses: this trial fails, the sweep goes on
        trial.set_user_attr("error", str(exc))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        say(f"trial {trial.number}: failed: {exc}")
        return
    trial_dir = root / f"trial-{trial.number}"
    costs: dict[int, float] = {}
    solved_at: dict[int, int | None] = {}
    failures: list[str] = []
    for start in range(0, len(seeds), chunk):
        part = seeds[start : start + chunk]
        runs = [PlannedRun(seed, seeded(cfg, seed), trial_dir / f"seed-{seed}") for seed in part]
        summaries = train_runs(runs, len(runs), None, backend=backend, ray_address=ray_address)
        for seed in part:
            s = summaries[seed]
            costs[seed], solved_at[seed] = run_cost(trial_dir / f"seed-{seed}", s, cfg.total_steps)
            if s.get("status") != "finished":
                failures.append(f"seed {seed}: {s.get('error')}")
        with warnings.catch_warnings():  # a taken-over trial reports its earlier steps again
            warnings.simplefilter("ignore")
            for n in range(start + 1, start + len(part) + 1):
                trial.report(trial_score([costs[s] for s in seeds[:n]]), step=n)
        if start + len(part) < len(seeds) and trial.should_prune():
            trial.set_user_attr("solved_seeds", sum(v is not None for v in solved_at.values()))
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            say(f"trial {trial.number}: pruned after {start + len(part)} seeds")
            return
    score = trial_score([costs[s] for s in seeds])
    trial.set_user_attr("solved_seeds", sum(v is not None for v in solved_at.values()))
    trial.set_user_attr("steps_to_solve", [solved_at[s] for s in seeds])
    if failures:
        trial.set_user_attr("failed_runs", failures)
    study.tell(trial, score)
    say(
        f"trial {trial.number}: score {score:.0f} ({sum(v is not None for v in solved_at.values())}/{len(seeds)} "
        f"seeds reached the threshold){'; ' + str(len(failures)) + ' runs failed' if failures else ''}"
    )


def write_outputs(study, space: SearchSpace, root: Path) -> SweepResult:
    """trials.csv (every trial) and best.yaml (the best complete trial's full config)."""
    import optuna

    keys = [p.key for p in space.params]
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "score": t.value,
                "solved_seeds": t.user_attrs.get("solved_seeds"),
                **{k: json.dumps(v) if isinstance(v, list) else v for k, v in _decode_params(space, t.params).items()},
                "run_dir": str(root / f"trial-{t.number}"),
                "error": t.user_attrs.get("error"),
            }
        )
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf,
        ["trial", "state", "score", "solved_seeds", *keys, "run_dir", "error"],
        extrasaction="ignore",
        lineterminator="\n",
    )
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(root / TRIALS_CSV, buf.getvalue())
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    if not complete:
        return SweepResult(rows, None, root)
    best = min(complete, key=lambda t: (t.value, t.number))
    cfg = trial_config(space, _decode_params(space, best.params))
    header = (
        f"# dqnlab sweep: best of {len(complete)} complete trials: trial {best.number}, score {best.value:.1f}\n"
        f"# (IQM over seeds of env steps to the threshold; lower is better)\n"
        f"# train it: dqnlab train --config {root / BEST_YAML} --seeds 100-119\n"
    )
    atomic_write_text(root / BEST_YAML, header + config_to_yaml(cfg))
    return SweepResult(rows, next(r for r in rows if r["trial"] == best.number), root)


def format_trials(result: SweepResult) -> str:
    """A short text table of the trials, best last."""
    lines = ["trial  state     score     solved  params"]
    for r in result.rows:
        score = "-" if r["score"] is None else f"{r['score']:.0f}"
        params = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in r.items()
            if k not in ("trial", "state", "score", "solved_seeds", "run_dir", "error") and v is not None
        )
        solved = "-" if r["solved_seeds"] is None else str(r["solved_seeds"])
        lines.append(f"{r['trial']:>5}  {r['state']:<8}  {score:>8}  {solved:>6}  {params}")
    if result.best:
        lines.append(
            f"best: trial {result.best['trial']} (score {result.best['score']:.0f}); config in {result.out / BEST_YAML}"
        )
    else:
        lines.append("no trial completed yet: no best.yaml")
    return "\n".join(lines)
