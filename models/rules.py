"""The rule-based coach of the original backend: the fallback when the CQL model is unavailable,
and (with exploration noise) the behavior policy that logged the offline training data."""

from __future__ import annotations

import numpy as np

from fincoach.features.state import LEGACY_FEATURE_NAMES
from fincoach.features.vocab import ACTIONS

_I = {name: i for i, name in enumerate(LEGACY_FEATURE_NAMES)}
A = {name: i for i, name in enumerate(ACTIONS)}


def rule_based_action(state: np.ndarray) -> int:
    """The legacy coach's choice from the first 17 dims of a (legacy or enhanced) state."""
    s = np.asarray(state, dtype=float)
    if s.shape[-1] < len(LEGACY_FEATURE_NAMES):
        raise ValueError(f"expected at least {len(LEGACY_FEATURE_NAMES)} features, got {s.shape}")
    spending = s[_I["total_spending"]]
    if s[_I["spending_velocity"]] > 1.2:
        return A["spending_alert"]
    if s[_I["savings_rate"]] < 0.05:
        return A["savings_nudge"]
    if spending > 0 and s[_I["weekly_dine_out"]] / spending > 0.15:
        return A["reduce_dining_out"]
    if s[_I["savings_rate"]] > 0.25:
        return A["positive_reinforcement"]
    return A["budget_suggestion"]


# The original coach's fixed confidence of each legacy action when it answers by rule.
LEGACY_RULE_CONFIDENCE = {
    "continue_current_behavior": 0.6,
    "spending_alert": 0.8,
    "budget_suggestion": 0.7,
    "savings_nudge": 0.6,
    "positive_reinforcement": 0.9,
}


def legacy_rule_action(state: np.ndarray) -> tuple[int, float]:
    """The rule-based coach restricted to the 5 legacy actions (a dining-out tip becomes a
    budget suggestion), and the original coach's confidence for it."""
    action = rule_based_action(state)
    if ACTIONS[action] not in LEGACY_RULE_CONFIDENCE:
        action = A["budget_suggestion"]
    return action, LEGACY_RULE_CONFIDENCE[ACTIONS[action]]


def rule_based_actions(states: np.ndarray) -> np.ndarray:
    """Vectorised over rows."""
    return np.array([rule_based_action(s) for s in np.atleast_2d(states)], dtype=int)


def noisy_rule_probabilities(states: np.ndarray, epsilon: float, n_actions: int) -> np.ndarray:
    """The behavior policy: the rule with probability 1-epsilon, else uniform over all actions."""
    rules = rule_based_actions(states)
    probs = np.full((rules.shape[0], n_actions), epsilon / n_actions)
    probs[np.arange(rules.shape[0]), rules] += 1.0 - epsilon
    return probs
