"""Bad input costs one line and bounded time and memory; damaged and foreign files are refused.

Each test reproduces a problem found by using dqnlab as a hostile or careless user would (issue
#14): it failed (a traceback, a 312 MB error line, a silent load of a damaged file) before the fix.
The hostile CLI battery at the end runs `python -m dqnlab` in a subprocess for each case.
"""

import csv
import hashlib
import io
import json
import math
import os
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import dqnlab
from dqnlab.config import MAX_UNITS, build_config, load_yaml_file, validate_config
from dqnlab.config.overrides import parse_override
from dqnlab.core.errors import ConfigError, DqnlabError, preview
from dqnlab.core.fileio import atomic_write_json, safe_torch_load
from dqnlab.experiments.sweep import load_search_space

REPO = Path(__file__).resolve().parents[1]


def alias_bomb(levels: int = 7) -> str:
    """The 'billion laughs' YAML: each level is 9 aliases of the one below (9**levels leaves)."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    lines.append(f"seed: *a{levels - 1}")
    return "\n".join(lines) + "\n"


# -- error messages: short whatever the value ---------------------------------------------------


def test_preview_of_huge_values_is_short_and_cheap():
    nested: object = ["lol"] * 9
    for _ in range(8):  # 9**9 leaves: its full repr would be gigabytes
        nested = [nested] * 9
    t0 = time.perf_counter()
    for value in (nested, 10**5000, "x" * 10**7, {"k" * 1000: [1] * 10**6}, b"\0" * 10**6):
        assert len(preview(value)) <= 80
    assert time.perf_counter() - t0 < 1.0
    assert preview(3) == "3" and preview("abc") == "'abc'"


def test_yaml_alias_bomb_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert path.stat().st_size < 700
    with pytest.raises(ConfigError, match=r"line 2.*aliases") as exc:
        load_yaml_file(path)
    assert len(str(exc.value)) < 300  # was a 312 MB line (one level deeper: 3 GB, then an abort)


def test_yaml_alias_in_a_set_override_is_refused():
    with pytest.raises(ConfigError, match="aliases"):
        parse_override("network.hidden=[&a [1, 1], *a]")


def test_yaml_duplicate_keys_are_refused_naming_key_and_line(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("seed: 1\ndqn:\n  lr: 0.1\n  gamma: 0.9\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"line 5, column 3: duplicate key 'lr'"):
        load_yaml_file(path)


def test_yaml_numbers_beyond_pythons_digit_limit_are_one_line(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("seed: " + "1" * 5000 + "\n")
    with pytest.raises(ConfigError, match="cannot read this YAML"):
        load_yaml_file(path)


def test_config_file_reads_are_bounded():
    with pytest.raises(ConfigError, match="larger than"):
        load_yaml_file("/dev/zero")  # read_text() would never return


def test_invalid_config_values_are_echoed_as_previews():
    with pytest.raises(ConfigError) as exc:
        validate_config({"seed": "x" * 10**6})
    assert len(str(exc.value)) < 300
    with pytest.raises(ConfigError) as exc:
        validate_config({"x" * 10**5: 1})
    assert len(str(exc.value)) < 500


# -- size- and count-like fields have upper bounds -----------------------------------------------


@pytest.mark.parametrize(
    "key, value",
    [
        ("total_steps", 10**11),
        ("total_episodes", 10**11),
        ("checkpoint_every", 10**11),
        ("torch_threads", 100_000),
        ("dqn.buffer_size", 10**10),
        ("dqn.batch_size", 10**7),
        ("dqn.learning_starts", 10**11),
        ("dqn.gradient_steps", 10**6),
        ("explore.decay_steps", 10**11),
        ("eval.episodes", 10**7),
        ("eval.final_episodes", 10**299),
        ("eval.max_envs", 10**5),
        ("eval.every_steps", 10**11),
        ("env.max_episode_steps", 10**11),
        ("network.hidden", [MAX_UNITS + 1]),
        ("network.hidden", [8] * 65),
        ("ppo.critic_hidden", [10**6]),
    ],
)
def test_size_and_count_fields_have_upper_bounds(key, value):
    algo = "ppo" if key.startswith("ppo.") else None
    with pytest.raises(ConfigError) as exc:
        build_config(**{key: value}, **({"algo": algo} if algo else {}))
    assert len(str(exc.value)) < 400


@pytest.mark.parametrize(
    "fields",
    [
        {"algo": "ppo", "ppo.n_steps": 10**7},
        {"algo": "ppo", "ppo.epochs": 10**6},
        {"algo": "ppo", "ppo.minibatch_size": 10**7},
        {"dqn.prioritized": True, "dqn.per_beta_steps": 10**11},
        {"algo": "tabular", "tabular.bins": [1000, 1000, 1000, 1000]},  # 1e12 cells: 16 TB of table
        {"env.pixels.mode": "tutorial", "network.conv": [[100_000, 4, 2]]},
        {"env.pixels.mode": "tutorial", "network.conv": [[8, 1, 1]] * 65},
    ],
)
def test_algorithm_sizes_have_upper_bounds(fields):
    with pytest.raises(ConfigError):
        build_config(**fields)


def test_generous_sizes_stay_valid():
    build_config(
        **{
            "total_steps": 10**10,
            "dqn.buffer_size": 10**9,
            "network.hidden": [MAX_UNITS] * 2,
            "torch_threads": 256,
            "eval.final_episodes": 10**6,
        }
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"eval.threshold": math.inf},
        {"eval.threshold": math.nan},
        {"eval.stop_threshold": -math.inf},
        {"eval.stop_train_return": math.inf},
        {"eval.stop_z": math.inf},
        {"env.force_noise": math.inf},
        {"env.randomize.length": [0.5, math.inf]},
        {"env.obs_noise": [0.1, math.nan, 0.1, 0.1]},
        {"env.kwargs": {"target_range": [1.0, math.inf]}},
        {"dqn.max_grad_norm": math.inf},
        {"algo": "tabular", "tabular.high": [2.4, 1.5, 0.21, math.inf]},
        {"algo": "tabular", "tabular.low": [math.nan, -1.5, -0.21, -1.5]},
    ],
)
def test_non_finite_numbers_are_refused_everywhere(fields):
    with pytest.raises(ConfigError):
        build_config(**fields)


def test_json_files_never_hold_nan_or_infinity(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write_json(path, {"eval_mean": math.nan, "ci": [1.0, math.inf], "n": {"x": -math.inf}, "ok": 2.5})

    def refuse(token):
        raise AssertionError(f"invalid JSON token {token}")

    assert json.loads(path.read_text(), parse_constant=refuse) == {
        "eval_mean": None,
        "ci": [1.0, None],
        "n": {"x": None},
        "ok": 2.5,
    }


# -- env kwargs that change the vector autoreset mode --------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vector_kwargs": {"autoreset_mode": "SameStep"}},
        {"autoreset_mode": "SameStep"},
        {"wrappers": []},
        {"max_episode_steps": 10},
    ],
)
def test_env_kwargs_that_reach_make_vec_are_refused(kwargs):
    # on Acrobot (SyncVectorEnv) vector_kwargs trained silently in SAME_STEP mode; on CartPole a traceback
    with pytest.raises(ConfigError, match="env.kwargs"):
        build_config(**{"env.id": "Acrobot-v1", "env.kwargs": kwargs})
    with pytest.raises(ConfigError, match="env.kwargs"):
        build_config(**{"eval.env": {"kwargs": kwargs}})


def test_vector_env_that_autoresets_in_another_mode_is_refused():
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    from dqnlab.envs.make import make_vec_env

    class SameStepCartPole(CartPoleVectorEnv):
        metadata = {**CartPoleVectorEnv.metadata, "autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    env_id = "TestBadInput/SameStepCartPole-v0"
    gym.register(
        env_id,
        entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
        vector_entry_point=SameStepCartPole,
        max_episode_steps=500,
    )
    try:
        with pytest.raises(ConfigError, match="autoresets in mode 'SameStep'"):
            make_vec_env(build_config(**{"env.id": env_id}).env, 2)
    finally:
        del gym.registry[env_id]


# -- sweep search spaces ------------------------------------------------------------------------


def _space(tmp_path, param: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(f"preset: default\nfixed: {{total_steps: 1000}}\nparams:\n  {param}\n")
    return path


@pytest.mark.parametrize(
    "param, message",
    [
        ("eval.episodes: {type: int, low: 10, high: 2000000}", "params.eval.episodes at 2000000"),
        ("eval.episodes: {type: float, low: 10, high: 1.0e+299}", "magnitude at most"),
        ("network.hidden: {type: categorical, choices: [[64], [100000]]}", r"at \[100000\]"),
        ("dqn.lr: {type: float, low: -1.7e+308, high: 1.7e+308}", "magnitude at most"),
        ("dqn.lr: {type: float, low: 5.0e-324, high: 1.0e-2, log: true}", "too close to 0"),
        ("dqn.lr: {type: float, low: 0, high: 1, step: 1.0e-300}", "more than"),
        ("dqn.batch_size: {type: int, low: 1, high: 64, step: 0.5}", "whole number"),
        ("eval.every_steps: {type: int, low: 1, high: " + "9" * 400 + "}", "at most"),
        ("eval.threshold: {type: categorical, choices: [400, .inf]}", "finite"),
    ],
)
def test_sweep_ranges_are_checked_at_both_ends_and_away_from_float_limits(tmp_path, param, message):
    # before: the high end was never validated (a trial could draw 1e299 evaluation episodes), and
    # ranges near float limits raised OverflowError or decimal.InvalidOperation inside Optuna
    with pytest.raises(ConfigError, match=message) as exc:
        load_search_space(_space(tmp_path, param))
    assert len(str(exc.value)) < 400


def test_sweep_accepts_ordinary_ranges(tmp_path):
    space = load_search_space(_space(tmp_path, "dqn.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}"))
    assert space.params[0].high == 1e-2


# -- plot and report on absurd metrics.csv and summary.json ---------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny finished DQN run (a few seconds), copied by the tests that damage it."""
    run = tmp_path_factory.mktemp("runs") / "run"
    cfg = build_config(
        **{
            "total_steps": 1200,
            "checkpoint_every": 600,
            "eval.every_steps": 600,
            "eval.episodes": 2,
            "eval.final_episodes": 2,
            "eval.early_stop": False,
            "dqn.learning_starts": 200,
            "artifacts": False,
        }
    )
    dqnlab.train(cfg, run, progress=False)
    return run


