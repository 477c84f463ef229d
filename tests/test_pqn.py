"""PQN: the Q(lambda) targets against hand computations, LayerNorm in the network, and the
algorithm through the registry and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dqnlab
from dqnlab.algos.pqn import q_lambda_returns
from dqnlab.core.errors import ConfigError
from dqnlab.nn.fast_mlp import mlp_layers
from dqnlab.nn.networks import build_mlp, q_network_parameters

GAMMA = 0.5


def _returns(rewards, next_q, terminated=None, done=None, valid=None, lam=0.5):
    col = lambda a: np.asarray(a, dtype=np.float64)[:, None]  # noqa: E731  (T,) -> (T, 1)
    T = len(rewards)
    terminated = np.zeros(T) if terminated is None else terminated
    done = np.asarray(terminated, dtype=bool) if done is None else done
    valid = np.ones(T, dtype=bool) if valid is None else valid
    out = q_lambda_returns(
        col(rewards), col(next_q), col(terminated), col(done).astype(bool), col(valid).astype(bool), GAMMA, lam
    )
    return out[:, 0].tolist()


def test_q_lambda_by_hand():
    # t=2: 1 + .5 (.5 * 30 + .5 * 30) = 16; t=1: 1 + .5 (.5 * 20 + .5 * 16) = 10; t=0: 1 + .5 (.5 * 10 + .5 * 10) = 6
    assert _returns([1, 1, 1], [10, 20, 30]) == [6.0, 10.0, 16.0]


def test_lambda_zero_is_the_one_step_target_and_one_the_bootstrapped_return():
    assert _returns([1, 2, 3], [10, 20, 30], lam=0.0) == [1 + 5, 2 + 10, 3 + 15]
    # lam 1: r0 + g r1 + g^2 r2 + g^3 Q(s3) = 1 + 1 + .75 + 3.75
    assert _returns([1, 2, 3], [10, 20, 30], lam=1.0)[0] == pytest.approx(6.5)


def test_termination_stops_the_bootstrap_and_the_return():
    # t=1 terminates: G1 = r1; G0 = 1 + .5 (.5 * 10 + .5 * 2) = 4; t=2 is the next episode's
    g = _returns([1, 2, 3], [10, 99, 30], terminated=[0, 1, 0])
    assert g == [4.0, 2.0, 3 + 0.5 * 30]


def test_truncation_bootstraps_from_the_state_it_cut():
    # t=1 truncated (done, not terminated): G1 = 2 + .5 * 40 from both terms; G0 reads G1
    g = _returns([1, 2, 3], [10, 40, 30], terminated=[0, 0, 0], done=[False, True, False])
    assert g[1] == 2 + 0.5 * 40
    assert g[0] == 1 + 0.5 * (0.5 * 10 + 0.5 * g[1])


def test_an_autoreset_step_gets_nothing_and_feeds_nothing():
    g = _returns([1, 0, 3], [10, 77, 30], terminated=[1, 0, 0], done=[True, False, False], valid=[True, False, True])
    assert g == [1.0, 0.0, 3 + 0.5 * 30]


def test_layer_norm_network_and_its_parameter_count():
    cfg = dqnlab.build_config("pqn").network
    net = build_mlp(cfg, 4, 2)
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in net) == len(cfg.hidden)
    assert q_network_parameters(cfg, (4,), 2) == sum(p.numel() for p in net.parameters())
    assert mlp_layers(net) is None  # not a plain MLP: DQN's hand-written fast path steps aside
    with pytest.raises(ConfigError, match="choose one normalisation"):
        dqnlab.build_config(**{"network.layer_norm": True, "network.batch_norm": True})
    with pytest.raises(ConfigError, match="section 'dqn' has no effect with algo 'pqn'"):
        dqnlab.build_config("pqn", **{"dqn.lr": 0.01})


def test_pqn_trains_resumes_and_delivers_a_greedy_q_policy(tmp_path, tiny):
    cfg = tiny(preset="pqn", total_steps=2048, **{"pqn.n_steps": 8})
    result = dqnlab.train(cfg, tmp_path / "run", progress=False)
    s = result.summary
    assert s["algo"] == "pqn" and s["status"] == "finished"
    # 2048 steps in rollouts of 8 steps x 16 envs, less the autoreset steps: at least 16 updates
    assert s["updates"] >= 16 and s["grad_steps"] == s["updates"] * 2 * 4
    assert s["q_bound"] == pytest.approx(100.0) and s["q_max"] is not None
    policy = dqnlab.load_policy(tmp_path / "run")
    obs = np.zeros((5, 4), dtype=np.float32)
    with torch.inference_mode():
        expected = result.policy.net(torch.from_numpy(obs)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(policy(obs), expected)
