"""The online feature store's aggregates (``ledger_days``, ``ledger_totals``, ``event_days``):
rebuilding them from the rows, and checking them against the rows.

Triggers keep them current on every write (migration ``2026-11-28_feature_store``); rebuilding
is for repair (a trigger dropped by a table rebuild, rows restored from a backup without them)
and checking is how one finds out. Both run per chunk of users, each chunk in one transaction
that keeps writers of rows out meanwhile (PostgreSQL: a SHARE lock on the two tables, which
readers pass; SQLite: its single writer), so that no write lands between the recount and the
replacement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, case, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from fincoach.db.tables import BehavioralEvent, EventDay, LedgerDay, LedgerTotal, Transaction, User

# The triggers the migration creates, by dialect (``fincoach db check`` looks for them).
TRIGGERS: dict[str, tuple[str, ...]] = {
    "sqlite": (
        "event_days_delete",
        "event_days_insert",
        "ledger_days_delete",
        "ledger_days_insert",
        "ledger_days_update",
    ),
    "postgresql": ("event_aggregates", "ledger_aggregates"),
}
CHUNK = 200


class utc_day(FunctionElement[Any]):  # noqa: N801 - used like a SQL function
    """The UTC date of a UTC datetime column, as the triggers compute it."""

    type = Date()
    inherit_cache = True


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC')::date"


_SIGNED: ColumnElement[float] = case(
    (Transaction.transaction_type == "credit", Transaction.amount), else_=-Transaction.amount
)


Aggregate = type[LedgerDay] | type[LedgerTotal] | type[EventDay]


def _recount(user_ids: Sequence[int]) -> dict[Aggregate, Any]:
    """Per table, the select that recounts its rows for ``user_ids`` from the raw rows."""
    tx_day = utc_day(Transaction.occurred_at)
    ev_day = utc_day(BehavioralEvent.timestamp)
    return {
        LedgerDay: select(
            Transaction.user_id,
            tx_day,
            Transaction.category,
            Transaction.transaction_type,
            func.round(func.sum(Transaction.amount), 2),
            func.count(),
        )
        .where(Transaction.user_id.in_(user_ids))
        .group_by(Transaction.user_id, tx_day, Transaction.category, Transaction.transaction_type),
        LedgerTotal: select(Transaction.user_id, func.round(func.sum(_SIGNED), 2), func.count())
        .where(Transaction.user_id.in_(user_ids))
        .group_by(Transaction.user_id),
        EventDay: select(BehavioralEvent.user_id, ev_day, BehavioralEvent.event_type, func.count())
        .where(BehavioralEvent.user_id.in_(user_ids))
        .group_by(BehavioralEvent.user_id, ev_day, BehavioralEvent.event_type),
    }


_COLUMNS: dict[Aggregate, tuple[str, ...]] = {
    LedgerDay: ("user_id", "day", "category", "transaction_type", "amount", "n"),
    LedgerTotal: ("user_id", "signed_total", "n"),
    EventDay: ("user_id", "day", "event_type", "n"),
}


@dataclass
class StoreReport:
    users: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    # Users whose stored aggregates differ from a recount (``check``), or were replaced.
    differing_users: list[int] = field(default_factory=list)


async def _hold_writers(conn: AsyncConnection) -> None:
    """Keep writers out of the chunk's rows while it is compared or rebuilt, and read one
    snapshot: the stored aggregates and the recount must see the same rows. SQLite's driver
    starts no transaction for a SELECT (each read would be its own snapshot, and a write landing
    between the two reads looked like drift), so take the write lock explicitly."""
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql("LOCK TABLE transactions, behavioral_events IN SHARE MODE")
    elif conn.dialect.name == "sqlite":
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


def _normalise(rows: Sequence[Sequence[Any]]) -> set[tuple[Any, ...]]:
    """Rows comparable whatever the driver returns: numbers (SQLite gives 12 for 12.00, the
    drivers Decimal or float) rounded to cents, the rest (days) as text."""
    return {
        tuple(round(float(v), 2) if isinstance(v, int | float | Decimal) else str(v) for v in row)
        for row in rows
    }


async def _differing(conn: AsyncConnection, user_ids: Sequence[int]) -> list[int]:
    """Users among ``user_ids`` whose stored aggregates are not the recount of their rows."""
    differing: set[int] = set()
    for table, recount in _recount(user_ids).items():
        columns = [getattr(table, c) for c in _COLUMNS[table]]
        stored = _normalise(
            (await conn.execute(select(*columns).where(table.user_id.in_(user_ids)))).all()
        )
        fresh = _normalise((await conn.execute(recount)).all())
        differing |= {int(float(row[0])) for row in stored ^ fresh}
    return sorted(differing)


async def _replace(conn: AsyncConnection, user_ids: Sequence[int], report: StoreReport) -> None:
    for table, recount in _recount(user_ids).items():
        await conn.execute(delete(table).where(table.user_id.in_(user_ids)))
        result = await conn.execute(insert(table).from_select(list(_COLUMNS[table]), recount))
        name = table.__tablename__
        report.rows[name] = report.rows.get(name, 0) + max(result.rowcount or 0, 0)


async def rebuild(
    engine: AsyncEngine,
    *,
    check_only: bool = False,
    progress: Callable[[int], None] | None = None,
) -> StoreReport:
    """Recount every user's aggregates from their rows. ``check_only``: write nothing, report
    the users whose stored aggregates differ; else replace them (and report who differed)."""
    tick = progress or (lambda _n: None)
    report = StoreReport()
    async with engine.connect() as conn:
        user_ids = list((await conn.execute(select(User.id).order_by(User.id))).scalars())
    for start in range(0, len(user_ids), CHUNK):
        chunk = user_ids[start : start + CHUNK]
        async with engine.begin() as conn:
            await _hold_writers(conn)
            report.differing_users += await _differing(conn, chunk)
            if not check_only:
                await _replace(conn, chunk, report)
        report.users += len(chunk)
        tick(len(chunk))
    return report


async def missing_triggers(conn: AsyncConnection) -> list[str]:
    """The feature store's triggers absent from the database."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    else:
        query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    present = set((await conn.exec_driver_sql(query)).scalars())
    return sorted(set(TRIGGERS.get(dialect, ())) - present)
