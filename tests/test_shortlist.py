"""eval.shortlist: the networks of the K best evaluations are kept, evaluated again on the same fresh
episodes when training ends, and the best of that second look is delivered; training itself, and
runs without the option, are unchanged."""

import signal

import numpy as np
import pytest
import torch
from conftest import metrics_without_wall

import dqnlab
from dqnlab.core.errors import ConfigError
from dqnlab.core.fileio import atomic_torch_save, safe_torch_load
from dqnlab.core.stopping import request_stop
from dqnlab.runtime.evaluation import EvalResult, Evaluator
from dqnlab.runtime.rng import RngStreams
from dqnlab.runtime.rundir import read_metrics
from dqnlab.train import TrainingInterrupted

# Acrobot, the online network delivered: after 4000 steps its evaluations differ (a run of the
# policy average would still score -500 everywhere, and every choice would look right).
SHORT = {
    "env.id": "Acrobot-v1",
    "total_steps": 4000,
    "eval.every_steps": 500,
    "eval.episodes": 5,
    "eval.shortlist": 3,
    "eval.shortlist_episodes": 20,
    "dqn.policy_average_tau": None,
}


def rows_of(run_dir, kind):
    return [r for r in read_metrics(run_dir / "metrics.csv") if r["kind"] == kind]


def weights(path, key="state_dict"):
    return safe_torch_load(path, "file")[key]


def test_the_best_of_the_second_look_is_delivered(tmp_path, tiny):
    cfg = tiny(seed=1, **SHORT)
    res = dqnlab.train(cfg, tmp_path / "short", progress=False)
    evals = rows_of(tmp_path / "short", "eval")
    # the shortlist: the three best evaluations by mean, best first, the earlier one of equals
    by_mean = sorted(evals, key=lambda r: -float(r["eval_mean"]))  # sorted() is stable
    short = res.summary["shortlist"]
    assert [(s["env_step"], s["eval_mean"]) for s in short] == [
        (int(r["env_step"]), float(r["eval_mean"])) for r in by_mean[:3]
    ]
    assert len({s["eval_mean"] for s in short}) == 3  # they differ: the test can tell them apart
    # each was evaluated again (metrics.csv has those rows); the best of them is delivered
    assert [(int(r["env_step"]), float(r["eval_mean"])) for r in rows_of(tmp_path / "short", "recheck")] == [
        (s["env_step"], s["recheck_mean"]) for s in short
    ]
    best = max(s["recheck_mean"] for s in short)
    delivered = [s for s in short if s["delivered"]]
    assert delivered == [next(s for s in short if s["recheck_mean"] == best)]  # the first of equals
    assert res.summary["best_eval_step"] == delivered[0]["env_step"]
    assert res.summary["best_eval_mean"] == delivered[0]["eval_mean"]
    assert res.summary["recheck_seconds"] > 0
    # policy.pt is that network: on the second look's episodes it scores what its row says
    evaluator = Evaluator(cfg.eval_env(), 100)
    again = evaluator.run(dqnlab.load_policy(tmp_path / "short").act_batch, 20, RngStreams.derive(1).eval_shortlist)
    evaluator.close()
    assert again.mean == delivered[0]["recheck_mean"]

    # Without the shortlist: the same training and evaluations, the best evaluation delivered.
    plain = dqnlab.train(
        tiny(seed=1, **{**SHORT, "eval.shortlist": 1, "eval.shortlist_episodes": 500}),
        tmp_path / "plain",
        progress=False,
    )
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]  # noqa: E731
    assert strip(rows_of(tmp_path / "plain", "eval")) == strip(evals)
    assert strip(rows_of(tmp_path / "plain", "train")) == strip(rows_of(tmp_path / "short", "train"))
    assert plain.summary["shortlist"] is None and plain.summary["recheck_seconds"] is None
    assert plain.summary["best_eval_step"] == short[0]["env_step"]
    assert not rows_of(tmp_path / "plain", "recheck")


def test_the_second_look_decides_even_against_the_first(tmp_path, tiny, monkeypatch):
    # The second look scripted so that the worst of the three wins it: that network is delivered.
    cfg = tiny(seed=1, **SHORT)
    recheck_seed, original, rechecks = RngStreams.derive(1).eval_shortlist, Evaluator.run, []

    def scripted(self, act, episodes, seed, *more):
        if seed != recheck_seed:
            return original(self, act, episodes, seed, *more)
        rechecks.append(act)
        score = [-300.0, -200.0, -100.0][len(rechecks) - 1]
        return EvalResult(np.full(episodes, score), np.full(episodes, 100, dtype=np.int64))

    monkeypatch.setattr(Evaluator, "run", scripted)
    res = dqnlab.train(cfg, tmp_path / "r", progress=False)
    short = res.summary["shortlist"]
    assert len(rechecks) == 3 and [s["delivered"] for s in short] == [False, False, True]
    assert [s["recheck_mean"] for s in short] == [-300.0, -200.0, -100.0]
    assert short[2]["eval_mean"] < short[0]["eval_mean"]  # the first look ranked it last
    assert (res.summary["best_eval_step"], res.summary["best_eval_mean"]) == (
        short[2]["env_step"],
        short[2]["eval_mean"],
    )
    # policy.pt holds the third network's weights (the checkpoint, written as training ended, has them)
    kept = weights(tmp_path / "r" / "checkpoint.pt", "shortlist")
    assert [k["step"] for k in kept] == [s["env_step"] for s in short]
    delivered = weights(tmp_path / "r" / "policy.pt")
    assert all(torch.equal(delivered[k], kept[2]["state"][k]) for k in delivered)
    assert not all(torch.equal(delivered[k], kept[0]["state"][k]) for k in delivered)


