"""Goals with known outcomes from a real history, and the goal model's peers.

A real account has no goals, but it has what it saved afterwards. At each cut-off, goals are
posed for several horizons (4 to 26 weeks) and ambitions (a multiple of what the account saved
per week over the last half year; a tenth of its weekly income when it saved nothing): "save
this much by then", starting from nothing. The outcome is whether the account's net saving
(income minus spending) over the weeks up to the goal's date reached it. The model sees only
the snapshot at the cut-off, through ``features.goal_inputs``, as the API does.

Peers: the base rate of the training goals, a logistic regression on projected saving against
the required saving (``log_coverage``), and a normal approximation of the net saving without any
fitting (weekly mean and standard deviation of the history, independent weeks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import numpy as np
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression

from fincoach.features.frames import UserSnapshot
from fincoach.features.goal_inputs import goal_inputs
from fincoach.features.goals import GOAL_FEATURE_INDEX, goal_features
from fincoach.features.vocab import SPENDING_CATEGORIES
from fincoach.training.real_data import RealHistory

HORIZONS: Final = (4, 8, 13, 26)
AMBITIONS: Final = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
BASE_WEEKS: Final = 26
_F = GOAL_FEATURE_INDEX


def net_saving_between(history: RealHistory, start: date, weeks: int) -> float:
    """Income minus spending from ``start`` (00:00 UTC) over ``weeks`` weeks."""
    lo = np.datetime64(start, "s")
    hi = lo + np.timedelta64(weeks * 7, "D")
    rows = (history.occurred_at >= lo) & (history.occurred_at < hi)
    income = float(history.amount[rows & (history.category == "income")].sum())
    spent = float(history.amount[rows & np.isin(history.category, SPENDING_CATEGORIES)].sum())
    return income - spent


def frame_snapshot(history: RealHistory, cutoff: date) -> UserSnapshot:
    """The snapshot at ``cutoff`` from the rows alone (training; the evaluation reads it from the
    database, as the API does): the last 52 weeks of transactions."""
    as_of = np.datetime64(cutoff, "s")
    frame = history.frame().before(as_of)
    start = as_of - np.timedelta64(52 * 7, "D")
    keep = frame.occurred_at >= start
    from fincoach.features.frames import TransactionFrame

    return UserSnapshot(
        as_of=as_of,
        transactions=TransactionFrame(
            frame.occurred_at[keep], frame.amount[keep], frame.category[keep], frame.merchant[keep]
        ),
    )


def real_goals(
    history: RealHistory,
    cutoffs: Sequence[date],
    snapshot_at: Callable[[date], UserSnapshot],
    *,
    until: date | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """(X, y, inputs) of the goals posed at each cut-off whose date is known (on or before the
    history's last day, and ``until`` if given)."""
    last = until or history.last_day
    rows, labels, inputs_all = [], [], []
    for cutoff in cutoffs:
        snapshot = snapshot_at(cutoff)
        base_inputs = goal_inputs(
            snapshot,
            target_amount=1.0,
            current_amount=0.0,
            target_date=cutoff,
            created_at=datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC),
            now=datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC),
        )
        net = np.asarray(base_inputs["weekly_savings"])
        income = np.asarray(base_inputs["weekly_income"])
        if net.size < 8:
            continue
        base = float(net[-BASE_WEEKS:].mean())
        if base <= 0:
            base = 0.1 * float(income[-BASE_WEEKS:].mean())
        if base <= 0:
            continue
        for weeks in HORIZONS:
            due = cutoff + timedelta(weeks=weeks)
            # The saving of the due week counts (features: transfers = weeks left + 1).
            if due + timedelta(weeks=1) > last:
                continue
            saved = net_saving_between(history, cutoff, weeks + 1)
            for ambition in AMBITIONS:
                target = ambition * base * (weeks + 1)
                now = datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC)
                inputs = {
                    **base_inputs,
                    "target_amount": target,
                    "current_amount": 0.0,
                    "weeks_left": float(weeks),
                    "weeks_elapsed": 0.0,
                    "n_goals": 1,
                }
                rows.append(goal_features(**inputs))
                labels.append(int(saved >= target))
                inputs_all.append({**inputs, "cutoff": cutoff.isoformat(), "now": now.isoformat()})
    if not rows:
        return np.zeros((0, len(_F))), np.zeros(0, dtype=int), []
    return np.stack(rows), np.array(labels), inputs_all


def normal_approximation(inputs: Sequence[dict[str, Any]]) -> np.ndarray:
    """The no-fit peer: P(mean x weeks + noise >= gap), weekly saving i.i.d. normal."""
    out = np.empty(len(inputs))
    for i, row in enumerate(inputs):
        net = np.asarray(row["weekly_savings"], dtype=float)[-52:] / row["n_goals"]
        weeks = row["weeks_left"] + 1.0
        gap = max(row["target_amount"] - row["current_amount"], 0.0)
        mean = float(net.mean()) if net.size else 0.0
        sd = float(net.std(ddof=1)) if net.size > 1 else 0.0
        spread = sd * np.sqrt(weeks)
        if spread <= 0:
            out[i] = float(mean * weeks >= gap)
        else:
            out[i] = float(norm.cdf((mean * weeks - gap) / spread))
    return out


class CoverageLogistic:
    """The peer: logistic regression on projected saving against the required (log ratio)."""

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: Any = None) -> CoverageLogistic:
        self.model_ = LogisticRegression(max_iter=1000).fit(
            X[:, [_F["log_coverage"]]], y, sample_weight=sample_weight
        )
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(X[:, [_F["log_coverage"]]])[:, 1]