def copy_run(run: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, dest))


def edit_metrics(run: Path, kind: str, column: str, value: str, every: bool = True) -> None:
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["kind"] == kind:
            row[column] = value
            if not every:
                break
    buf = io.StringIO()
    writer = csv.DictWriter(buf, list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (run / "metrics.csv").write_text(buf.getvalue())


def edit_summary(run: Path, **fields) -> None:
    summary = json.loads((run / "summary.json").read_text())
    summary.update(fields)
    (run / "summary.json").write_text(json.dumps(summary))


@pytest.mark.filterwarnings("error::RuntimeWarning")  # numpy's and matplotlib's overflow warnings: stderr noise
@pytest.mark.parametrize(
    "kind, column, value",
    [
        ("train", "return", "1e308"),
        ("train", "return", "-1e308"),
        ("train", "return", "inf"),
        ("train", "epsilon", "inf"),
        ("train", "epsilon", "nan"),
        ("train", "loss", "-1e308"),
        ("eval", "eval_std", "1e308"),
        ("eval", "eval_mean", "nan"),
        ("train", "wall_seconds", "inf"),
    ],
)
def test_plot_and_report_draw_absurd_metric_values_as_gaps(tmp_path, finished_run, kind, column, value):
    # before: tracebacks from matplotlib (overflow in ticks, NaN axis limits, a singular matrix)
    from dqnlab.viz import write_run_artifacts

    run = copy_run(finished_run, tmp_path / "run")
    edit_metrics(run, kind, column, value)
    curves, report = write_run_artifacts(run, gif=False)
    assert curves.stat().st_size > 1000 and report.stat().st_size > 1000


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize(
    "fields",
    [
        {"eval_mean": "abc"},
        {"eval_std": "x"},
        {"threshold": "abc"},
        {"threshold": 1e308},
        {"success_rate": "x"},
        {"env_id": [1] * 100_000},
    ],
)
def test_plot_and_report_survive_a_damaged_summary(tmp_path, finished_run, fields):
    # before: tracebacks ('Unknown format code'), overflow in the axes, and a 100k-item env_id
    # took half a minute to draw as a title and was copied into the page twice
    from dqnlab.viz import write_run_artifacts

    run = copy_run(finished_run, tmp_path / "run")
    edit_summary(run, **fields)
    t0 = time.perf_counter()
    _, report = write_run_artifacts(run, gif=False)
    assert time.perf_counter() - t0 < 15 and report.stat().st_size < 500_000


@pytest.mark.parametrize(
    "value, message",
    [
        ("-5", "outside"),
        ("1" + "0" * 30, "outside"),
        ("9" * 5000, "not a whole number"),
        ("abc", "not a whole"),
    ],
)
def test_plot_refuses_impossible_env_steps_with_one_line(tmp_path, finished_run, value, message):
    from dqnlab.viz.metrics import read_run_metrics

    run = copy_run(finished_run, tmp_path / "run")
    edit_metrics(run, "train", "env_step", value, every=False)
    with pytest.raises(DqnlabError, match=f"line 2 is damaged.*{message}") as exc:
        read_run_metrics(run)
    assert len(str(exc.value)) < 300


def test_metrics_rows_out_of_step_order_are_plotted_in_order(tmp_path, finished_run):
    from dqnlab.viz.metrics import read_run_metrics

    run = copy_run(finished_run, tmp_path / "run")
    lines = (run / "metrics.csv").read_text().splitlines()
    (run / "metrics.csv").write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    m = read_run_metrics(run)
    assert (np.diff(m.train_step) >= 0).all() and (np.diff(m.eval_step) >= 0).all()


# -- damaged files: zip checksums ---------------------------------------------------------------


def flip_byte_in_tensor_data(path: Path) -> str:
    """Flip one bit in the middle of the largest tensor of a torch archive; return its member name."""
    with zipfile.ZipFile(path) as archive:
        member = max((m for m in archive.infolist() if "/data/" in m.filename), key=lambda m: m.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[member.header_offset + 26 : member.header_offset + 30])
    start = member.header_offset + 30 + name_len + extra_len
    data[start + member.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))
    return member.filename


