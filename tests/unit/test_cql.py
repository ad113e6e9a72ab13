"""Tests for models/cql.py: gradients, determinism, conservatism, validation, BC and FQE."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import joblib
import numpy as np
import pytest

from models.cql import BehaviorCloning, CqlAgent, NotFittedError, Transitions
from models.ope import fitted_q_evaluation
from models.qnet import cql_loss_and_grad

# ---------------------------------------------------------------------------------------------
# Toy problems

N_BANDIT_ACTIONS = 4


def make_bandit(n: int = 2_000, seed: int = 0) -> Transitions:
    """One-step contextual bandit: 4 actions, logged only 0 and 1, small rewards."""
    rng = np.random.default_rng(seed)
    states = rng.standard_normal((n, 4))
    actions = rng.integers(0, 2, size=n)
    rewards = np.where(actions == 0, 0.1, -0.1) * states[:, 0] + 0.01 * rng.standard_normal(n)
    return Transitions(states, actions, rewards, states.copy(), np.ones(n, dtype=bool))


# Chain MDP: states 0..4 are live, 5 is the terminal goal; actions left / right / stay.
# Entering the goal pays 1 and ends the episode; every other step pays 0. Start state is 0.
N_CHAIN = 5
CHAIN_ACTIONS = 3
CHAIN_GAMMA = 0.9


def chain_step(s: int, a: int) -> tuple[int, float, bool]:
    nxt = max(s - 1, 0) if a == 0 else s + 1 if a == 1 else s
    if nxt == N_CHAIN:
        return nxt, 1.0, True
    return nxt, 0.0, False


def one_hot(idx: np.ndarray | int, size: int = N_CHAIN + 1) -> np.ndarray:
    out: np.ndarray = np.eye(size)[np.asarray(idx)]
    return out


def chain_policy_value(policy: np.ndarray) -> np.ndarray:
    """Exact V^pi on live states for a (N_CHAIN, CHAIN_ACTIONS) policy, by a linear solve."""
    p = np.zeros((N_CHAIN, N_CHAIN))
    r = np.zeros(N_CHAIN)
    for s in range(N_CHAIN):
        for a in range(CHAIN_ACTIONS):
            nxt, rew, done = chain_step(s, a)
            r[s] += policy[s, a] * rew
            if not done:
                p[s, nxt] += policy[s, a]
    return np.linalg.solve(np.eye(N_CHAIN) - CHAIN_GAMMA * p, r)


BEHAVIOR = np.tile([0.2, 0.6, 0.2], (N_CHAIN, 1))  # noisy but mostly right (= optimal)


def make_chain_episodes(n_episodes: int = 150, horizon: int = 25, seed: int = 0) -> Transitions:
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int, float, int, bool]] = []
    for _ in range(n_episodes):
        s = 0
        for _ in range(horizon):
            a = int(rng.choice(CHAIN_ACTIONS, p=BEHAVIOR[s]))
            nxt, rew, done = chain_step(s, a)
            rows.append((s, a, rew, nxt, done))
            if done:
                break
            s = nxt
    s_arr, a_arr, r_arr, s2_arr, d_arr = (np.array(col) for col in zip(*rows, strict=True))
    props = BEHAVIOR[s_arr, a_arr]
    return Transitions(
        one_hot(s_arr), a_arr, r_arr.astype(float), one_hot(s2_arr), d_arr, propensities=props
    )


def make_chain_uniform(n: int = 3_000, seed: int = 1) -> Transitions:
    """Transitions from uniform states and actions, so FQE sees every (s, a)."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, N_CHAIN, size=n)
    a = rng.integers(0, CHAIN_ACTIONS, size=n)
    out = [chain_step(int(si), int(ai)) for si, ai in zip(s, a, strict=True)]
    s2 = np.array([o[0] for o in out])
    r = np.array([o[1] for o in out])
    d = np.array([o[2] for o in out])
    return Transitions(one_hot(s), a, r, one_hot(s2), d)


def small_agent(**kwargs: Any) -> CqlAgent:
    params: dict[str, Any] = {
        "n_actions": N_BANDIT_ACTIONS,
        "hidden": (32, 32),
        "batch_size": 64,
        "n_steps": 300,
        "lr": 3e-3,
        "target_update_tau": 0.05,
    }
    params.update(kwargs)
    return CqlAgent(**params)


@pytest.fixture(scope="module")
def bandit() -> Transitions:
    return make_bandit()


@pytest.fixture(scope="module")
def fitted_bandit_agent(bandit: Transitions) -> CqlAgent:
    return small_agent(alpha=1.0).fit(bandit)


# ---------------------------------------------------------------------------------------------
# Gradient check


