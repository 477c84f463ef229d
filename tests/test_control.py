"""Hand-designed controllers: the Riccati solver by hand, LQR balancing Gymnasium's CartPole for
10,000 steps, the angle rule's short episodes, and target tracking."""

import numpy as np
import pytest
from controllers import acts
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from numpy.testing import assert_allclose, assert_array_equal

from dqnlab.config import EnvConfig
from dqnlab.envs import lqr as control
from dqnlab.envs.physics import CartPoleParams
from dqnlab.runtime.evaluation import Evaluator


def test_dare_scalar_by_hand():
    # a = b = q = r = 1: P = P - P^2 / (1 + P) + 1, so P^2 - P - 1 = 0: the golden ratio.
    one = np.ones((1, 1))
    p = control.solve_dare(one, one, one, one)
    assert p[0, 0] == pytest.approx((1 + 5**0.5) / 2, rel=1e-9)


def test_dare_matches_scipy_when_installed():
    linalg = pytest.importorskip(
        "scipy.linalg", reason="scipy is optional, not a dqnlab dependency: this cross-check runs where it is installed"
    )
    a, b = control.discrete_dynamics()
    q, r = np.diag(control.DEFAULT_Q), np.array([[control.DEFAULT_R]])
    assert_allclose(control.solve_dare(a, b, q, r), linalg.solve_discrete_are(a, b, q, r), rtol=1e-6)


def test_lqr_gain_stabilises_the_linear_model():
    a, b = control.discrete_dynamics()
    k = control.lqr_gain()
    assert k.shape == (4,)
    closed = a - b @ k[None, :]
    assert np.abs(np.linalg.eigvals(closed)).max() < 1.0
    assert np.abs(np.linalg.eigvals(a)).max() > 1.0  # the upright pole alone is unstable


def test_discrete_dynamics_is_the_euler_step():
    a, b = control.discrete_dynamics(CartPoleParams(tau=0.01))
    assert a[0, 1] == pytest.approx(0.01) and a[2, 3] == pytest.approx(0.01)
    assert_allclose(np.diag(a), 1.0)


def test_actions_are_batched_and_single():
    obs = np.array([[0.0, 0.0, 0.1, 0.0], [0.0, 0.0, -0.1, 0.0]])
    assert_array_equal(acts("angle")(obs), [1, 0])
    assert_array_equal(acts("lqr")(obs), [1, 0])  # pole leaning right: push right
    assert acts("lqr")(obs[0]).shape == ()
    target_obs = np.array([[0.0, 0.0, 0.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0, 1.0]])
    # Behind the target (x - target < 0), LQR first pushes away (left) to tilt the pole towards it.
    assert_array_equal(acts("target_lqr", 5)(target_obs), [0, 1])


@pytest.mark.parametrize("seed, bound", [(0, 0.05), (1, 0.05), (2, 0.1)])
def test_lqr_balances_gymnasium_cartpole_for_10000_steps(seed, bound):
    env = CartPoleEnv()  # unwrapped: no time limit
    obs, _ = env.reset(seed=seed, options={"low": -bound, "high": bound})
    max_x = 0.0
    for _ in range(10_000):
        obs, _, terminated, _, _ = env.step(int(acts("lqr")(obs)))
        assert not terminated
        max_x = max(max_x, abs(float(obs[0])))
    assert max_x < 0.5  # it regulates the cart position too: no drift towards the edge


def test_angle_rule_lasts_a_few_dozen_steps():
    ev = Evaluator(EnvConfig(id="CartPole-v1"), max_envs=200)
    try:
        res = ev.run(acts("angle"), 200, seed=0)
    finally:
        ev.close()
    assert 30 <= res.lengths.mean() <= 60  # measured 42: the cart runs off with the pole


def test_target_lqr_reaches_random_targets():
    ev = Evaluator(EnvConfig(id="dqnlab/CartPoleTarget-v0"), max_envs=50)
    try:
        tracking = ev.run(acts("target_lqr", 5), 50, seed=0)
        balancing = ev.run(acts("lqr"), 50, seed=0)  # regulates to x = 0 instead
    finally:
        ev.close()
    assert (tracking.lengths == 500).all()
    assert tracking.mean > 450 > balancing.mean  # the registered threshold separates them
