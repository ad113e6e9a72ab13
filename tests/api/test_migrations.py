"""Migrations: the same Alembic scripts on SQLite and PostgreSQL, equal to the ORM metadata,
and a full down/up round trip that `fincoach db check` verifies."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.db.migrate import check_schema, downgrade, upgrade
from fincoach.db.tables import REQUIRED_INDEXES, Base, Goal, Transaction, User, utcnow


async def test_migrations_match_the_tables(clean_engine: AsyncEngine) -> None:
    async with clean_engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
            )
        )
    assert diff == []


async def test_downgrade_base_then_upgrade_head_round_trips(database_url: str) -> None:
    report = await check_schema(database_url)
    assert report.ok and len(REQUIRED_INDEXES) == 7
    await asyncio.to_thread(downgrade, database_url, "base")
    gone = await check_schema(database_url)
    assert not gone.ok
    assert set(gone.missing_tables) == set(Base.metadata.tables)
    assert set(gone.missing_indexes) == set(REQUIRED_INDEXES)
    await asyncio.to_thread(upgrade, database_url, "head")
    assert (await check_schema(database_url)).ok


async def test_constraints_hold_at_the_database_level(clean_engine: AsyncEngine) -> None:
    """What the API refuses, the database refuses too (a bad row cannot sneak in)."""
    async with clean_engine.begin() as conn:
        await conn.execute(insert(User).values(email="a@example.com", hashed_password="x"))
        user_id = await conn.scalar(select(User.id))
    assert user_id is not None
    bad_rows = [
        (Transaction, {"amount": 0, "category": "other", "occurred_at": utcnow()}),
        (Transaction, {"amount": float("nan"), "category": "other", "occurred_at": utcnow()}),
        (Transaction, {"amount": 2e9, "category": "other", "occurred_at": utcnow()}),
        (Transaction, {"amount": 5, "category": "other", "kind": "gift", "occurred_at": utcnow()}),
        (Goal, {"name": "g", "target_amount": 0, "target_date": utcnow().date()}),
        (Goal, {"name": "g", "target_amount": 5, "target_date": utcnow().date(), "status": "?"}),
        (Transaction, {"amount": 5, "category": "other", "occurred_at": None}),
    ]
    for table, values in bad_rows:
        try:
            async with clean_engine.begin() as conn:
                await conn.execute(insert(table).values(user_id=user_id, **values))
        except IntegrityError:
            continue
        raise AssertionError(f"{table.__tablename__} accepted {values}")
    # A row for a user that does not exist violates the foreign key.
    try:
        async with clean_engine.begin() as conn:
            await conn.execute(
                insert(Transaction).values(
                    user_id=user_id + 1000, amount=5, category="other", occurred_at=utcnow()
                )
            )
    except IntegrityError:
        pass
    else:
        raise AssertionError("foreign key not enforced")
    async with clean_engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM transactions")) == 0
