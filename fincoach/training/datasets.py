"""From a simulated population to the feature functions' inputs (the same ones serving uses)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from fincoach.features.frames import EventFrame, GoalRow, Profile, TransactionFrame, UserSnapshot
from fincoach.features.state import behavior_features, enhanced_state, legacy_state
from fincoach.training.simulator import Population


@dataclass(frozen=True)
class _Bounds:
    tx: np.ndarray  # start offsets per user (n_users + 1)
    ev: np.ndarray


def _bounds(population: Population) -> _Bounds:
    n = population.config.n_users
    tx = np.searchsorted(population.transactions.user, np.arange(n + 1))
    events = population.events
    ev = (
        np.searchsorted(events.user, np.arange(n + 1))
        if events is not None
        else np.zeros(n + 1, dtype=int)
    )
    return _Bounds(tx=tx, ev=ev)


def snapshots(
    population: Population, week: int | None = None, *, as_of: np.datetime64 | None = None
) -> Iterator[UserSnapshot]:
    """Each user's snapshot at the start of ``week`` (default: the end of the history), with
    the goals made before that week; ``as_of`` moves the cut-off of rows and events (the API
    takes its snapshot at any second of the day)."""
    week = population.config.n_weeks if week is None else week
    if as_of is None:
        as_of = np.datetime64(population.week_start(week), "s")
    bounds = _bounds(population)
    txs = population.transactions
    events = population.events
    goals_by_user: dict[int, list[GoalRow]] = {}
    for g in population.goals:
        if g.created_week < week:
            goals_by_user.setdefault(g.user, []).append(
                GoalRow(
                    target_amount=g.target_amount,
                    current_amount=g.current_amount,
                    target_date=population.week_start(g.target_week),
                    status=g.status,
                )
            )
    for user in population.users:
        i = user.index
        lo, hi = bounds.tx[i], bounds.tx[i + 1]
        frame = TransactionFrame(
            txs.occurred_at[lo:hi], txs.amount[lo:hi], txs.category[lo:hi], txs.merchant[lo:hi]
        ).before(as_of)
        ev_frame = EventFrame.empty()
        if events is not None:
            elo, ehi = bounds.ev[i], bounds.ev[i + 1]
            keep = events.timestamp[elo:ehi] < as_of
            ev_frame = EventFrame(events.timestamp[elo:ehi][keep], events.event_type[elo:ehi][keep])
        yield UserSnapshot(
            as_of=as_of,
            transactions=frame,
            events=ev_frame,
            profile=Profile(
                opening_balance=user.opening_balance,
                monthly_income=round(user.weekly_income * 52 / 12, 2),
                monthly_budget=user.monthly_budget,
            ),
            goals=tuple(goals_by_user.get(i, ())),
        )


def behavior_matrix(population: Population, week: int | None = None) -> np.ndarray:
    """(n_users, len(BEHAVIOR_FEATURE_NAMES)) segmentation features."""
    return np.stack([behavior_features(s) for s in snapshots(population, week)])


def state_matrix(
    population: Population,
    *,
    enhanced: bool,
    week: int | None = None,
    segments: np.ndarray | None = None,
) -> np.ndarray:
    """(n_users, 17) legacy or (n_users, ENHANCED_DIM) enhanced states."""
    rows = []
    for k, snap in enumerate(snapshots(population, week)):
        if enhanced:
            seg = None if segments is None else int(segments[k])
            rows.append(enhanced_state(snap, seg))
        else:
            rows.append(legacy_state(snap))
    return np.stack(rows)
