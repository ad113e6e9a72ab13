"""Migrations: the same Alembic scripts on SQLite and PostgreSQL, equal to the ORM metadata,
and a full down/up round trip that `fincoach db check` verifies."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.db.engine import make_engine
from fincoach.db.feature_store import rebuild
from fincoach.db.migrate import check_schema, downgrade, upgrade
from fincoach.db.tables import REQUIRED_INDEXES, Base, Goal, Transaction, User, utcnow
from tests.conftest import BACKENDS, migrated_database


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


async def test_original_api_migration_moves_existing_rows_without_loss(
    tmp_path_factory: pytest.TempPathFactory, backend: str
) -> None:
    """Rows written before 0003 (names in full_name, no wallets, no direction or balances)
    come through it whole: names split, income a credit, each balance_after the running
    balance, one wallet per user holding the last of them; nothing else lost."""
    async for url in migrated_database(backend, tmp_path_factory, revision="0002"):
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                for email, name in (
                    ("ada@example.com", "Ada King Lovelace"),
                    ("x@example.com", None),
                ):
                    await conn.execute(
                        text(
                            "INSERT INTO users (email, hashed_password, full_name, is_active, "
                            "created_at) VALUES (:e, 'h', :n, true, :t)"
                        ),
                        {"e": email, "n": name, "t": utcnow()},
                    )
                ada, other = (await conn.scalars(text("SELECT id FROM users ORDER BY id"))).all()
                await conn.execute(
                    text(
                        "INSERT INTO user_profiles (user_id, opening_balance, monthly_income, "
                        "currency, risk_tolerance, created_at, updated_at) "
                        "VALUES (:u, 100, 2000, 'GBP', 'low', :t, :t)"
                    ),
                    {"u": ada, "t": utcnow()},
                )
                base = utcnow() - timedelta(days=10)
                rows = [  # inserted out of time order: the running balance follows the time
                    (ada, 50.0, "groceries", "expense", base + timedelta(days=3)),
                    (ada, 500.0, "income", "income", base + timedelta(days=1)),
                    (ada, 30.0, "savings", "transfer", base + timedelta(days=5)),
                    (other, 20.0, "dine_out", "expense", base),
                ]
                for uid, amount, category, kind, at in rows:
                    await conn.execute(
                        text(
                            "INSERT INTO transactions (user_id, amount, category, kind, "
                            "occurred_at, merchant, created_at) "
                            "VALUES (:u, :a, :c, :k, :o, 'Shop', :t)"
                        ),
                        {"u": uid, "a": amount, "c": category, "k": kind, "o": at, "t": utcnow()},
                    )
                await conn.execute(
                    text(
                        "INSERT INTO goals (user_id, name, target_amount, current_amount, "
                        "target_date, status, created_at, updated_at) "
                        "VALUES (:u, 'Trip', 900, 10, :d, 'active', :t, :t)"
                    ),
                    {"u": ada, "d": (base + timedelta(days=90)).date(), "t": utcnow()},
                )
            counts_before = await _row_counts(engine)
            await asyncio.to_thread(upgrade, url, "head")
            assert await _row_counts(engine) == counts_before, "rows lost in the migration"
            async with engine.connect() as conn:
                names = (
                    await conn.execute(text("SELECT first_name, last_name FROM users ORDER BY id"))
                ).all()
                assert [tuple(n) for n in names] == [("Ada", "King Lovelace"), ("", "")]
                txs = (
                    await conn.execute(
                        select(
                            Transaction.category,
                            Transaction.transaction_type,
                            Transaction.balance_after,
                        )
                        .where(Transaction.user_id == ada)
                        .order_by(Transaction.occurred_at)
                    )
                ).all()
                assert [tuple(t) for t in txs] == [
                    ("income", "credit", 600.0),
                    ("groceries", "debit", 550.0),
                    ("savings", "debit", 520.0),
                ]
                wallets: dict[int, float] = dict(
                    (await conn.execute(text("SELECT user_id, balance FROM wallets"))).all()
                )
                assert {k: float(v) for k, v in wallets.items()} == {ada: 520.0, other: -20.0}
                currency = await conn.scalar(
                    text("SELECT currency FROM wallets WHERE user_id = :u"), {"u": ada}
                )
                assert currency == "GBP"
                totals: dict[int, float] = dict(
                    (
                        await conn.execute(text("SELECT user_id, signed_total FROM ledger_totals"))
                    ).all()
                )
                assert {k: float(v) for k, v in totals.items()} == {ada: 420.0, other: -20.0}
                if backend == "sqlite":  # a deleted user's id is never given out again
                    ddl = await conn.scalar(
                        text("SELECT sql FROM sqlite_master WHERE name = 'users'")
                    )
                    assert "AUTOINCREMENT" in ddl
            # 0004 filled the feature store from the rows it found.
            assert (await rebuild(engine, check_only=True)).differing_users == []
            await asyncio.to_thread(downgrade, url, "0002")
            assert await _row_counts(engine) == counts_before, "rows lost on the way back"
        finally:
            await engine.dispose()


async def _row_counts(engine: AsyncEngine) -> dict[str, int]:
    tables = ("users", "user_profiles", "transactions", "goals")
    async with engine.connect() as conn:
        return {t: int(await conn.scalar(text(f"SELECT count(*) FROM {t}")) or 0) for t in tables}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