@pytest.mark.parametrize("name, what", [("policy.pt", "policy file"), ("checkpoint.pt", "checkpoint")])
def test_flipped_byte_in_a_tensor_is_refused_naming_file_and_member(tmp_path, finished_run, name, what):
    path = tmp_path / name
    path.write_bytes((finished_run / name).read_bytes())
    member = flip_byte_in_tensor_data(path)
    torch.load(path, weights_only=True)  # the problem: torch does not check the CRCs, this loads
    with pytest.raises(
        DqnlabError, match=f"{what} .*{name} is damaged \\(checksum mismatch in archive member '{member}'\\)"
    ) as exc:
        safe_torch_load(path, what)
    assert exc.value.exit_code == 1


def test_flipped_policy_is_refused_by_load_policy_and_checkpoint_by_resume(tmp_path, finished_run):
    run = copy_run(finished_run, tmp_path / "run")
    flip_byte_in_tensor_data(run / "policy.pt")
    with pytest.raises(DqnlabError, match="damaged"):
        dqnlab.load_policy(run)
    flip_byte_in_tensor_data(run / "checkpoint.pt")
    before = (run / "metrics.csv").read_bytes()
    with pytest.raises(DqnlabError, match="checkpoint .* is damaged"):
        dqnlab.train(run_dir=run, resume=True, progress=False)
    assert (run / "metrics.csv").read_bytes() == before


