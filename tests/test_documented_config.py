"""`dqnlab presets --show NAME`: a documented config that loads back to exactly the preset."""

import re

import pytest

from dqnlab.cli.main import main
from dqnlab.config import build_config
from dqnlab.config.algorithms import ALGORITHM_SECTIONS, ALGORITHMS
from dqnlab.config.documented import WIDTH, documented_yaml
from dqnlab.config.presets import preset_names


@pytest.mark.parametrize("name", preset_names())
def test_the_documented_config_of_every_preset_loads_back_to_the_preset(name, tmp_path):
    config = build_config(name)
    path = tmp_path / "my.yaml"
    path.write_text(documented_yaml(config))
    assert build_config(config_file=path) == config


@pytest.mark.parametrize("name", preset_names())
def test_every_field_has_its_description_above_it_and_only_read_sections_are_written(name):
    config = build_config(name)
    lines = documented_yaml(config).splitlines()
    keys = [(i, line) for i, line in enumerate(lines) if re.match(r"^ *[a-z_]+:", line)]
    assert keys
    for i, line in keys:
        above = lines[i - 1].strip()
        assert above.startswith("# ") and len(above) > 4, f"{name}: no description above {line!r}"
    assert all(len(line) <= WIDTH for line in lines if line.lstrip().startswith("#"))
    top = {line.split(":")[0] for _, line in keys if not line.startswith(" ")}
    read = set(ALGORITHMS[config.algo].sections)
    assert {s for s in ALGORITHM_SECTIONS if s in top} == read
    assert {"env", "eval", "seed", "total_steps", "algo"} <= top


def test_nulls_that_stand_for_the_environment_say_what_they_stand_for():
    text = documented_yaml(build_config("default"))
    assert "threshold: null  # the environment's: 475 for CartPole-v1" in text
    assert "max_episode_steps: null  # registered limit: 500" in text
    assert "stop_threshold: null  # eval.threshold's: 475" in text
    v0 = documented_yaml(build_config("default", overrides=["env.id=CartPole-v0", "eval.stop_threshold=190"]))
    assert "threshold: null  # the environment's: 195 for CartPole-v0" in v0
    assert "max_episode_steps: null  # registered limit: 200" in v0
    # a value that is set has no note; an option that is off says when it would apply
    assert "\n  max_episode_steps: 10000\n" in documented_yaml(build_config("s4-batchnorm"))
    assert "(No effect unless dqn.target_update is 'soft'.)" in _comments(text)
    # a task solved by its success rate: the return threshold does not apply, and says so
    target = documented_yaml(build_config("target"))
    assert "\n  threshold: null\n" in target
    assert "(No effect unless eval.success_threshold is null.)" in _comments(target)


def _comments(text):
    """The comment lines of `text` joined into one line (undoing the wrapping)."""
    return " ".join(line.strip().removeprefix("# ") for line in text.splitlines() if line.strip().startswith("#"))


def test_presets_show_prints_the_documented_config(capsys):
    assert main(["presets", "--show", "ppo"]) == 0
    out = capsys.readouterr().out
    assert out == documented_yaml(build_config("ppo"))
    assert out.startswith("# dqnlab config: preset ppo, algo ppo")
    assert "\ndqn:" not in out and "\nppo:" in out and "critic_lr: null  # ppo.lr's: 0.001" in out


def test_presets_lists_the_algorithm_and_environment_of_each(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    starts = {line.split()[0]: line for line in lines if not line.startswith(" ")}
    assert set(starts) == set(preset_names())
    assert "[ppo, CartPole-v1]" in starts["ppo"] and "[dqn, dqnlab/CartPoleTarget-v0]" in starts["target"]
    assert "[baseline, CartPole-v1]" in starts["lqr"] and "[dqn, CartPole-v0]" in starts["s2-config"]


def test_the_algo_field_names_every_algorithm():
    from dqnlab.config.schema import RunConfig

    above = documented_yaml(build_config("default")).split("\nalgo:")[0].splitlines()
    comment = []
    while above and above[-1].startswith("#"):  # the comment lines right above the field
        comment.insert(0, above.pop())
    text = " ".join(comment)
    assert all(re.search(rf"\b{name}\b", text) for name in ALGORITHMS), text
    assert RunConfig.model_fields["algo"].default in ALGORITHMS
