"""The risk rules of a goal: why its probability is low, in words a user can act on."""

from __future__ import annotations

import math

import numpy as np

from fincoach.features.goals import GOAL_FEATURE_INDEX, PLANNED_SAVING_FEATURES

_F = GOAL_FEATURE_INDEX
_HISTORY_FEATURES = ("savings_cv", "zero_saving_share", "savings_trend", "history_weeks")
# A rule whose fix would lift the probability less than this is not a main risk.
MIN_IMPACT = 0.01


def risk_rules(x: np.ndarray) -> list[tuple[str, str, float, tuple[str, ...]]]:
    """(code, message, magnitude, features behind it) of each risk rule that fires for row x."""
    if x[_F["gap_to_target"]] <= 0:
        return []
    risks: list[tuple[str, str, float, tuple[str, ...]]] = []
    history = float(x[_F["history_weeks"]])
    zero_share = float(x[_F["zero_saving_share"]])
    n_goals = float(x[_F["n_goals"]])
    split = f" (your savings are split across {n_goals:.0f} goals)" if n_goals > 1 else ""
    # Without savings in the history, the counterfactual is a typical reached goal's history.
    no_savings = (*PLANNED_SAVING_FEATURES, *_HISTORY_FEATURES)
    if history == 0:
        risks.append(("no_savings_history", "no savings history yet", 0.0, no_savings))
    elif zero_share >= 1.0:
        risks.append(
            (
                "no_recent_savings",
                f"no savings in the last {history:.0f} weeks",
                history,
                no_savings,
            )
        )
    elif x[_F["log_coverage"]] < 0:
        ratio = math.exp(-float(x[_F["log_coverage"]]))
        # "1.0x" would read as no problem at all: below 2x, say how much more is needed.
        size = f"{ratio:.1f}x" if ratio >= 2 else f"{ratio - 1:.0%} above"
        risks.append(
            (
                "saving_below_required",
                f"required weekly saving is {size} your recent average{split}",
                ratio,
                PLANNED_SAVING_FEATURES,
            )
        )
    irregular = ("zero_saving_share", "savings_cv")
    if 0 < history and 0.2 <= zero_share < 1.0:
        risks.append(
            (
                "irregular_savings",
                f"savings are irregular ({zero_share:.0%} of weeks with none)",
                zero_share,
                irregular,
            )
        )
    elif 0 < history and x[_F["savings_cv"]] >= 0.5:
        cv = float(x[_F["savings_cv"]])
        risks.append(
            (
                "irregular_savings",
                f"weekly savings vary a lot (typically {cv:.0%} off the average)",
                cv,
                irregular,
            )
        )
    if x[_F["weeks_left"]] < 8:
        left = float(x[_F["weeks_left"]])
        gap = float(x[_F["gap_to_target"]])
        risks.append(
            (
                "little_time_left",
                f"little time left: {left:.0f} weeks to save {gap:.0%} of the target",
                left,
                ("weeks_left", "elapsed_share"),
            )
        )
    if 0 < history and x[_F["savings_trend"]] < 0.8:
        drop = 1.0 - float(x[_F["savings_trend"]])
        risks.append(
            (
                "declining_savings",
                f"recent savings are {drop:.0%} below your average",
                drop,
                ("savings_trend",),
            )
        )
    if x[_F["required_to_income"]] > 0.3:
        share = float(x[_F["required_to_income"]])
        risks.append(
            (
                "high_required_share",
                f"this pace needs {share:.0%} of your income saved across your goals",
                share,
                ("required_to_income",),
            )
        )
    return risks