def test_archive_with_compressed_or_overlapping_members_is_refused(tmp_path, finished_run):
    original = (finished_run / "policy.pt").read_bytes()
    compressed = tmp_path / "compressed.pt"
    with zipfile.ZipFile(io.BytesIO(original)) as src, zipfile.ZipFile(compressed, "w", zipfile.ZIP_DEFLATED) as dst:
        for m in src.infolist():
            dst.writestr(m.filename, src.read(m))
    with pytest.raises(DqnlabError, match="compressed members"):
        safe_torch_load(compressed, "policy file")
    overlapping = tmp_path / "overlap.pt"
    with zipfile.ZipFile(overlapping, "w") as dst:  # many entries, one stored blob: reading would cost n * size
        dst.writestr("x/data/0", b"\0" * 100_000)
    data = bytearray(overlapping.read_bytes())
    eocd = data.rindex(b"PK\x05\x06")
    (cd_size, cd_offset) = struct.unpack("<II", data[eocd + 12 : eocd + 20])
    entry = bytes(data[cd_offset : cd_offset + cd_size])
    copies = 50
    body = data[:cd_offset] + entry * copies
    tail = bytearray(data[eocd : eocd + 22])
    tail[8:12] = struct.pack("<HH", copies, copies)
    tail[12:16] = struct.pack("<I", len(entry) * copies)
    overlapping.write_bytes(bytes(body + tail))
    with pytest.raises(DqnlabError, match="overlap"):
        safe_torch_load(overlapping, "policy file")


