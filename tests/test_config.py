"""Config building, `--set` parsing, and one-line error messages."""

import math

import pytest

from dqnlab.config import RunConfig, build_config, config_from_mapping, config_to_yaml, load_yaml_file, validate_config
from dqnlab.config.overrides import parse_override
from dqnlab.core.errors import ConfigError, DqnlabError


def config_error(**kwargs) -> str:
    """The message of the ConfigError that build_config(**kwargs) raises (checked single-line)."""
    with pytest.raises(ConfigError) as info:
        build_config(**kwargs)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert msg.strip(), "empty error message"
    return msg


# ---------------------------------------------------------------------------------------------
# Defaults
# ---------------------------------------------------------------------------------------------


def test_build_config_defaults_validate():
    cfg = build_config()
    assert isinstance(cfg, RunConfig)
    assert cfg.preset == "default"
    # The 'default' preset is documented to be exactly the field defaults.
    assert cfg.model_dump(exclude={"preset"}) == RunConfig().model_dump(exclude={"preset"})
    # And the resolved dict validates again to the same config.
    assert validate_config(cfg.to_dict()) == cfg


def test_a_keyword_none_sets_its_field_to_null():
    assert build_config().dqn.policy_average_tau == 0.001  # left out: the preset's value
    assert build_config(**{"dqn.policy_average_tau": None}).dqn.policy_average_tau is None
    assert build_config("acrobot").eval.threshold is not None
    assert build_config("acrobot", **{"eval.threshold": None}).eval.threshold is None
    assert "'seed'" in config_error(seed=None)  # a field that takes no null: one clear line


def test_yaml_round_trip(tmp_path):
    cfg = build_config(overrides=["dqn.lr=1e-5", "network.hidden=[32]", "eval.threshold=195", "seed=7"])
    path = tmp_path / "config.yaml"
    path.write_text(config_to_yaml(cfg), encoding="utf-8")
    again = build_config(config_file=path)
    assert again == cfg
    assert again.dqn.lr == 1e-5  # written as 1.0e-05, read back as a float, not a string


def test_explicit_fields_and_override_precedence(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\ndqn:\n  gamma: 0.9\n  batch_size: 32\n", encoding="utf-8")
    cfg = build_config(config_file=path, overrides=["dqn.gamma=0.8"], total_steps=1234, **{"env.id": "CartPole-v0"})
    assert cfg.seed == 3  # from the file
    assert cfg.dqn.batch_size == 32  # from the file
    assert cfg.dqn.gamma == 0.8  # the override beats the file
    assert cfg.total_steps == 1234  # explicit field
    assert cfg.env.id == "CartPole-v0"  # dotted explicit field
    assert cfg.dqn.lr == RunConfig().dqn.lr  # untouched keys keep their defaults


# ---------------------------------------------------------------------------------------------
# parse_override
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, key, value",
    [
        ("dqn.batch_size=64", ("dqn", "batch_size"), 64),
        ("dqn.lr=0.001", ("dqn", "lr"), 0.001),
        ("dqn.lr=1e-3", ("dqn", "lr"), 0.001),  # YAML 1.1 would leave this a string
        ("dqn.lr=2.5E-4", ("dqn", "lr"), 2.5e-4),
        ("network.hidden=[64,64]", ("network", "hidden"), [64, 64]),
        ("network.hidden=[]", ("network", "hidden"), []),
        ("dqn.max_grad_norm=null", ("dqn", "max_grad_norm"), None),
        ("dqn.double=true", ("dqn", "double"), True),
        ("dqn.double=false", ("dqn", "double"), False),
        ("env.id=CartPole-v1", ("env", "id"), "CartPole-v1"),
        ("seed=5", ("seed",), 5),
        ("  seed =5", ("seed",), 5),  # whitespace around the key
        ("env.id=a=b", ("env", "id"), "a=b"),  # only the first '=' splits
    ],
)
def test_parse_override(text, key, value):
    k, v = parse_override(text)
    assert k == key
    assert v == value
    assert type(v) is type(value)  # 64 stays an int, 1e-3 becomes a float, true a bool


@pytest.mark.parametrize("text", ["noequals", "=3", "dqn..lr=1", ".lr=1"])
def test_parse_override_malformed(text):
    with pytest.raises(ConfigError) as info:
        parse_override(text)
    assert text in str(info.value)


