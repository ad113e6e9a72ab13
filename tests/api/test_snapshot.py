"""The serving path (``load_snapshot``: recent rows and the feature store's aggregates, read
back from the database) builds the same feature vectors as the training path (the simulator's
columns), at any time of day, for light and heavy users, on both databases."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.db.engine import make_sessionmaker
from fincoach.db.queries.features import load_snapshot
from fincoach.db.tables import BehavioralEvent, Transaction, User
from fincoach.features.frames import EventFrame, TransactionFrame, UserSnapshot, to_datetime64
from fincoach.features.state import (
    EVENT_DAYS,
    TREND_WEEKS,
    behavior_features,
    day_end,
    enhanced_state,
    legacy_state,
    weekly_matrix,
)
from fincoach.features.vocab import EVENT_TYPES
from fincoach.training.datasets import snapshots
from fincoach.training.demo_data import demo_email, load_population
from fincoach.training.simulator import SimConfig, simulate


def _same_features(served: UserSnapshot, trained: UserSnapshot) -> None:
    assert served.as_of == trained.as_of
    assert np.allclose(legacy_state(served), legacy_state(trained))
    assert np.allclose(enhanced_state(served), enhanced_state(trained))
    assert np.allclose(behavior_features(served), behavior_features(trained))
    assert np.allclose(weekly_matrix(served, TREND_WEEKS), weekly_matrix(trained, TREND_WEEKS))


def _raw_rows_are_the_last_weeks(served: UserSnapshot, trained: UserSnapshot) -> None:
    """The served rows are exactly the training rows of the last ``raw_weeks`` whole-day
    windows; the rest of the history is in sums (the features see no difference)."""
    assert served.raw_weeks is not None
    start = day_end(served.as_of) - np.timedelta64(7 * served.raw_weeks, "D")
    keep = (trained.transactions.occurred_at >= start) & (
        trained.transactions.occurred_at < trained.as_of
    )
    assert np.array_equal(served.transactions.occurred_at, trained.transactions.occurred_at[keep])
    assert np.array_equal(served.transactions.category, trained.transactions.category[keep])
    assert np.allclose(served.transactions.amount, trained.transactions.amount[keep])


def _event_counts(snapshot: UserSnapshot) -> dict[int, int]:
    ev = snapshot.events
    start = day_end(snapshot.as_of) - np.timedelta64(EVENT_DAYS, "D")
    recent = (ev.timestamp >= start) & (ev.timestamp < snapshot.as_of)
    out: dict[int, int] = {}
    for t, n in zip(ev.event_type[recent], ev.counts[recent], strict=True):
        out[int(t)] = out.get(int(t), 0) + int(n)
    return out


def _merged(a: TransactionFrame, b: TransactionFrame) -> TransactionFrame:
    order = np.argsort(np.concatenate([a.occurred_at, b.occurred_at]), kind="stable")
    return TransactionFrame(
        *(
            np.concatenate([x, y])[order]
            for x, y in (
                (a.occurred_at, b.occurred_at),
                (a.amount, b.amount),
                (a.category, b.category),
                (a.merchant, b.merchant),
            )
        )
    )


# Midnight (the training cut-offs), and times of day the API takes its snapshot at: just after
# midnight, mid-day, the last second of the day.
OFFSETS = (
    timedelta(0),
    timedelta(seconds=1),
    -timedelta(hours=9, minutes=17, seconds=3),
    -timedelta(seconds=1),
)


async def test_snapshot_read_from_the_database_matches_training(
    clean_engine: AsyncEngine,
) -> None:
    population = simulate(SimConfig(n_users=6, n_weeks=12, seed=5))
    await load_population(clean_engine, population, hashed_password="x")
    midnight = datetime.fromisoformat(str(population.week_start(12))).replace(tzinfo=UTC)
    sessions = make_sessionmaker(clean_engine)
    async with sessions() as session:
        ids = dict((await session.execute(select(User.email, User.id))).all())
        for offset in OFFSETS:
            as_of = midnight + offset
            trained_all = snapshots(population, 12, as_of=to_datetime64(as_of))
            for user, trained in zip(population.users, trained_all, strict=True):
                served = await load_snapshot(session, ids[demo_email(user.index)], as_of=as_of)
                _raw_rows_are_the_last_weeks(served, trained)
                # The demo loader writes the last 28 days of events: the features' window.
                assert _event_counts(served) == _event_counts(trained)
                assert sorted(served.goals, key=repr) == sorted(trained.goals, key=repr)
                assert served.last_action is None
                _same_features(served, trained)
                deep = await load_snapshot(
                    session, ids[demo_email(user.index)], as_of=as_of, raw_weeks=12, weeks=12
                )
                _same_features(deep, trained)


async def test_heavy_user_snapshot_matches_training_and_reads_bounded_rows(
    clean_engine: AsyncEngine,
) -> None:
    """Three years of transactions and 10,000 events: the snapshot holds the same features as
    the training path's, at any time of day, from rows bounded by the windows."""
    population = simulate(SimConfig(n_users=1, n_weeks=156, seed=11))
    await load_population(clean_engine, population, hashed_password="x")
    end = datetime.fromisoformat(str(population.week_start(156))).replace(tzinfo=UTC)
    rng = np.random.default_rng(3)
    seconds = np.sort(rng.integers(1, 156 * 7 * 86400, size=10_000))
    stamps = [end - timedelta(seconds=int(s)) for s in seconds]
    kinds = rng.integers(0, len(EVENT_TYPES), size=len(stamps))
    sessions = make_sessionmaker(clean_engine)
    async with sessions() as session:
        user_id = (await session.execute(select(User.id))).scalar_one()
        await session.execute(delete(BehavioralEvent))
        await session.execute(
            insert(BehavioralEvent),
            [
                {
                    "event_id": f"heavy-{i}",
                    "user_id": user_id,
                    "event_type": EVENT_TYPES[int(k)],
                    "event_data": {},
                    "timestamp": t,
                }
                for i, (t, k) in enumerate(zip(stamps, kinds, strict=True))
            ],
        )
        # Rows on the windows' edges: each window's first second (midnight) and the second
        # before it, around the raw rows' start (28 days), the 12th week and the year.
        midnight = end - timedelta(days=9)
        edges = [
            midnight - timedelta(days=days, seconds=second)
            for days in (7, 27, 28, 29, 83, 84, 85, 363, 364)
            for second in (0, 1)
        ]
        await session.execute(
            insert(Transaction),
            [
                {
                    "user_id": user_id,
                    "amount": 10.0 + i,
                    "transaction_type": "debit",
                    "category": "shopping",
                    "merchant": "Edge",
                    "occurred_at": at,
                }
                for i, at in enumerate(edges)
            ],
        )
        await session.commit()
        edge_frame = TransactionFrame.from_rows(
            (at, 10.0 + i, "shopping", "Edge") for i, at in enumerate(edges)
        )
        events = EventFrame.from_rows(
            (t, EVENT_TYPES[int(k)]) for t, k in zip(stamps, kinds, strict=True)
        )
        assert len(population.transactions) > 156 * 10
        for as_of in (end - timedelta(days=2), *(midnight + o for o in OFFSETS)):
            (trained,) = snapshots(population, 156, as_of=to_datetime64(as_of))
            rows = _merged(trained.transactions, edge_frame.before(trained.as_of))
            trained = replace(
                trained,
                transactions=rows,
                events=EventFrame(
                    events.timestamp[events.timestamp < trained.as_of],
                    events.event_type[events.timestamp < trained.as_of],
                ),
            )
            served = await load_snapshot(session, user_id, as_of=as_of)
            assert len(served.transactions) < len(trained.transactions) / 10
            assert len(served.events) <= 2 * len(EVENT_TYPES) < 1000
            assert sum(_event_counts(served).values()) > 100
            _raw_rows_are_the_last_weeks(served, trained)
            assert _event_counts(served) == _event_counts(trained)
            _same_features(served, trained)
            year = await load_snapshot(session, user_id, as_of=as_of, weeks=52)
            assert np.allclose(weekly_matrix(year, 52), weekly_matrix(trained, 52))
            with pytest.raises(ValueError, match="weekly windows"):
                weekly_matrix(served, 13)