def test_release_fixtures_still_pass_the_integrity_check():
    for path in sorted((REPO / "tests" / "fixtures" / "0.1.0").glob("*.pt")):
        safe_torch_load(path, "file")  # no DqnlabError


# -- crafted fields are range-checked before they cost time or memory ----------------------------


def _policy_dict(run: Path) -> dict:
    return safe_torch_load(run / "policy.pt", "policy file")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"network": {"hidden": [MAX_UNITS] * 64}}, "do not match|shape"),  # 1 TB if built
        ({"network": {"hidden": [10**9]}}, "between 1 and"),
        ({"obs_shape": [10**9]}, "obs_shape"),
        ({"obs_shape": [4, 4]}, "obs_shape"),
        ({"obs_shape": ["4"]}, "whole numbers"),
        ({"n_actions": 10**9}, "n_actions"),
        ({"n_actions": 3}, "shape"),
        ({"algo": "tabular", "extra": {"tabular": {"bins": [10**4] * 4}}}, "cells"),
        ({"algo": "x" * 10**6}, "not a name"),
        ({"env_id": ["CartPole-v1"] * 10**5}, "not a name"),
        ({"state_dict": {}}, "do not match"),
    ],
)
def test_crafted_policy_fields_are_refused_before_building(tmp_path, finished_run, change, message):
    data = _policy_dict(finished_run)
    data.update(change)
    path = tmp_path / "policy.pt"
    torch.save(data, path)
    t0 = time.perf_counter()
    with pytest.raises(DqnlabError, match=f"damaged dqnlab policy file .*({message})") as exc:
        dqnlab.load_policy(path)
    assert time.perf_counter() - t0 < 10 and len(str(exc.value)) < 400


def _resume_with(run: Path, **changes) -> DqnlabError:
    state = safe_torch_load(run / "checkpoint.pt", "checkpoint")
    for dotted, value in changes.items():
        node = state
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    torch.save(state, run / "checkpoint.pt")
    before = (run / "metrics.csv").read_bytes()
    with pytest.raises(DqnlabError) as exc:
        dqnlab.train(run_dir=run, resume=True, progress=False)
    assert (run / "metrics.csv").read_bytes() == before  # nothing rewound, nothing extended
    assert exc.value.exit_code == 1 and "\n" not in str(exc.value)
    return exc.value


@pytest.mark.parametrize("value", [10**18, -1, "12", 2.5, None])
def test_checkpoint_metrics_bytes_must_lie_within_metrics_csv(tmp_path, finished_run, value):
    # before: ftruncate extended metrics.csv to an exabyte (sparse) or failed with an OSError
    run = copy_run(finished_run, tmp_path / "run")
    assert "metrics_bytes" in str(_resume_with(run, metrics_bytes=value))


@pytest.mark.parametrize(
    "changes",
    [
        {"algo_state__buffer__pos": 10**12},
        {"algo_state__buffer__size": -5},
        {"algo_state__nstep__count": torch.full((8,), 10**6, dtype=torch.int64)},
        {"obs": torch.zeros(3, 4)},
        {"counters__recent": ["x"]},
        {"best_state": {"0.weight": torch.zeros(1)}},
    ],
)
def test_checkpoint_counters_and_shapes_are_checked_on_resume(tmp_path, finished_run, changes):
    # before: a ring position outside the buffer or a wrong shape surfaced as a traceback mid-training
    run = copy_run(finished_run, tmp_path / "run")
    assert "does not fit" in str(_resume_with(run, **changes))


# -- the hostile CLI battery --------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    path.write_text(text)


SWEEP_BASE = "preset: default\nfixed: {total_steps: 1000}\nparams:\n  "
BIG = "1" + "0" * 5000  # a 5001-digit number: past Python's int-from-text limit
LONG = "a" * 100_000  # a 100 kB argument (the kernel allows 128 kB)