@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_cql_loss_gradient_matches_central_differences(alpha: float) -> None:
    rng = np.random.default_rng(0)
    sizes = [3, 5, 4, 3]
    coefs = [rng.standard_normal((i, o)) for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
    intercepts = [0.1 * rng.standard_normal(o) for o in sizes[1:]]
    states = rng.standard_normal((8, 3))
    actions = rng.integers(0, 3, size=8)
    targets = 2.0 * rng.standard_normal(8)
    delta = 0.5

    def loss() -> float:
        losses, _, _ = cql_loss_and_grad(
            coefs, intercepts, states, actions, targets, alpha=alpha, huber_delta=delta
        )
        return losses["loss"]

    _, g_coefs, g_inter = cql_loss_and_grad(
        coefs, intercepts, states, actions, targets, alpha=alpha, huber_delta=delta
    )
    # Both Huber branches must be exercised for the check to mean anything.
    q = states
    for w, b in zip(coefs[:-1], intercepts[:-1], strict=True):
        q = np.maximum(q @ w + b, 0)
    td = (q @ coefs[-1] + intercepts[-1])[np.arange(8), actions] - targets
    assert np.any(np.abs(td) < delta) and np.any(np.abs(td) > delta)

    analytic, numeric = [], []
    eps = 1e-6
    for param, grad in [*zip(coefs, g_coefs, strict=True), *zip(intercepts, g_inter, strict=True)]:
        for idx in np.ndindex(param.shape):
            orig = param[idx]
            param[idx] = orig + eps
            up = loss()
            param[idx] = orig - eps
            down = loss()
            param[idx] = orig
            numeric.append((up - down) / (2 * eps))
            analytic.append(grad[idx])
    a, n = np.array(analytic), np.array(numeric)
    rel_err = np.linalg.norm(a - n) / (np.linalg.norm(a) + np.linalg.norm(n))
    assert rel_err < 1e-4, rel_err
    assert np.max(np.abs(a - n)) < 1e-6


def test_cql_loss_terms_match_definition() -> None:
    q_fixed = np.array([[1.0, 2.0, 0.0]])
    # Identity network: one linear layer with W = I and b = 0 makes Q = state.
    losses, _, _ = cql_loss_and_grad(
        [np.eye(3)],
        [np.zeros(3)],
        q_fixed,
        np.array([1]),
        np.array([0.0]),
        alpha=2.0,
        huber_delta=1.0,
    )
    lse = math.log(math.exp(1.0) + math.exp(2.0) + 1.0)
    assert losses["td"] == pytest.approx(1.5)  # |td| = 2 > delta: 1 * (2 - 0.5)
    assert losses["cql"] == pytest.approx(lse - 2.0)
    assert losses["loss"] == pytest.approx(1.5 + 2.0 * (lse - 2.0))


# ---------------------------------------------------------------------------------------------
# Training behaviour


def test_cql_agent_same_seed_gives_identical_q_values(bandit: Transitions) -> None:
    probe = bandit.states[:50]
    q1 = small_agent(seed=3, n_steps=100).fit(bandit).q_values(probe)
    q2 = small_agent(seed=3, n_steps=100).fit(bandit).q_values(probe)
    q3 = small_agent(seed=4, n_steps=100).fit(bandit).q_values(probe)
    np.testing.assert_array_equal(q1, q2)
    assert not np.allclose(q1, q3)


def test_cql_agent_loss_decreases(fitted_bandit_agent: CqlAgent) -> None:
    hist = fitted_bandit_agent.loss_history_
    assert set(hist) >= {"loss", "td", "cql"}
    assert hist["loss"].shape == (300,)
    assert hist["loss"][-30:].mean() < 0.6 * hist["loss"][:10].mean()
    assert hist["td"][-30:].mean() < 0.2 * hist["td"][:10].mean()
    # With two logged actions equally likely, the CQL term's infimum is log 2 (unseen Q -> -inf).
    assert hist["cql"][-30:].mean() == pytest.approx(math.log(2), abs=0.05)


def test_cql_agent_fit_reports_progress_to_callback(bandit: Transitions) -> None:
    seen: list[tuple[int, dict[str, float]]] = []
    agent = small_agent(n_steps=5).fit(bandit, callback=lambda i, m: seen.append((i, dict(m))))
    assert [i for i, _ in seen] == list(range(5))
    assert set(seen[0][1]) == {"loss", "td", "cql", "grad_norm"}
    assert seen[-1][1]["cql"] == agent.loss_history_["cql"][-1]


def test_cql_agent_is_conservative_on_unseen_actions(bandit: Transitions) -> None:
    probe = make_bandit(n=500, seed=9).states
    cql = small_agent(alpha=1.0, n_steps=600).fit(bandit).q_values(probe)
    dqn = small_agent(alpha=0.0, n_steps=600).fit(bandit).q_values(probe)
    assert cql[:, 2:].mean() < dqn[:, 2:].mean() - 0.5
    # The failure CQL prevents: unconstrained Q extrapolates and picks never-logged actions.
    assert np.any(np.argmax(dqn, axis=1) >= 2)
    # Seen actions keep values near the (small) rewards while unseen ones are pushed down.
    assert np.all(np.argmax(cql, axis=1) < 2)
    assert np.all(cql[:, 2:].max(axis=1) < cql[:, :2].min(axis=1))


def test_cql_agent_greedy_policy_return_at_least_behavior_on_chain() -> None:
    data = make_chain_episodes()
    agent = CqlAgent(
        CHAIN_ACTIONS,
        hidden=(32, 32),
        alpha=1.0,
        gamma=CHAIN_GAMMA,
        lr=3e-3,
        batch_size=64,
        n_steps=1_500,
        target_update_tau=0.05,
    ).fit(data)
    greedy = agent.predict(one_hot(np.arange(N_CHAIN)))
    v_cql = chain_policy_value(np.eye(CHAIN_ACTIONS)[greedy])
    v_behavior = chain_policy_value(BEHAVIOR)
    assert v_cql[0] >= v_behavior[0]
    assert np.all(v_cql >= v_behavior - 1e-12)
    assert v_cql[0] == pytest.approx(CHAIN_GAMMA ** (N_CHAIN - 1))  # optimal: always right


def test_cql_agent_accepts_single_state_and_policies_are_consistent(
    fitted_bandit_agent: CqlAgent,
) -> None:
    state = np.array([0.5, -1.0, 0.2, 0.0])
    q = fitted_bandit_agent.q_values(state)
    assert q.shape == (1, N_BANDIT_ACTIONS)
    assert fitted_bandit_agent.predict(state).tolist() == [int(np.argmax(q))]

    probs = fitted_bandit_agent.action_probabilities(np.tile(state, (3, 1)), temperature=0.5)
    assert probs.shape == (3, N_BANDIT_ACTIONS)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    expected = np.exp(q[0] / 0.5 - np.max(q[0] / 0.5))
    # float32 matmuls may round differently for a different batch size, hence rtol.
    np.testing.assert_allclose(probs[0], expected / expected.sum(), rtol=1e-5)
    greedy = fitted_bandit_agent.action_probabilities(state, temperature=0.0)
    assert greedy[0, int(np.argmax(q))] == 1.0

    draws = fitted_bandit_agent.sample_action(
        np.tile(state, (4_000, 1)), temperature=1.0, rng=np.random.default_rng(0)
    )
    freq = np.bincount(draws, minlength=N_BANDIT_ACTIONS) / draws.size
    np.testing.assert_allclose(freq, fitted_bandit_agent.action_probabilities(state)[0], atol=0.03)


# ---------------------------------------------------------------------------------------------
# Validation


def test_cql_agent_predict_before_fit_raises() -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        small_agent().predict(np.zeros(4))
    with pytest.raises(ValueError, match="not fitted"):
        small_agent().q_values(np.zeros((2, 4)))


def test_cql_agent_rejects_bad_states(fitted_bandit_agent: CqlAgent) -> None:
    with pytest.raises(ValueError, match="expected 4 features, got 3"):
        fitted_bandit_agent.q_values(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN or inf"):
        fitted_bandit_agent.predict(np.array([0.0, np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="NaN or inf"):
        fitted_bandit_agent.predict(np.array([[0.0, np.inf, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="2-D"):
        fitted_bandit_agent.predict(np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match="temperature"):
        fitted_bandit_agent.action_probabilities(np.zeros(4), temperature=-1.0)


def _with(data: Transitions, **changes: Any) -> Transitions:
    fields = {k: getattr(data, k) for k in data.__dataclass_fields__}
    fields.update(changes)
    return Transitions(**fields)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: _with(d, next_states=d.next_states[:, :3]), "next_states must have shape"),
        (lambda d: _with(d, rewards=d.rewards[:-1]), r"rewards must have shape \(2000,\)"),
        (lambda d: _with(d, states=np.where(np.eye(2000, 4) > 0, np.nan, d.states)), "NaN"),
        (lambda d: _with(d, rewards=np.full(2000, np.inf)), "rewards contain NaN or inf"),
        (lambda d: _with(d, actions=np.r_[d.actions[:-1], 4]), "action 4 at index 1999"),
        (lambda d: _with(d, actions=np.r_[-1, d.actions[1:]]), "out of range"),
        (lambda d: _with(d, actions=d.actions.astype(float)), "actions must be integers"),
        (lambda d: _with(d, dones=np.full(2000, 0.5)), "dones must contain only 0/1"),
        (lambda d: _with(d, propensities=np.zeros(2000)), r"propensities must lie in \(0, 1\]"),
        (lambda d: _with(d, states=d.states[:, 0]), "states must be 2-D"),
    ],
)
def test_transitions_validate_names_the_problem(
    bandit: Transitions, mutate: Callable[[Transitions], Transitions], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        mutate(bandit).validate(N_BANDIT_ACTIONS)
    with pytest.raises(ValueError, match=message):
        small_agent(n_steps=1).fit(mutate(bandit))


def test_cql_agent_rejects_bad_hyperparameters_at_fit(bandit: Transitions) -> None:
    agent = small_agent(gamma=1.5)  # __init__ stores without validating (scikit-learn rule)
    with pytest.raises(ValueError, match="gamma"):
        agent.fit(bandit)
    with pytest.raises(ValueError, match="dtype"):
        small_agent(dtype="float16").fit(bandit)


# ---------------------------------------------------------------------------------------------
# Persistence


def test_cql_agent_joblib_round_trip_preserves_q_values(
    fitted_bandit_agent: CqlAgent, tmp_path: Any
) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(fitted_bandit_agent, path)
    loaded = joblib.load(path)
    probe = make_bandit(n=100, seed=5).states
    np.testing.assert_array_equal(loaded.q_values(probe), fitted_bandit_agent.q_values(probe))
    assert loaded.get_params() == fitted_bandit_agent.get_params()
    assert loaded.n_features_in_ == 4


def test_cql_agent_float64_training_matches_float32_closely(bandit: Transitions) -> None:
    probe = bandit.states[:20]
    q32 = small_agent(n_steps=50).fit(bandit).q_values(probe)
    q64 = small_agent(n_steps=50, dtype="float64").fit(bandit).q_values(probe)
    np.testing.assert_allclose(q32, q64, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# Behaviour cloning and FQE


def test_behavior_cloning_recovers_majority_action() -> None:
    rng = np.random.default_rng(0)
    states = rng.standard_normal((3_000, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, 0.0]
    majority = np.where(states[:, 0] > 0, 2, 0)
    noisy = rng.random(3_000) < 0.2
    actions = np.where(noisy, rng.integers(0, 3, size=3_000), majority)
    bc = BehaviorCloning(n_actions=3).fit(states, actions)

    probe = rng.standard_normal((500, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, 0.0]
    clear = np.abs(probe[:, 0]) > 0.5
    expected = np.where(probe[:, 0] > 0, 2, 0)
    assert np.mean(bc.predict(probe)[clear] == expected[clear]) > 0.98
    probs = bc.action_probabilities(probe)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    # Action 1 is only logged as noise (~6.7%), so BC gives it low but non-zero probability.
    assert 0.0 < probs[:, 1].mean() < 0.15
    with pytest.raises(NotFittedError):
        BehaviorCloning(n_actions=3).predict(probe)
    with pytest.raises(ValueError, match="expected 3 features, got 2"):
        bc.predict(probe[:, :2])


def _target_policy(states: np.ndarray) -> np.ndarray:
    pi = np.tile([0.1, 0.7, 0.2], (N_CHAIN + 1, 1))
    out: np.ndarray = pi[np.argmax(states, axis=1)]
    return out


def test_fitted_q_evaluation_linear_matches_exact_value() -> None:
    true_v = chain_policy_value(_target_policy(one_hot(np.arange(N_CHAIN))))
    est = fitted_q_evaluation(
        _target_policy,
        make_chain_uniform(),
        CHAIN_ACTIONS,
        gamma=CHAIN_GAMMA,
        n_iters=200,
        method="linear",
        initial_states=one_hot(0),
    )
    assert est == pytest.approx(true_v[0], rel=0.02)


def test_fitted_q_evaluation_mlp_matches_exact_value() -> None:
    true_v = chain_policy_value(_target_policy(one_hot(np.arange(N_CHAIN))))
    starts = one_hot(np.array([0, 2]))
    est = fitted_q_evaluation(
        _target_policy,
        make_chain_uniform(),
        CHAIN_ACTIONS,
        gamma=CHAIN_GAMMA,
        n_iters=60,
        seed=0,
        method="mlp",
        hidden=(32, 32),
        steps_per_iter=50,
        lr=3e-3,
        initial_states=starts,
    )
    assert est == pytest.approx(true_v[[0, 2]].mean(), rel=0.05)


def test_fitted_q_evaluation_rejects_bad_policy_output() -> None:
    with pytest.raises(ValueError, match="summing to 1"):
        fitted_q_evaluation(
            lambda s: np.ones((s.shape[0], CHAIN_ACTIONS)),
            make_chain_uniform(n=50),
            CHAIN_ACTIONS,
            method="linear",
        )
