"""dqnlab.experiments.fanout: the local pool and Ray give the same runs; dead workers are contained; Ray is optional."""

import json
import os
import signal
import sys

import pytest
from conftest import metrics_without_wall

from dqnlab.cli.main import main
from dqnlab.config import build_config
from dqnlab.core.errors import DqnlabError
from dqnlab.experiments.fanout import RunJob, run_jobs


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


class Die:
    """Kills the process that unpickles it: put in a job, its worker dies (as under the OOM killer)."""

    def __reduce__(self):
        return _die, ()


TIMINGS = {
    "train_seconds",
    "final_eval_seconds",
    "wall_seconds",
    "seconds",
    "started",
    "finished",
    "run_dir",
    "versions",
    "host",
}


def _jobs(root):
    dqn = build_config(
        total_steps=1500,
        artifacts=False,
        **{"eval.every_steps": 500, "eval.episodes": 3, "eval.final_episodes": 5, "dqn.learning_starts": 200},
    )
    lqr = build_config(
        algo="baseline",
        total_steps=1000,
        artifacts=False,
        **{"eval.every_steps": 500, "eval.episodes": 3, "eval.final_episodes": 3},
    )
    jobs = [RunJob(("dqn", s), {**dqn.to_dict(), "seed": s}, str(root / f"dqn-{s}")) for s in (0, 1)]
    jobs.append(RunJob(("lqr", 0), lqr.to_dict(), str(root / "lqr-0")))
    jobs.append(RunJob(("killer", 0), {**lqr.to_dict(), "die": Die()}, str(root / "killer")))
    return jobs


def _gather(jobs, **kwargs):
    got = {}
    run_jobs(jobs, 2, lambda key, summary: got.__setitem__(key, summary), **kwargs)
    return got


def _comparable(summary):
    return {k: v for k, v in summary.items() if k not in TIMINGS and "seconds" not in k}


def _check_runs(got, root):
    assert got[("killer", 0)]["status"] == "failed" and "died" in got[("killer", 0)]["error"]
    for key in (("dqn", 0), ("dqn", 1), ("lqr", 0)):
        assert got[key]["status"] == "finished", got[key]
    assert got[("lqr", 0)]["solved"]


def test_a_dead_worker_fails_its_own_run_and_the_others_finish(tmp_path):
    got = _gather(_jobs(tmp_path))
    _check_runs(got, tmp_path)
    # the runs the broken pool took down were resumed in fresh processes: still exactly the same runs
    again = _gather(_jobs(tmp_path / "again")[:2])
    for s in (0, 1):
        assert _comparable(got[("dqn", s)]) == _comparable(again[("dqn", s)])
        assert metrics_without_wall(tmp_path / f"dqn-{s}") == metrics_without_wall(tmp_path / "again" / f"dqn-{s}")


def test_local_pool_and_local_ray_give_identical_runs(tmp_path):
    ray = pytest.importorskip("ray")
    # Ray workers do not have pytest's sys.path: ship this module's functions (Die) by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    local = _gather(_jobs(tmp_path / "local"))
    ray_runs = _gather(_jobs(tmp_path / "ray"), backend="ray")
    _check_runs(ray_runs, tmp_path / "ray")
    assert "ray task failed" in ray_runs[("killer", 0)]["error"]
    for key in (("dqn", 0), ("dqn", 1), ("lqr", 0)):
        assert _comparable(local[key]) == _comparable(ray_runs[key])
        name = f"{key[0]}-{key[1]}"
        assert metrics_without_wall(tmp_path / "local" / name) == metrics_without_wall(tmp_path / "ray" / name)
        assert json.loads((tmp_path / "ray" / name / "summary.json").read_text())["status"] == "finished"
    assert local[("dqn", 0)]["eval_mean"] != local[("dqn", 1)]["eval_mean"] or metrics_without_wall(
        tmp_path / "local" / "dqn-0"
    ) != metrics_without_wall(tmp_path / "local" / "dqn-1")


def test_ray_backend_without_ray_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(DqnlabError, match=r"pip install 'dqnlab\[ray\]'"):
        run_jobs(_jobs(tmp_path)[:1], 1, lambda *_: None, backend="ray")
    code = main(["train", "--seeds", "0-1", "--backend", "ray", "--run-dir", str(tmp_path / "s"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pip install 'dqnlab[ray]'" in err[0]
    assert not (tmp_path / "s").exists()  # refused before anything was written


def test_ray_address_needs_the_ray_backend(tmp_path, capsys):
    code = main(["compare", "random", "--seeds", "0", "--out", str(tmp_path / "c"), "--ray-address", "auto"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--ray-address needs --backend ray" in err[0]
    assert not (tmp_path / "c").exists()