def test_overrides_reach_the_config():
    cfg = build_config(
        overrides=[
            "dqn.lr=1e-3",
            "network.hidden=[16,8]",
            "dqn.max_grad_norm=null",
            "dqn.double=false",
            "dqn.batch_size=64",
        ]
    )
    assert cfg.dqn.lr == 0.001
    assert cfg.network.hidden == [16, 8]
    assert cfg.dqn.max_grad_norm is None
    assert cfg.dqn.double is False
    assert cfg.dqn.batch_size == 64


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, suggestion",
    [
        ("dqn.lrr=0.1", "'dqn.lr'"),
        ("sed=1", "'seed'"),
        ("explore.decay_step=10", "'explore.decay_steps'"),
        ("network.hiden=[8]", "'network.hidden'"),
    ],
)
def test_unknown_key_suggests_closest(override, suggestion):
    msg = config_error(overrides=[override])
    key = override.split("=")[0]
    assert f"'{key}'" in msg
    assert f"did you mean {suggestion}" in msg


def test_unknown_key_in_file_suggests_closest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dqnn:\n  lr: 0.1\n", encoding="utf-8")
    msg = config_error(config_file=path)
    assert "'dqnn'" in msg and "did you mean 'dqn'" in msg


@pytest.mark.parametrize(
    "override, key",
    [
        ("dqn.batch_size=abc", "dqn.batch_size"),
        ("dqn.gamma=[1,2]", "dqn.gamma"),
        ("seed=1.5", "seed"),
        ("explore.schedule=linar", "explore.schedule"),
        ("dqn=3", "dqn"),
    ],
)
def test_wrong_type_names_the_key(override, key):
    msg = config_error(overrides=[override])
    assert f"'{key}'" in msg


@pytest.mark.parametrize(
    "override, key",
    [
        ("dqn.gamma=1.5", "dqn.gamma"),
        ("dqn.gamma=-0.1", "dqn.gamma"),
        ("dqn.batch_size=0", "dqn.batch_size"),
        ("dqn.lr=0", "dqn.lr"),
        ("env.num_envs=0", "env.num_envs"),
        ("explore.end=2", "explore.end"),
        ("seed=-1", "seed"),
        ("env.max_episode_steps=0", "env.max_episode_steps"),
    ],
)
def test_out_of_range_names_the_key(override, key):
    msg = config_error(overrides=[override])
    assert f"'{key}'" in msg
    assert override.split("=")[1] in msg  # the offending value is shown


def test_hidden_sizes_must_be_positive():
    msg = config_error(overrides=["network.hidden=[64,0]"])
    assert "network.hidden" in msg


def test_yaml_syntax_error_reports_line_number(tmp_path):
    path = tmp_path / "bad.yaml"
    # Line 3 has a mapping inside a plain scalar: a syntax error at line 3.
    path.write_text("seed: 1\ntotal_steps: 100\ndqn: lr: 0.1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_yaml_file(path)
    msg = str(info.value)
    assert "line 3" in msg
    assert str(path) in msg
    assert "\n" not in msg
    # build_config reports it the same way.
    assert "line 3" in config_error(config_file=path)


def test_missing_config_file(tmp_path):
    msg = config_error(config_file=tmp_path / "nope.yaml")
    assert "not found" in msg and "nope.yaml" in msg


def test_config_file_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    assert "mapping" in config_error(config_file=path)


def test_empty_config_file_is_the_default(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert build_config(config_file=path) == build_config()


def test_unknown_preset_suggests_closest():
    msg = config_error(preset="defualt")
    assert "'defualt'" in msg and "did you mean 'default'" in msg


def test_validate_config_rejects_non_mapping():
    with pytest.raises(ConfigError):
        validate_config([1, 2])


def test_config_error_is_a_dqnlab_error_with_usage_exit_code():
    with pytest.raises(DqnlabError) as info:
        build_config(overrides=["dqn.gamma=1.5"])
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"overrides": ["dqn.lrr=0.1"]},
        {"overrides": ["dqn.batch_size=abc"]},
        {"overrides": ["dqn.gamma=1.5"]},
        {"overrides": ["dqn.batch_size=0"]},
        {"overrides": ["network.hidden=[8,-1]"]},
        {"overrides": ["env.id=5"]},
        {"overrides": ["noequals"]},
        {"overrides": ['explore.schedule="multi\\nline"']},  # a YAML escape: the value holds a newline
        {"preset": "defualt"},
        {"preset": "zzz"},
    ],
)
def test_every_error_is_one_line(kwargs):
    config_error(**kwargs)  # asserts no '\n' in the message


def test_inf_and_nan_are_not_silently_accepted_as_a_learning_rate():
    # 'inf' parses as a float; the range check must still refuse it.
    assert math.isinf(parse_override("dqn.lr=inf")[1])
    assert "'dqn.lr'" in config_error(overrides=["dqn.lr=inf"])


