"""The goal model's raw inputs for one goal, from the snapshot the API builds: the same function
serves the API and the real-data evaluation, so what is evaluated is what is served."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import numpy as np

from fincoach.features.frames import UserSnapshot
from fincoach.features.state import SPEND_IDX, weekly_matrix
from fincoach.features.vocab import CATEGORY_INDEX

HISTORY_WEEKS = 52
INCOME = CATEGORY_INDEX["income"]


def active_weeks(snapshot: UserSnapshot, n_weeks: int = HISTORY_WEEKS) -> np.ndarray:
    """Weekly totals per category over the last ``n_weeks``, from the first week with any
    activity (a new user has only the weeks since joining)."""
    weekly = weekly_matrix(snapshot, n_weeks)
    active = np.nonzero(weekly.any(axis=1))[0]
    return weekly[int(active[0]) :] if active.size else weekly[:0]


def net_saving_weeks(snapshot: UserSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """(net saving, income) per week: income minus spending (recurring bills included);
    transfers to savings are not spending, so they stay in the net saving."""
    weekly = active_weeks(snapshot)
    income = weekly[:, INCOME]
    return income - weekly[:, SPEND_IDX].sum(axis=1), income


def goal_inputs(
    snapshot: UserSnapshot,
    *,
    target_amount: float,
    current_amount: float,
    target_date: date,
    created_at: datetime,
    now: datetime,
) -> dict[str, Any]:
    """Keyword arguments of ``features.goals.goal_features`` (and of the saving search)."""
    net, income = net_saving_weeks(snapshot)
    return {
        "target_amount": float(target_amount),
        "current_amount": min(float(current_amount), float(target_amount)),
        "weeks_left": max((target_date - now.date()).days / 7.0, 0.0),
        "weeks_elapsed": max((now - created_at).days / 7.0, 0.0),
        "weekly_savings": net,
        "weekly_income": income,
        "n_goals": max(1, sum(1 for g in snapshot.goals if g.status == "active")),
        "monthly_income": snapshot.profile.monthly_income or None,
    }