def _setup_files(cwd: Path, run: Path) -> dict[str, str]:
    """The files the cases name, written into `cwd`; returns placeholders for the case arguments."""
    _write(cwd / "bomb.yaml", alias_bomb())
    _write(cwd / "dup.yaml", "seed: 1\nseed: 2\n")
    _write(cwd / "big.yaml", f"seed: {BIG}\n")
    _write(cwd / "inf.yaml", "eval:\n  threshold: .inf\n")
    for name, param in [
        ("sw_high", "eval.episodes: {type: int, low: 10, high: 1e299}"),
        ("sw_limits", "dqn.lr: {type: float, low: -1.7e+308, high: 1.7e+308}"),
        ("sw_subnormal", "dqn.lr: {type: float, low: 5.0e-324, high: 0.01, log: true}"),
        ("sw_step", "dqn.lr: {type: float, low: 0, high: 1, step: 1.0e-300}"),
        ("sw_choice", "network.hidden: {type: categorical, choices: [[64], [100000]]}"),
        ("sw_bigint", f"eval.every_steps: {{type: int, low: 1, high: {BIG}}}"),
    ]:
        _write(cwd / f"{name}.yaml", SWEEP_BASE + param + "\n")
    # damaged copies of the finished run
    flipped = copy_run(run, cwd / "flipped")
    flip_byte_in_tensor_data(flipped / "policy.pt")
    flip_byte_in_tensor_data(flipped / "checkpoint.pt")
    crafted = copy_run(run, cwd / "crafted")
    state = safe_torch_load(crafted / "checkpoint.pt", "checkpoint")
    state["metrics_bytes"] = 10**18
    torch.save(state, crafted / "checkpoint.pt")
    policy = _policy_dict(run)
    policy["network"] = {**policy["network"], "hidden": [MAX_UNITS] * 64}
    torch.save(policy, crafted / "policy.pt")
    steps = copy_run(run, cwd / "badsteps")
    edit_metrics(steps, "train", "env_step", "-5", every=False)
    # data-loss cases: a user's project folder (with a config.yaml of its own), links, runs
    # holding a user's file or a link, a run being written by another process, an edited run
    proj = cwd / "proj"
    (proj / "src").mkdir(parents=True)
    for name, text in (
        ("config.yaml", "my: settings\n"),
        ("metrics.csv", "my,own\n1,2\n"),
        ("curves.png", "mine"),
        ("episode.gif", "mine"),
        ("compare.json", "{}"),
        ("trials.csv", "mine"),
        ("src/main.py", "print(1)\n"),
    ):
        _write(proj / name, text)
    (cwd / "linkproj").symlink_to(proj)
    copy_run(run, cwd / "noted")
    _write(cwd / "noted" / "notes.txt", "my notes")
    copy_run(run, cwd / "linked")
    (cwd / "linked" / "shortcut").symlink_to(proj)
    copy_run(run, cwd / "locked")
    edited = copy_run(run, cwd / "edited")
    _write(edited / "config.yaml", (edited / "config.yaml").read_text().replace("gamma: 0.99", "gamma: 0.9", 1))
    _write(cwd / "sw_ok.yaml", SWEEP_BASE + "dqn.lr: {type: float, low: 0.001, high: 0.01}\n")
    return {"{run}": str(run)}


