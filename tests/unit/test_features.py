"""Feature vectors: documented dimensions, exact values on hand-made rows, finite for new users."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from fincoach.features.frames import EventFrame, GoalRow, Profile, TransactionFrame, UserSnapshot
from fincoach.features.state import (
    BEHAVIOR_FEATURE_NAMES,
    ENHANCED_DIM,
    ENHANCED_FEATURE_NAMES,
    LEGACY_DIM,
    LEGACY_FEATURE_NAMES,
    behavior_features,
    day_end,
    enhanced_state,
    legacy_state,
    weekly_matrix,
)
from fincoach.features.vocab import CATEGORIES
from fincoach.training.datasets import behavior_matrix, snapshots, state_matrix
from fincoach.training.simulator import SimConfig, simulate

AS_OF = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


def _snapshot(rows, **kwargs) -> UserSnapshot:
    return UserSnapshot(
        as_of=np.datetime64(AS_OF.replace(tzinfo=None), "s"),
        transactions=TransactionFrame.from_rows(rows),
        **kwargs,
    )


def test_dimensions_and_legacy_order() -> None:
    assert LEGACY_DIM == 17 and ENHANCED_DIM >= 35
    assert LEGACY_FEATURE_NAMES[:4] == (
        "current_balance",
        "total_spending",
        "total_income",
        "transaction_count",
    )
    assert LEGACY_FEATURE_NAMES[-2:] == ("savings_rate", "spending_velocity")
    assert ENHANCED_FEATURE_NAMES[:LEGACY_DIM] == LEGACY_FEATURE_NAMES
    assert ENHANCED_FEATURE_NAMES[LEGACY_DIM] == "weekday_spending_ratio"
    assert ENHANCED_FEATURE_NAMES[LEGACY_DIM + 17] == "financial_stress_indicator"


def test_new_user_gets_finite_vectors() -> None:
    empty = UserSnapshot(as_of=np.datetime64("2026-03-02T00:00:00"))
    for vector, dim in [
        (legacy_state(empty), LEGACY_DIM),
        (enhanced_state(empty), ENHANCED_DIM),
        (enhanced_state(empty, segment_id=3), ENHANCED_DIM),
        (behavior_features(empty), len(BEHAVIOR_FEATURE_NAMES)),
    ]:
        assert vector.shape == (dim,) and np.isfinite(vector).all()


def test_legacy_state_values_on_known_rows() -> None:
    day = timedelta(days=1)
    rows = [
        (AS_OF - 2 * day, 100.0, "groceries", "FreshMart"),  # last 7 days
        (AS_OF - 3 * day, 50.0, "dine_out", "Pasta Place"),  # last 7 days
        (AS_OF - 4 * day, 1000.0, "income", "Employer"),  # last 7 days
        (AS_OF - 10 * day, 75.0, "groceries", "FreshMart"),  # the week before
        (AS_OF + day, 999.0, "shopping", "Future"),  # after as_of: not known yet
    ]
    state = legacy_state(_snapshot(rows, profile=Profile(opening_balance=500.0)))
    named = dict(zip(LEGACY_FEATURE_NAMES, state, strict=True))
    assert named["current_balance"] == pytest.approx(500 + 1000 - 100 - 50 - 75)
    assert named["total_spending"] == pytest.approx(150.0)
    assert named["total_income"] == pytest.approx(1000.0)
    assert named["transaction_count"] == 3
    assert named["weekly_groceries"] == pytest.approx(100.0)
    assert named["weekly_dine_out"] == pytest.approx(50.0)
    assert named["savings_rate"] == pytest.approx((1000 - 225) / 1000)
    # 150 this week against the 4 weeks before it (75 in one of them: mean 18.75).
    assert named["spending_velocity"] == pytest.approx(150 / 18.75)


def test_weekly_matrix_windows_end_at_as_of() -> None:
    rows = [
        (AS_OF - timedelta(days=1), 10.0, "groceries", None),
        (AS_OF - timedelta(days=8), 20.0, "groceries", None),
    ]
    weekly = weekly_matrix(_snapshot(rows), 3)
    assert weekly[:, 0].tolist() == [0.0, 20.0, 10.0]


def test_events_counted_per_type_give_the_same_features_as_one_row_each() -> None:
    kinds = ["page_view", "recommendation_interaction", "goal_modification", "search"]
    rows = [(AS_OF - timedelta(hours=5 * i + 1), kinds[i % 3 + (i % 7 == 0)]) for i in range(90)]
    rows.append((AS_OF - timedelta(days=40), "goal_modification"))  # outside the 28 days
    one_each = EventFrame.from_rows(rows)
    recent = one_each.timestamp >= np.datetime64((AS_OF - timedelta(days=28)).replace(tzinfo=None))
    types, counts = np.unique(one_each.event_type[recent], return_counts=True)
    latest = [one_each.timestamp[recent][one_each.event_type[recent] == t].max() for t in types]
    grouped = EventFrame(np.array(latest, dtype="datetime64[s]"), types, counts)
    assert len(grouped) == 4 and grouped.counts.sum() == 90
    assert np.array_equal(
        enhanced_state(_snapshot([], events=grouped)),
        enhanced_state(_snapshot([], events=one_each)),
    )


def test_enhanced_state_uses_goals_events_and_segment() -> None:
    events = EventFrame.from_rows([(AS_OF - timedelta(days=d), "page_view") for d in range(1, 9)])
    goals = [GoalRow(1000.0, 250.0, date(2026, 5, 25))]
    state = enhanced_state(_snapshot([], events=events, goals=goals), segment_id=2)
    named = dict(zip(ENHANCED_FEATURE_NAMES, state, strict=True))
    assert named["events_per_week"] == pytest.approx(2.0)
    assert named["goal_progress"] == pytest.approx(0.25)
    assert named["weeks_to_goal"] == pytest.approx(12 / 52)
    assert [named[f"segment_{i}"] for i in range(5)] == [0, 0, 1, 0, 0]
    with pytest.raises(ValueError, match="segment_id"):
        enhanced_state(_snapshot([]), segment_id=7)


def test_timing_ratios() -> None:
    saturday_night = datetime(2026, 2, 28, 21, 0, tzinfo=UTC)
    tuesday_morning = datetime(2026, 2, 24, 9, 0, tzinfo=UTC)
    rows = [(saturday_night, 30.0, "dine_out", "A"), (tuesday_morning, 10.0, "groceries", "B")]
    named = dict(zip(ENHANCED_FEATURE_NAMES, enhanced_state(_snapshot(rows)), strict=True))
    assert named["weekend_spending_ratio"] == pytest.approx(0.75)
    assert named["weekday_spending_ratio"] == pytest.approx(0.25)
    assert named["evening_spending_ratio"] == pytest.approx(0.75)
    assert named["morning_spending_ratio"] == pytest.approx(0.25)


def test_unknown_category_counts_as_other() -> None:
    frame = TransactionFrame.from_rows([(AS_OF - timedelta(days=1), 5.0, "crypto", None)])
    assert (
        legacy_state(_snapshot([(AS_OF - timedelta(days=1), 5.0, "crypto", None)]))[
            LEGACY_FEATURE_NAMES.index("weekly_other")
        ]
        == 5.0
    )
    assert len(frame) == 1


def test_training_and_serving_paths_agree() -> None:
    """The simulator path (columnar slices) equals building the frame from rows, as serving does."""
    pop = simulate(SimConfig(n_users=5, n_weeks=10, seed=2))
    snap = next(snapshots(pop))
    first = pop.transactions.user == 0
    rows = [
        (datetime.fromisoformat(str(t)).replace(tzinfo=UTC), float(a), c, m)
        for t, a, c, m in zip(
            pop.transactions.occurred_at[first],
            pop.transactions.amount[first],
            np.array(CATEGORIES)[pop.transactions.category[first]],
            pop.transactions.merchant[first],
            strict=True,
        )
    ]
    served = UserSnapshot(
        as_of=snap.as_of,
        transactions=TransactionFrame.from_rows(rows),
        events=snap.events,
        profile=snap.profile,
        goals=snap.goals,
    )
    assert np.allclose(enhanced_state(served), enhanced_state(snap))
    assert state_matrix(pop, enhanced=False).shape == (5, LEGACY_DIM)
    assert behavior_matrix(pop).shape == (5, len(BEHAVIOR_FEATURE_NAMES))


def test_windows_are_whole_days_ending_with_the_day_of_as_of() -> None:
    """At midnight the last window is the 7 days before ``as_of``; later in the day it is that
    day so far and the 6 days before it (what daily aggregates can sum)."""
    midnight = np.datetime64("2026-03-02T00:00:00")
    assert day_end(midnight) == midnight
    assert day_end(midnight + np.timedelta64(1, "s")) == midnight + np.timedelta64(1, "D")
    assert day_end(midnight - np.timedelta64(1, "s")) == midnight
    rows = [
        (AS_OF - timedelta(days=7), 10.0, "groceries", "A"),  # first second of the window
        (AS_OF - timedelta(days=7, seconds=1), 20.0, "groceries", "A"),  # the week before
        (AS_OF + timedelta(hours=9), 5.0, "groceries", "A"),  # today, before 10:00
        (AS_OF + timedelta(hours=11), 7.0, "groceries", "A"),  # today, after 10:00
    ]
    at_midnight = weekly_matrix(_snapshot(rows), 2)[:, CATEGORIES.index("groceries")]
    assert at_midnight.tolist() == [20.0, 10.0]
    later = UserSnapshot(
        as_of=np.datetime64((AS_OF + timedelta(hours=10)).replace(tzinfo=None), "s"),
        transactions=TransactionFrame.from_rows(rows),
    )
    # Window 1 is 2026-02-24..03-02 (10:00): the row of 02-23 moved to window 2.
    assert weekly_matrix(later, 2)[:, CATEGORIES.index("groceries")].tolist() == [30.0, 5.0]


def _compact(full: UserSnapshot, raw_weeks: int, weeks: int) -> UserSnapshot:
    """What serving builds: the rows of the last ``raw_weeks`` windows, sums for the older
    windows up to ``weeks``, the rows before them in the opening balance."""
    end = day_end(full.as_of)
    start = end - np.timedelta64(7 * raw_weeks, "D")
    tx = full.transactions
    keep = (tx.occurred_at >= start) & (tx.occurred_at < full.as_of)
    before = tx.occurred_at < start
    signed = np.where(tx.category == CATEGORIES.index("income"), tx.amount, -tx.amount)
    older = weekly_matrix(full, weeks)[: weeks - raw_weeks][::-1]
    return replace(
        full,
        transactions=TransactionFrame(
            tx.occurred_at[keep], tx.amount[keep], tx.category[keep], tx.merchant[keep]
        ),
        raw_weeks=raw_weeks,
        older_weeks=older,
        profile=replace(
            full.profile,
            opening_balance=full.profile.opening_balance + float(signed[before].sum()),
        ),
    )


@pytest.mark.parametrize("hours", [0, 1, 13.5, 23.99])
def test_a_compact_snapshot_gives_the_full_snapshots_features(hours: float) -> None:
    population = simulate(SimConfig(n_users=5, n_weeks=30, seed=4))
    as_of = np.datetime64(population.week_start(30), "s") - np.timedelta64(int(hours * 3600), "s")
    for full in snapshots(population, 30, as_of=as_of):
        compact = _compact(full, 4, 12)
        assert len(compact.transactions) < len(full.transactions)
        assert np.allclose(enhanced_state(compact), enhanced_state(full))
        assert np.allclose(behavior_features(compact), behavior_features(full))
        assert np.allclose(weekly_matrix(compact, 12), weekly_matrix(full, 12))
        with pytest.raises(ValueError, match="weekly windows"):
            weekly_matrix(compact, 13)
