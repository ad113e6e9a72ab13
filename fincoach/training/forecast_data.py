"""Training and evaluation cut-offs for the forecaster: histories as the forecaster reads them
(``features.spending.SpendingHistory``) and what was spent in the weeks after each.

From the simulator: each user's transactions up to an origin week, and the simulated weeks
after it. From a real history: weekly cut-offs (Mondays, 00:00 UTC), the rows before each and
the spending of the following weeks.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from fincoach.features.frames import TransactionFrame
from fincoach.features.spending import SpendingHistory
from fincoach.features.vocab import CATEGORIES, SPENDING_CATEGORIES
from fincoach.training.real_data import RealHistory
from fincoach.training.simulator import SPEND_IDX, Population

_SPEND_CODES = np.array([CATEGORIES.index(c) for c in SPENDING_CATEGORIES])


def user_frame(pop: Population, user: int) -> TransactionFrame:
    """One simulated user's transactions."""
    tx = pop.transactions
    lo, hi = np.searchsorted(tx.user, [user, user + 1])
    return TransactionFrame(
        tx.occurred_at[lo:hi], tx.amount[lo:hi], tx.category[lo:hi], tx.merchant[lo:hi]
    )


def simulator_cutoffs(
    pop: Population,
    *,
    origins_per_user: int,
    horizon: int,
    seed: int,
    min_weeks: int = 1,
    short_share: float = 0.15,
) -> tuple[list[SpendingHistory], np.ndarray]:
    """Histories at random origins of every user and the ``horizon`` weeks after each; a share
    of them cut to 1-3 weeks, so that short histories are in the training set too."""
    rng = np.random.default_rng(seed)
    weeks = np.concatenate([pop.weekly, pop.future], axis=1)[:, :, SPEND_IDX]
    n_weeks = pop.config.n_weeks
    histories, futures = [], []
    for user in range(pop.config.n_users):
        frame = user_frame(pop, user)
        last = min(n_weeks, weeks.shape[1] - horizon)
        if last < min_weeks:
            continue
        size = min(origins_per_user, last - min_weeks + 1)
        for t in rng.choice(np.arange(min_weeks, last + 1), size=size, replace=False):
            end = np.datetime64(pop.week_start(int(t)), "s")
            keep = 52
            if rng.random() < short_share:
                keep = int(rng.integers(1, 4))
            histories.append(SpendingHistory.from_frame(frame, end, max_weeks=keep))
            futures.append(weeks[user, t : t + horizon])
    return histories, np.stack(futures)


def mondays(first: date, last: date, step_weeks: int) -> list[date]:
    """Mondays from the first on or after ``first`` to ``last``, every ``step_weeks``."""
    start = first + timedelta(days=(7 - first.weekday()) % 7)
    out = []
    day = start
    while day <= last:
        out.append(day)
        day += timedelta(weeks=step_weeks)
    return out


def spent_after(history: RealHistory, cutoff: date, horizon: int) -> np.ndarray:
    """(horizon, N_SPENDING) spending in the ``horizon`` weeks from ``cutoff`` (00:00 UTC)."""
    start = np.datetime64(cutoff, "s")
    age = (history.occurred_at - start).astype("timedelta64[s]").astype(np.int64)
    week = age // (7 * 86400)
    out = np.zeros((horizon, len(SPENDING_CATEGORIES)))
    for k, name in enumerate(SPENDING_CATEGORIES):
        rows = (history.category == name) & (age >= 0) & (week < horizon)
        np.add.at(out[:, k], week[rows], history.amount[rows])
    return out


def real_cutoffs(
    history: RealHistory,
    cutoffs: list[date],
    horizon: int,
) -> tuple[list[SpendingHistory], np.ndarray]:
    """The forecaster's input at each cut-off, and what was spent in the weeks after."""
    frame = history.frame()
    histories = [SpendingHistory.from_frame(frame, np.datetime64(c, "s")) for c in cutoffs]
    futures = np.stack([spent_after(history, c, horizon) for c in cutoffs])
    return histories, futures