# (name, arguments, exit code, paths that must not exist afterwards)
HOSTILE = [
    ("alias bomb", ["train", "--config", "bomb.yaml", "--run-dir", "r"], 2, ["r"]),
    ("duplicate key", ["train", "--config", "dup.yaml", "--run-dir", "r"], 2, ["r"]),
    ("config from /dev/zero", ["train", "--config", "/dev/zero", "--run-dir", "r"], 2, ["r"]),
    ("5000-digit seed in file", ["train", "--config", "big.yaml", "--run-dir", "r"], 2, ["r"]),
    ("5000-digit seed in --set", ["train", "--set", f"seed={BIG}", "--run-dir", "r"], 2, ["r"]),
    ("5000-digit --seed", ["train", "--seed", BIG, "--run-dir", "r"], 2, ["r"]),
    ("infinite threshold in file", ["train", "--config", "inf.yaml", "--run-dir", "r"], 2, ["r"]),
    ("nan stop threshold", ["train", "--set", "eval.stop_threshold=.nan", "--run-dir", "r"], 2, ["r"]),
    ("alias in --set", ["train", "--set", "network.hidden=[&a [1, 1], *a]", "--run-dir", "r"], 2, ["r"]),
    ("1e11 total steps", ["train", "--total-steps", "100000000000", "--run-dir", "r"], 2, ["r"]),
    ("1e10 buffer", ["train", "--set", "dqn.buffer_size=10000000000", "--run-dir", "r"], 2, ["r"]),
    ("1e299 final episodes", ["train", "--set", "eval.final_episodes=1e299", "--run-dir", "r"], 2, ["r"]),
    ("huge hidden layer", ["train", "--set", "network.hidden=[1000000]", "--run-dir", "r"], 2, ["r"]),
    (
        "65 hidden layers",
        ["train", "--set", "network.hidden=[" + ",".join(["8"] * 65) + "]", "--run-dir", "r"],
        2,
        ["r"],
    ),
    ("100k torch threads", ["train", "--set", "torch_threads=100000", "--run-dir", "r"], 2, ["r"]),
    (
        "1e12-cell Q-table",
        ["train", "--preset", "tabular", "--set", "tabular.bins=[1000,1000,1000,1000]", "--run-dir", "r"],
        2,
        ["r"],
    ),
    (
        "PPO rollout of 1e7 steps",
        ["train", "--preset", "ppo", "--set", "ppo.n_steps=10000000", "--run-dir", "r"],
        2,
        ["r"],
    ),
    (
        "autoreset mode in env kwargs",
        [
            "train",
            "--env",
            "Acrobot-v1",
            "--set",
            "env.kwargs={vector_kwargs: {autoreset_mode: SameStep}}",
            "--run-dir",
            "r",
        ],
        2,
        ["r"],
    ),
    ("100 kB env id", ["train", "--env", LONG, "--run-dir", "r"], 2, ["r"]),
    ("100 kB preset", ["train", "--preset", LONG, "--run-dir", "r"], 2, ["r"]),
    ("100 kB unknown key", ["train", "--set", LONG + "=1", "--run-dir", "r"], 2, ["r"]),
    ("100 kB --seeds", ["train", "--seeds", LONG, "--run-dir", "r"], 2, ["r"]),
    ("100 kB stray argument", ["train", LONG], 2, []),
    ("sweep high end 1e299", ["sweep", "sw_high.yaml", "--trials", "1", "--out", "o"], 2, ["o"]),
    ("sweep range at float limits", ["sweep", "sw_limits.yaml", "--trials", "1", "--out", "o"], 2, ["o"]),
    ("sweep log of a subnormal", ["sweep", "sw_subnormal.yaml", "--trials", "1", "--out", "o"], 2, ["o"]),
    ("sweep step of 1e-300", ["sweep", "sw_step.yaml", "--trials", "1", "--out", "o"], 2, ["o"]),
    ("sweep choice too large", ["sweep", "sw_choice.yaml", "--trials", "1", "--out", "o"], 2, ["o"]),
    ("sweep 5000-digit bound", ["sweep", "sw_bigint.yaml", "--trials", "1", "--out", "o"], 2, ["o"]),
    ("sweep 5000 workers", ["sweep", "sw_choice.yaml", "--trials", "1", "--workers", "5000", "--out", "o"], 2, ["o"]),
    ("play --fps 1e-300", ["play", "{run}", "--gif", "o.gif", "--fps", "1e-300"], 2, ["o.gif"]),
    ("play --fps 1e300", ["play", "{run}", "--gif", "o.gif", "--fps", "1e300"], 2, ["o.gif"]),
    ("play --fps nan", ["play", "{run}", "--gif", "o.gif", "--fps", "nan"], 2, ["o.gif"]),
    ("play --every 1e18", ["play", "{run}", "--gif", "o.gif", "--every", "1000000000000000000"], 2, ["o.gif"]),
    ("play --width 1e9", ["play", "{run}", "--gif", "o.gif", "--width", "1000000000"], 2, ["o.gif"]),
    ("play --episodes 1e12", ["play", "{run}", "--gif", "o.gif", "--episodes", "1000000000000"], 2, ["o.gif"]),
    (
        "play frames too long for a GIF",
        ["play", "{run}", "--gif", "o.gif", "--fps", "0.01", "--every", "10000"],
        2,
        ["o.gif"],
    ),
    (
        "play frames too long for a video",
        ["play", "{run}", "--mp4", "o.mp4", "--fps", "0.01", "--every", "10000"],
        2,
        ["o.mp4"],
    ),
    ("evaluate 1e10 episodes", ["evaluate", "{run}", "--episodes", "10000000000"], 2, []),
    ("evaluate flipped policy", ["evaluate", "flipped"], 1, []),
    ("play flipped policy", ["play", "flipped", "--gif", "o.gif"], 1, ["o.gif"]),
    ("resume flipped checkpoint", ["train", "--resume", "flipped", "--quiet"], 1, ["flipped/summary.json.tmp"]),
    ("resume metrics_bytes 1e18", ["train", "--resume", "crafted", "--quiet"], 1, []),
    ("evaluate 1 TB declared network", ["evaluate", "crafted"], 1, []),
    ("plot negative env step", ["plot", "badsteps", "--out", "p.png"], 1, ["p.png"]),
    # data loss: nothing of the user's is deleted or replaced
    ("overwrite a project folder holding a config.yaml", ["train", "--run-dir", "proj", "--overwrite"], 2, []),
    ("overwrite through a symlink", ["train", "--run-dir", "linkproj", "--overwrite"], 2, []),
    ("resume a project folder", ["train", "--resume", "proj"], 2, []),
    ("report into a project folder", ["report", "proj"], 2, ["proj/report.html"]),
    ("plot over a user's curves.png", ["plot", "{run}", "--out", "proj/curves.png"], 2, []),
    ("play over a user's GIF", ["play", "{run}", "--gif", "proj/episode.gif"], 2, []),
    ("empty --run-dir", ["train", "--run-dir", ""], 2, []),
    ("empty --out", ["compare", "lqr", "--out", ""], 2, []),
    ("compare into a user's folder", ["compare", "lqr", "--seeds", "0", "--out", "proj"], 2, []),
    ("sweep into a user's folder", ["sweep", "sw_ok.yaml", "--trials", "1", "--out", "proj"], 2, ["proj/study.db"]),
    ("overwrite a run holding a user's file", ["train", "--run-dir", "noted", "--overwrite"], 2, []),
    ("overwrite a run holding a symlink", ["train", "--run-dir", "linked", "--overwrite"], 2, []),
    ("replay too large for memory", ["train", "--set", "dqn.buffer_size=1000000000", "--run-dir", "r"], 2, ["r"]),
    (
        "more torch threads than cores",
        ["train", "--set", f"torch_threads={os.cpu_count() + 1}", "--run-dir", "r"],
        2,
        ["r"],
    ),
    # one writer per run
    ("overwrite a run another process writes", ["train", "--run-dir", "locked", "--overwrite"], 1, []),
    ("resume a run another process writes", ["train", "--resume", "locked"], 1, []),
    # resume is exact or refused
    ("resume an edited config.yaml", ["train", "--resume", "edited", "--quiet"], 1, []),
    (
        "compare on more workers than 4 per core",
        ["compare", "lqr", "--seeds", "0-1", "--out", "o", "--workers", str(4 * len(os.sched_getaffinity(0)) + 1)],
        2,
        ["o"],
    ),
]


