"""dqnlab.envs.physics against Gymnasium's CartPoleEnv.step, and its linearisation against hand math."""

import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from numpy.testing import assert_allclose, assert_array_equal

from dqnlab.envs.physics import CartPoleParams, accelerations, action_force, linearized_dynamics, step_state


def _gym_step(env: CartPoleEnv, state: np.ndarray, action: int) -> np.ndarray:
    env.state = state.copy()
    env.steps_beyond_terminated = None
    env.step(action)
    return np.asarray(env.state, dtype=np.float64)


def _random_states(rng: np.random.Generator, n: int) -> np.ndarray:
    # Wider than CartPole's start states: anywhere an episode can go, and beyond.
    return rng.uniform([-2.4, -3, -0.5, -4], [2.4, 3, 0.5, 4], size=(n, 4))


def test_derived_quantities_follow_the_masses_and_length():
    p = CartPoleParams(masscart=2.0, masspole=0.3, length=0.8)
    assert p.total_mass == pytest.approx(2.3)
    assert p.polemass_length == pytest.approx(0.24)
    q = p.with_values(masspole=0.5)  # the bug of ray#14090: derived values left stale
    assert q.total_mass == pytest.approx(2.5) and q.polemass_length == pytest.approx(0.4)


def test_action_force_is_plus_minus_force_mag():
    assert_array_equal(action_force(np.array([0, 1, 1]), 10.0), [-10.0, 10.0, 10.0])
    assert_array_equal(action_force(np.array([0, 1]), np.array([3.0, 7.0])), [-3.0, 7.0])


def test_upright_rest_has_only_the_push_acceleration():
    # At theta = 0, theta_dot = 0: temp = F / M, theta_acc = -F / (M l (4/3 - m / M)),
    # x_acc = F / M - m l theta_acc / M. By hand for F = 10, M = 1.1, m = 0.1, l = 0.5:
    xacc, thetaacc = accelerations(np.zeros(4), 10.0, CartPoleParams())
    expected_theta = -(10 / 1.1) / (0.5 * (4 / 3 - 0.1 / 1.1))
    assert thetaacc == pytest.approx(expected_theta)
    assert xacc == pytest.approx(10 / 1.1 - 0.05 * expected_theta / 1.1)


@pytest.mark.parametrize("integrator", ["euler", "semi-implicit euler"])
def test_default_parameters_match_gymnasium_exactly(integrator):
    rng = np.random.default_rng(0)
    env = CartPoleEnv()
    env.kinematics_integrator = integrator
    states = _random_states(rng, 300)
    actions = rng.integers(0, 2, size=300)
    expected = np.array([_gym_step(env, s, int(a)) for s, a in zip(states, actions, strict=True)])
    got = step_state(states.T, action_force(actions, 10.0), integrator=integrator).T  # batched (4, N)
    assert_array_equal(got, expected)  # same operations in the same order: bit-identical


def test_randomised_parameters_match_gymnasium():
    rng = np.random.default_rng(1)
    env = CartPoleEnv()
    n = 300
    values = {
        "gravity": rng.uniform(5, 15, n),
        "masscart": rng.uniform(0.3, 3, n),
        "masspole": rng.uniform(0.02, 1, n),
        "length": rng.uniform(0.1, 2, n),
        "force_mag": rng.uniform(2, 20, n),
        "tau": rng.uniform(0.005, 0.05, n),
    }
    states = _random_states(rng, n)
    actions = rng.integers(0, 2, size=n)
    expected = []
    for i in range(n):
        for name, v in values.items():
            setattr(env, name, float(v[i]))
        # Gymnasium stores the derived quantities: set them consistently, as dqnlab derives them.
        env.total_mass = env.masspole + env.masscart
        env.polemass_length = env.masspole * env.length
        expected.append(_gym_step(env, states[i], int(actions[i])))
    params = CartPoleParams(**values)  # one value per environment
    got = step_state(states.T, action_force(actions, params.force_mag), params).T
    assert_allclose(got, np.array(expected), rtol=1e-12, atol=1e-12)


def test_single_state_works_too():
    s = np.array([0.1, -0.2, 0.03, 0.4])
    env = CartPoleEnv()
    assert_array_equal(step_state(s, 10.0), _gym_step(env, s, 1))


def test_unknown_integrator_is_refused():
    with pytest.raises(ValueError, match="integrator"):
        step_state(np.zeros(4), 1.0, integrator="rk4")


def test_linearisation_matches_finite_differences():
    p = CartPoleParams(masscart=1.3, masspole=0.2, length=0.7)
    a, b = linearized_dynamics(p)

    def f(s, u):
        xacc, thetaacc = accelerations(s, u, p)
        return np.array([s[1], xacc, s[3], thetaacc])

    eps = 1e-6
    num_a = np.column_stack([(f(eps * e, 0.0) - f(-eps * e, 0.0)) / (2 * eps) for e in np.eye(4)])
    num_b = (f(np.zeros(4), eps) - f(np.zeros(4), -eps)) / (2 * eps)
    assert_allclose(a, num_a, atol=1e-6)
    assert_allclose(b[:, 0], num_b, atol=1e-6)
    # The pole alone (no cart coupling) would give g / (l (4/3 - m/M)) as the unstable rate.
    assert a[3, 2] == pytest.approx(9.8 / (0.7 * (4 / 3 - 0.2 / 1.5)))