def test_scientific_notation_in_config_file_like_set(tmp_path):
    assert build_config(overrides=["total_steps=5e4"]).total_steps == 50_000
    path = tmp_path / "c.yaml"
    path.write_text("total_steps: 5e4\n", encoding="utf-8")
    assert build_config(config_file=path).total_steps == 50_000


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["dqn.tau=0.1"], "dqn.tau"),  # soft-update rate while updates are hard copies
        (["dqn.target_update=soft", "dqn.target_update_every=7"], "dqn.target_update_every"),
        (["explore.decrement=0.01"], "explore.decrement"),  # the default schedule is linear
        (["explore.schedule=decrement", "explore.decay_steps=10"], "explore.decay_steps"),
        (["explore.episode_decay=0.9"], "explore.episode_decay"),
        (["eval.early_stop=false", "eval.stop_z=3"], "eval.stop_z"),
        (["explore.hold_duration=zeta"], "explore.hold_duration"),  # plain epsilon-greedy holds nothing
        (["explore.hold=8", "explore.hold_zeta=3"], "explore.hold_zeta"),  # fixed durations
        (["algo=tabular", "explore.hold=8"], "explore.hold"),  # DQN only
        (["algo=ppo", "network.input_scaling=bounds"], "network.input_scaling"),  # DQN only
    ],
)
def test_option_that_does_not_apply_is_refused(overrides, key):
    with pytest.raises(ConfigError) as exc:
        build_config(overrides=overrides)
    assert key in str(exc.value) and "no effect" in str(exc.value) and "\n" not in str(exc.value)


def test_options_that_apply_are_accepted():
    cfg = build_config(
        overrides=["dqn.target_update=soft", "dqn.tau=0.1", "explore.schedule=decrement", "explore.decrement=0.01"]
    )
    assert cfg.dqn.tau == 0.1 and cfg.explore.decrement == 0.01
    # a full dump (as in config.yaml) holds every option at its default and loads back
    assert build_config(overrides=[]).model_validate(cfg.to_dict()) == cfg


# -- one rule for dotted overrides (#15) ----------------------------------------------------------


def test_set_with_a_mapping_replaces_the_presets_mapping():
    # before: --set deep-merged a mapping, so robust kept randomising and target kept margin 0.25
    robust = build_config("robust", overrides=["env.randomize={}"])
    assert robust.env.randomize.ranges() == {}
    assert build_config("robust").env.randomize.ranges()  # the preset itself randomises
    target = build_config("target", overrides=["env.kwargs={}"])
    assert target.env.kwargs == {}
    assert build_config("target", overrides=["env.kwargs={move_prob: 0.01}"]).env.kwargs == {"move_prob": 0.01}