def test_a_signal_during_the_second_look_leaves_a_run_that_resumes_to_the_same_end(tmp_path, tiny, monkeypatch):
    cfg = tiny(seed=1, **SHORT)
    reference = dqnlab.train(cfg, tmp_path / "ref", progress=False)
    recheck_seed, original, calls = RngStreams.derive(1).eval_shortlist, Evaluator.run, []

    def signalled(self, act, episodes, seed, should_stop=None, *more):
        if seed == recheck_seed:
            calls.append(1)
            if len(calls) == 2:  # the second network's second look: a stop signal on its first step
                request_stop(signal.SIGINT)
        return original(self, act, episodes, seed, should_stop, *more)

    monkeypatch.setattr(Evaluator, "run", signalled)
    with pytest.raises(TrainingInterrupted) as stopped:
        dqnlab.train(cfg, tmp_path / "run", progress=False)
    assert len(calls) == 2 and stopped.value.summary["status"] == "interrupted"
    assert not rows_of(tmp_path / "run", "recheck")  # nothing of the cut-off second look is written
    monkeypatch.undo()
    resumed = dqnlab.train(run_dir=tmp_path / "run", resume=True, progress=False)
    assert metrics_without_wall(tmp_path / "ref") == metrics_without_wall(tmp_path / "run")
    for key in ("status", "shortlist", "best_eval_step", "best_eval_mean", "eval_mean", "env_steps"):
        assert resumed.summary[key] == reference.summary[key], key
    a, b = weights(tmp_path / "ref" / "policy.pt"), weights(tmp_path / "run" / "policy.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_an_early_stop_chooses_among_the_shortlist_too(tmp_path, tiny):
    # CartPole with a low bar: the run stops early once an evaluation (and its confirmation) pass
    cfg = tiny(
        seed=0,
        **{
            "total_steps": 20_000,
            "eval.every_steps": 500,
            "eval.episodes": 10,
            "eval.early_stop": True,
            "eval.threshold": 30,
            "eval.shortlist": 3,
            "eval.shortlist_episodes": 10,
        },
    )
    res = dqnlab.train(cfg, tmp_path / "r", progress=False)
    assert res.summary["stop_reason"] == "threshold" and res.summary["env_steps"] < 20_000
    short = res.summary["shortlist"]
    assert 2 <= len(short) <= 3 and sum(s["delivered"] for s in short) == 1
    assert len(rows_of(tmp_path / "r", "recheck")) == len(short)


def test_a_damaged_shortlist_in_a_checkpoint_is_refused(tmp_path, tiny):
    dqnlab.train(tiny(seed=1, **SHORT), tmp_path / "r", progress=False, total_steps=1000)
    ckpt = safe_torch_load(tmp_path / "r" / "checkpoint.pt", "checkpoint")
    first = ckpt["shortlist"][0]["state"]
    first[next(iter(first))] = torch.zeros(3, 3)
    atomic_torch_save(tmp_path / "r" / "checkpoint.pt", ckpt)
    with pytest.raises(dqnlab.DqnlabError, match="does not fit this run's config"):
        dqnlab.train(run_dir=tmp_path / "r", resume=True, progress=False, total_steps=2000)


def test_shortlist_options_need_their_mode(tiny):
    with pytest.raises(ConfigError, match="eval.shortlist has no effect unless eval.deliver is 'best_eval'"):
        tiny(**{"eval.shortlist": 3, "eval.deliver": "last"})
    with pytest.raises(ConfigError, match="eval.shortlist_episodes has no effect unless eval.shortlist is above 1"):
        tiny(**{"eval.shortlist_episodes": 50})
    assert dqnlab.build_config().eval.shortlist == 1  # off unless a preset or config sets it


def test_evaluations_are_cut_only_when_they_could_not_enter_the_shortlist(tmp_path, tiny):
    dqnlab.train(tiny(seed=1, **{**SHORT, "eval.max_return_to_go": 0.0}), tmp_path / "cut", progress=False)
    rows = [r for r in read_metrics(tmp_path / "cut" / "metrics.csv") if r["kind"] in ("eval", "partial")]
    assert {r["kind"] for r in rows} == {"eval", "partial"}
    kept: list[float] = []
    for r in rows:
        mean = float(r["eval_mean"])
        if r["kind"] == "partial":  # the shortlist was full and this could not have beaten its last
            assert len(kept) == 3 and mean <= kept[-1]
        else:
            kept = sorted([*kept, mean], reverse=True)[:3]
