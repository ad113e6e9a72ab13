"""The coaching environment and the rule-based coach."""

from __future__ import annotations

import numpy as np
import pytest

from fincoach.features.state import ENHANCED_DIM, LEGACY_FEATURE_NAMES
from fincoach.features.vocab import ACTIONS
from fincoach.training.coach_env import N_ACTIONS, CoachingEnv, EnvConfig, collect, run_policy
from models.rules import noisy_rule_probabilities, rule_based_action

CFG = EnvConfig(n_users=60, seed=9, horizon=3, warmup_weeks=6)


def _state(**values: float) -> np.ndarray:
    s = np.zeros(len(LEGACY_FEATURE_NAMES))
    for k, v in values.items():
        s[LEGACY_FEATURE_NAMES.index(k)] = v
    return s


def test_rule_based_coach() -> None:
    assert ACTIONS[rule_based_action(_state(spending_velocity=1.5))] == "spending_alert"
    assert ACTIONS[rule_based_action(_state(spending_velocity=1.0, savings_rate=0.01))] == (
        "savings_nudge"
    )
    assert ACTIONS[rule_based_action(_state(savings_rate=0.4, spending_velocity=1.0))] == (
        "positive_reinforcement"
    )
    probs = noisy_rule_probabilities(np.stack([_state(spending_velocity=1.5)]), 0.5, N_ACTIONS)
    assert probs.sum() == pytest.approx(1.0) and probs[0, 1] == pytest.approx(0.55)
    with pytest.raises(ValueError):
        rule_based_action(np.zeros(3))


def test_env_is_deterministic_and_observes_real_features() -> None:
    a, b = CoachingEnv(CFG), CoachingEnv(CFG)
    assert a.observe().shape == (60, ENHANCED_DIM) and np.isfinite(a.observe()).all()
    actions = np.arange(60) % N_ACTIONS
    assert np.array_equal(a.step(actions), b.step(actions))
    assert np.array_equal(a.observe(), b.observe())


def test_doing_nothing_earns_nothing_and_good_advice_pays() -> None:
    nothing = run_policy(CFG, lambda s: np.zeros(len(s), dtype=int))
    assert np.allclose(nothing, 0.0)  # same draws with and without coaching
    dining = run_policy(CFG, lambda s: np.full(len(s), ACTIONS.index("reduce_dining_out")))
    assert dining.mean() > 0.05


def test_collect_logs_propensities_and_both_state_sizes() -> None:
    legacy, enhanced = collect(CFG, lambda s: noisy_rule_probabilities(s, 0.5, N_ACTIONS))
    assert len(legacy) == len(enhanced) == 60 * 3
    assert legacy.states.shape[1] == 17 and enhanced.states.shape[1] == ENHANCED_DIM
    assert np.array_equal(legacy.states, enhanced.states[:, :17])
    assert legacy.propensities is not None
    assert ((legacy.propensities > 0) & (legacy.propensities <= 1)).all()
    assert legacy.dones[-60:].all() and not legacy.dones[:60].any()
    legacy.validate(N_ACTIONS)