@pytest.fixture(scope="module")
def hostile_cwd(tmp_path_factory, finished_run):
    from dqnlab.runtime.rundir import FolderLock

    cwd = tmp_path_factory.mktemp("hostile")
    placeholders = _setup_files(cwd, finished_run)
    lock = FolderLock(cwd / "locked").acquire()  # another writer, for the whole battery
    yield cwd, placeholders
    lock.release()


def _tree(path: Path) -> dict[str, str]:
    """Every file under `path` with a hash of its bytes: what a refused command must leave alone
    (a run's lock file holds the pid of its last writer, which a refused resume may be)."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != ".dqnlab.lock"
    }


@pytest.mark.parametrize("name, args, code, absent", HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_cli_input_is_one_short_line(hostile_cwd, name, args, code, absent):
    cwd, placeholders = hostile_cwd
    args = [placeholders.get(a, a) for a in args]
    before = _tree(cwd)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dqnlab", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    _, stderr = proc.communicate(timeout=300)
    proc.stderr = stderr
    try:  # no process of the command's own session outlives it
        os.killpg(proc.pid, 0)
        orphans = True
    except ProcessLookupError:
        orphans = False
    assert not orphans, "a process of the command is still running"
    err = proc.stderr.decode("utf-8", errors="replace")
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err
    assert len(proc.stderr) < 500, err[:500]
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dqnlab: error: "), err[:500]
    for path in absent:
        assert not (cwd / path).exists(), path
    assert _tree(cwd) == before  # nothing written, nothing changed (damaged files included)
