"""The serving path (rows read back from the database by ``load_snapshot``) builds the same
feature vectors as the training path (the simulator's columns), on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.db.engine import make_sessionmaker
from fincoach.db.queries.features import load_snapshot
from fincoach.db.tables import User
from fincoach.features.state import behavior_features, enhanced_state, legacy_state
from fincoach.training.datasets import snapshots
from fincoach.training.demo_data import demo_email, load_population
from fincoach.training.simulator import SimConfig, simulate


async def test_snapshot_read_from_the_database_matches_training(
    clean_engine: AsyncEngine,
) -> None:
    population = simulate(SimConfig(n_users=6, n_weeks=12, seed=5))
    await load_population(clean_engine, population, hashed_password="x")
    as_of = datetime.fromisoformat(str(population.week_start(12))).replace(tzinfo=UTC)
    sessions = make_sessionmaker(clean_engine)
    async with sessions() as session:
        ids = dict((await session.execute(select(User.email, User.id))).all())
        for user, trained in zip(population.users, snapshots(population), strict=True):
            served = await load_snapshot(session, ids[demo_email(user.index)], as_of=as_of)
            assert len(served.transactions) == len(trained.transactions)
            assert np.array_equal(served.transactions.occurred_at, trained.transactions.occurred_at)
            assert np.array_equal(served.transactions.category, trained.transactions.category)
            assert np.allclose(served.transactions.amount, trained.transactions.amount)
            # Serving reads the last 28 days of events, counted per type (one row per type,
            # stamped with its latest event): the features look at no more.
            recent = trained.events.timestamp >= served.as_of - np.timedelta64(28, "D")
            types = trained.events.event_type[recent]
            assert dict(zip(served.events.event_type, served.events.counts, strict=True)) == {
                t: int(np.count_nonzero(types == t)) for t in set(types.tolist())
            }
            for t, at in zip(served.events.event_type, served.events.timestamp, strict=True):
                assert at == trained.events.timestamp[recent][types == t].max()
            assert sorted(served.goals, key=repr) == sorted(trained.goals, key=repr)
            assert served.last_action is None
            assert np.allclose(legacy_state(served), legacy_state(trained))
            assert np.allclose(enhanced_state(served), enhanced_state(trained))
            assert np.allclose(behavior_features(served), behavior_features(trained))


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