async def test_refresh_in_the_same_second_reads_the_same_snapshot(
    clean_engine: AsyncEngine,
) -> None:
    """Events of the cut-off's own second are left out whatever the sub-second cut-off: two
    refreshes in the same second get the same features (they once lost a whole event type)."""
    from sqlalchemy import insert

    from fincoach.db.tables import BehavioralEvent

    population = simulate(SimConfig(n_users=1, n_weeks=12, seed=6))
    await load_population(clean_engine, population, hashed_password="x")
    second = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
    sessions = make_sessionmaker(clean_engine)
    async with sessions() as session:
        user_id = (await session.execute(select(User.id))).scalar_one()
        rows = [
            {
                "user_id": user_id,
                "event_id": f"same-second-{i}",
                "event_type": "page_view",
                "event_data": {},
                "timestamp": t,
            }
            for i, t in enumerate(
                (
                    second - np.timedelta64(3, "D").astype(object),
                    second.replace(microsecond=100_000),  # the cut-off's own second
                )
            )
        ]
        await session.execute(insert(BehavioralEvent), rows)
        await session.commit()
        early = await load_snapshot(session, user_id, as_of=second.replace(microsecond=50_000))
        late = await load_snapshot(session, user_id, as_of=second.replace(microsecond=900_000))
    assert early.as_of == late.as_of
    assert early.events.counts.tolist() == late.events.counts.tolist() == [1]
    assert np.array_equal(behavior_features(early), behavior_features(late))
    assert np.array_equal(enhanced_state(early), enhanced_state(late))