def test_a_yaml_file_sets_fields_one_by_one_and_an_empty_mapping_resets_a_section(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: robust\nenv:\n  randomize: {length: [0.4, 0.6]}\n  kwargs: {}\n")
    cfg = build_config(config_file=f)
    preset = build_config("robust").env.randomize
    assert cfg.env.randomize.length == (0.4, 0.6)  # this field changed
    assert cfg.env.randomize.masspole == preset.masspole  # the preset's other ranges stay
    f.write_text("preset: robust\nenv:\n  randomize: {}\n")
    assert build_config(config_file=f).env.randomize.ranges() == {}


def test_sweeps_fixed_values_follow_the_same_rule(tmp_path):
    from dqnlab.experiments.sweep import load_search_space, trial_config

    space = tmp_path / "s.yaml"
    space.write_text(
        "preset: robust\nfixed: {env.randomize: {}}\nparams:\n  ppo.lr: {type: float, low: 0.001, high: 0.01}\n"
    )
    cfg = trial_config(load_search_space(space), {"ppo.lr": 0.002})
    assert cfg.env.randomize.ranges() == {} and cfg.ppo.lr == 0.002


# -- a preset per environment (#17) ---------------------------------------------------------------


@pytest.mark.parametrize("env_id, preset", [("Acrobot-v1", "acrobot"), ("MountainCar-v0", "mountaincar")])
def test_naming_an_environment_chooses_its_preset(env_id, preset):
    cfg = build_config(env=env_id)
    assert cfg.preset == preset and cfg.env.id == env_id
    assert cfg == build_config(preset)


@pytest.mark.parametrize(
    "preset, zoo_steps", [("acrobot", 100_000), ("mountaincar", 120_000), ("lunarlander", 100_000)]
)
def test_the_presets_beyond_cartpole_end_within_half_the_zoos_steps(preset, zoo_steps):
    # issue #17: at most half the RL Zoo's env steps. Training stops at the first vector step
    # that reaches total_steps, up to num_envs - 1 steps past it.
    cfg = build_config(preset)
    assert cfg.total_steps + cfg.env.num_envs - 1 <= zoo_steps // 2


def test_an_explicit_preset_wins_over_the_environments(tmp_path):
    cfg = build_config("default", env="MountainCar-v0")
    assert cfg.preset == "default" and cfg.env.id == "MountainCar-v0" and cfg.explore.hold == 1
    f = tmp_path / "c.yaml"
    f.write_text("preset: fast\ntotal_steps: 1234\n")
    cfg = build_config(config_file=f, env="Acrobot-v1")
    assert cfg.preset == "fast" and cfg.env.id == "Acrobot-v1" and cfg.total_steps == 1234
    # a config file without a preset key: the environment's preset, then the file over it
    f.write_text("total_steps: 1234\n")
    cfg = build_config(config_file=f, env="Acrobot-v1")
    assert cfg.preset == "acrobot" and cfg.total_steps == 1234 and cfg.dqn.batch_size == 512


def test_only_env_chooses_a_preset_and_other_envs_keep_the_default():
    # a dotted env.id sets the field alone (as --set env.id=... does)
    assert build_config(**{"env.id": "MountainCar-v0"}).preset == "default"
    assert build_config(overrides=["env.id=MountainCar-v0"]).preset == "default"
    assert build_config(env="CartPole-v0").preset == "default"


def test_env_presets_name_presets_on_their_environment():
    from dqnlab.config.presets import ENV_PRESETS

    for env_id, name in ENV_PRESETS.items():
        assert build_config(name).env.id == env_id


def test_a_recorded_config_from_before_the_policy_average_means_no_average():
    from dqnlab.config import validate_recorded_config

    recorded = build_config().to_dict()
    del recorded["dqn"]["policy_average_tau"]  # a DQN run's config.yaml written before the field
    assert validate_recorded_config(recorded).dqn.policy_average_tau is None
    assert validate_config(recorded).dqn.policy_average_tau == 0.001  # a user's config: the default
    now = build_config(overrides=["dqn.policy_average_tau=0.01"]).to_dict()
    assert validate_recorded_config(now).dqn.policy_average_tau == 0.01
    ppo = build_config("ppo").to_dict()  # another algorithm's run keeps the default (a section it does not read)
    ppo["dqn"].pop("policy_average_tau", None)
    assert validate_recorded_config(ppo) == build_config("ppo")


def test_a_recorded_config_from_before_bounded_targets_means_unbounded():
    from dqnlab.config import validate_recorded_config

    recorded = build_config().to_dict()
    del recorded["dqn"]["bound_targets"]
    assert validate_recorded_config(recorded).dqn.bound_targets is False
    assert validate_recorded_config(recorded).dqn.policy_average_tau == 0.001  # that field was recorded
    assert validate_config(recorded).dqn.bound_targets is True  # a user's config: the default
    assert validate_recorded_config(build_config().to_dict()).dqn.bound_targets is True


def test_only_the_presets_tuned_with_them_average_their_policy_and_bound_their_targets():
    from dqnlab.config.presets import PRESETS

    with_aids = {"default": 0.001, "pixels": 0.01, "mountaincar": 0.001}  # measured so (BENCHMARKS.md)
    for name in PRESETS:
        cfg = build_config(name)
        if cfg.algo == "dqn":
            assert cfg.dqn.policy_average_tau == with_aids.get(name), name
            assert cfg.dqn.bound_targets == (name in with_aids), name


def test_delivering_the_longest_episodes_network_needs_no_policy_average():
    with pytest.raises(ConfigError, match="set dqn.policy_average_tau to null"):
        build_config(overrides=["eval.deliver=longest_episode"])
    cfg = build_config(overrides=["eval.deliver=longest_episode", "dqn.policy_average_tau=null"])
    assert cfg.eval.deliver == "longest_episode" and cfg.dqn.policy_average_tau is None


def test_a_dict_config_starts_from_its_preset_as_a_config_file_does(tmp_path):
    # dqnlab.train(config={...}) reads the dict as a config file's contents: {"preset": NAME, ...}
    # is that preset with the dict's values on top, not the default with NAME as a label.
    cfg = config_from_mapping({"preset": "mountaincar", "seed": 3, "dqn": {"lr": 2e-3}})
    assert cfg == build_config(preset="mountaincar", seed=3, **{"dqn.lr": 2e-3})
    assert cfg.env.id == "MountainCar-v0" and cfg.explore.hold == 16
    path = tmp_path / "c.yaml"
    path.write_text("preset: mountaincar\nseed: 3\ndqn:\n  lr: 0.002\n")
    assert cfg == build_config(config_file=path)
    # a complete config (every field, as config.yaml holds it) comes back unchanged
    full = build_config(preset="acrobot", seed=5, **{"dqn.lr": 7e-4})
    assert config_from_mapping(full.to_dict()) == full
    assert config_from_mapping({"seed": 1}) == build_config(seed=1)
    with pytest.raises(ConfigError, match="unknown preset 'mountainkar'; did you mean 'mountaincar'"):
        config_from_mapping({"preset": "mountainkar"})
    with pytest.raises(ConfigError, match="mapping"):
        config_from_mapping(["preset"])
