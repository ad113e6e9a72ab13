"""Reading what the feature functions need for one user, from the online feature store: the
rows of the last ``raw_weeks`` weekly windows (4 by default: what the 28-day features look at),
older windows summed per category by the database from the per-day aggregates, the rows before
all of them folded into the opening balance through the per-user total, the last 28 days of
events counted per type (whole days from the per-day aggregates, today's from the rows), profile,
goals and the last recommended action. Every read is bounded by the windows, whatever the length
of the history. (The aggregates are kept by triggers; see ``db/tables.py``.)

This runs on every model-backed request, so it is written for speed: five round trips (profile
with its scalars, transactions, older weeks, events, goals), timestamps come back as epoch seconds
computed by the database (no per-row datetime objects), and the columns go straight to numpy.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Date, Integer, bindparam, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from fincoach.db.queries.transactions import SIGNED
from fincoach.db.queries.users import get_profile
from fincoach.db.tables import (
    BehavioralEvent,
    EventDay,
    Goal,
    LedgerDay,
    LedgerTotal,
    RecommendationHistory,
    Transaction,
    UserProfile,
)
from fincoach.features.frames import (
    CATEGORY_CODES,
    EVENT_CODES,
    INCOME,
    OTHER,
    EventFrame,
    GoalRow,
    Profile,
    TransactionFrame,
    UserSnapshot,
    to_datetime64,
)
from fincoach.features.state import EVENT_DAYS, RECENT_WEEKS, TREND_WEEKS, day_end
from fincoach.features.vocab import ACTIONS, CATEGORIES

# The longest history a caller may ask for (the forecaster's and the goal model's year).
HISTORY_WEEKS = 52


class epoch_seconds(FunctionElement[int]):  # noqa: N801 - used like a SQL function
    """Whole seconds since 1970 (UTC) of a UTC datetime column, computed by the database."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    # Stored as 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC (UTCDateTime).
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(epoch_seconds, "postgresql")
def _epoch_postgresql(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    return f"CAST(floor(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})) AS BIGINT)"


class weeks_back(FunctionElement[int]):  # noqa: N801 - used like a SQL function
    """Whole weeks from a date column back to ``last_day`` (a date): 0 for its own week."""

    type = Integer()
    inherit_cache = True


@compiles(weeks_back, "sqlite")
def _weeks_back_sqlite(element: weeks_back, compiler: Any, **kw: Any) -> str:
    last_day, day = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST(julianday({last_day}) - julianday({day}) AS INTEGER) / 7)"


@compiles(weeks_back, "postgresql")
def _weeks_back_postgresql(element: weeks_back, compiler: Any, **kw: Any) -> str:
    last_day, day = (compiler.process(c, **kw) for c in element.clauses)
    return f"((CAST({last_day} AS DATE) - {day}) / 7)"


def category_code(category: str, transaction_type: str) -> int:
    """The feature column of a row: money in is income whatever its category (a refund), and a
    debit filed under income is spending of no category ("other")."""
    if transaction_type == "credit":
        return INCOME
    code = CATEGORY_CODES.get(category, OTHER)
    return OTHER if code == INCOME else code


def _seconds(values: list[Any]) -> np.ndarray:
    return np.array(values, dtype="int64").astype("datetime64[s]")


# The statements are built once, with bound parameters: building them took more CPU than
# running them (SQLAlchemy's construction and cache key, for every request).
_USER = bindparam("user_id", type_=Integer())
_RAW_START = bindparam("raw_start", type_=Transaction.occurred_at.type)
_AS_OF = bindparam("as_of", type_=Transaction.occurred_at.type)
_DAY_START = bindparam("day_start", type_=Transaction.occurred_at.type)
_LAST_DAY = bindparam("last_day", type_=Date())
_FIRST_DAY = bindparam("first_day", type_=Date())
_OLDER_START = bindparam("older_start", type_=Date())
_RAW_FIRST_DAY = bindparam("raw_first_day", type_=Date())

_HEAD = select(
    UserProfile.opening_balance,
    UserProfile.monthly_income,
    UserProfile.monthly_budget,
    select(LedgerTotal.signed_total).where(LedgerTotal.user_id == _USER).scalar_subquery(),
    # The rows the snapshot holds, and any dated after as_of: the rest is the opening balance.
    select(func.coalesce(func.sum(SIGNED), 0.0))
    .where(Transaction.user_id == _USER, Transaction.occurred_at >= _RAW_START)
    .scalar_subquery(),
    select(RecommendationHistory.action_id)
    .where(RecommendationHistory.user_id == _USER)
    .order_by(RecommendationHistory.created_at.desc(), RecommendationHistory.id.desc())
    .limit(1)
    .scalar_subquery(),
).where(UserProfile.user_id == _USER)

_ROWS = (
    select(
        epoch_seconds(Transaction.occurred_at),
        Transaction.amount,
        Transaction.category,
        Transaction.merchant,
        Transaction.transaction_type,
    )
    .where(
        Transaction.user_id == _USER,
        Transaction.occurred_at >= _RAW_START,
        Transaction.occurred_at < _AS_OF,
    )
    .order_by(Transaction.occurred_at, Transaction.id)
)

_BACK = weeks_back(_LAST_DAY, LedgerDay.day)
_OLDER_WEEKS = (
    select(_BACK, LedgerDay.category, LedgerDay.transaction_type, func.sum(LedgerDay.amount))
    .where(
        LedgerDay.user_id == _USER,
        LedgerDay.day >= _OLDER_START,
        LedgerDay.day < _RAW_FIRST_DAY,
    )
    .group_by(_BACK, LedgerDay.category, LedgerDay.transaction_type)
)

# The last EVENT_DAYS whole days per type: the days before the last one from the per-day
# aggregates (source 0), the last day's rows before as_of counted by the database (source 1).
_EVENTS = union_all(
    select(literal(0), EventDay.event_type, func.sum(EventDay.n))
    .where(EventDay.user_id == _USER, EventDay.day >= _FIRST_DAY, EventDay.day < _LAST_DAY)
    .group_by(EventDay.event_type),
    select(literal(1), BehavioralEvent.event_type, func.count())
    .where(
        BehavioralEvent.user_id == _USER,
        BehavioralEvent.timestamp >= _DAY_START,
        BehavioralEvent.timestamp < _AS_OF,
    )
    .group_by(BehavioralEvent.event_type),
)

_GOALS = (
    select(Goal.target_amount, Goal.current_amount, Goal.target_date, Goal.status)
    .where(Goal.user_id == _USER)
    .order_by(Goal.id)
)


async def load_snapshot(
    session: AsyncSession,
    user_id: int,
    *,
    as_of: datetime | None = None,
    raw_weeks: int = RECENT_WEEKS,
    weeks: int = TREND_WEEKS,
) -> UserSnapshot:
    """The user's snapshot at ``as_of`` (now by default): rows for the last ``raw_weeks`` weekly
    windows, sums for the windows up to ``weeks`` (see ``UserSnapshot``)."""
    if not 1 <= raw_weeks <= HISTORY_WEEKS or not 0 <= weeks <= HISTORY_WEEKS:
        raise ValueError(f"raw_weeks and weeks must be within 1..{HISTORY_WEEKS}")
    # Whole seconds, for the queries as for the snapshot: rows of the cut-off's own second are
    # left out of both. (The snapshot truncates timestamps to seconds; with a finer cut-off in
    # the queries, a type whose latest event fell in that second lost all its events, so a
    # refresh in the same second as the previous request changed the features.)
    as_of = (as_of or datetime.now(UTC)).replace(microsecond=0)
    end = day_end(to_datetime64(as_of))
    day = _datetime(end) - timedelta(days=1)  # the last day's midnight
    last_day = day.date()
    raw_start = _datetime(end) - timedelta(weeks=raw_weeks)
    older_weeks = max(0, weeks - raw_weeks)
    params = {"user_id": user_id, "raw_start": raw_start, "as_of": as_of}

    head = (await session.execute(_HEAD, params)).first()
    if head is None:  # no profile row yet: make it, then read the scalars as before
        await get_profile(session, user_id)
        head = (await session.execute(_HEAD, params)).one()
    opening, income, budget, total_sum, newer_sum, action = head

    tx = (await session.execute(_ROWS, params)).all()
    older = np.zeros((older_weeks, len(CATEGORIES)))
    if older_weeks:
        sums = await session.execute(
            _OLDER_WEEKS,
            {
                "user_id": user_id,
                "last_day": last_day,
                "older_start": last_day - timedelta(weeks=weeks, days=-1),
                "raw_first_day": raw_start.date(),
            },
        )
        for b, ledger_category, ledger_type, ledger_sum in sums:
            older[int(b) - raw_weeks, category_code(ledger_category, ledger_type)] += float(
                ledger_sum
            )
    events = await _event_counts(session, user_id, last_day, day, as_of)
    goals = (await session.execute(_GOALS, params)).all()

    if tx:
        at, amount, category, merchant, direction = zip(*tx, strict=True)
        transactions = TransactionFrame(
            occurred_at=_seconds(list(at)),
            amount=np.array(amount, dtype=float),
            category=np.array(
                [category_code(c, d) for c, d in zip(category, direction, strict=True)], dtype=int
            ),
            merchant=np.array(merchant, dtype=object),
        )
    else:
        transactions = TransactionFrame.empty()
    return UserSnapshot(
        as_of=to_datetime64(as_of),
        transactions=transactions,
        raw_weeks=raw_weeks,
        older_weeks=older,
        events=events,
        profile=Profile(
            opening_balance=float(opening) + float(total_sum or 0.0) - float(newer_sum or 0.0),
            monthly_income=float(income),
            monthly_budget=float(budget) if budget else None,
        ),
        goals=tuple(
            GoalRow(float(target), float(current), target_date, status)
            for target, current, target_date, status in goals
        ),
        last_action=action if action is not None and 0 <= action < len(ACTIONS) else None,
    )


async def _event_counts(
    session: AsyncSession, user_id: int, last_day: date, day: datetime, as_of: datetime
) -> EventFrame:
    """Events of the last EVENT_DAYS whole days per type (one row per type and source, stamped
    with the window's first day or the last day)."""
    first_day = last_day - timedelta(days=EVENT_DAYS - 1)
    result = await session.execute(
        _EVENTS,
        {
            "user_id": user_id,
            "first_day": first_day,
            "last_day": last_day,
            "day_start": day,
            "as_of": as_of,
        },
    )
    rows: list[tuple[int, str, int]] = sorted(
        ((int(s), str(e), int(n)) for s, e, n in result), key=lambda r: (r[0], r[1])
    )
    if not rows:
        return EventFrame.empty()
    stamps = (to_datetime64(first_day), to_datetime64(day))
    return EventFrame(
        np.array([stamps[source] for source, _, _ in rows], dtype="datetime64[s]"),
        np.array([EVENT_CODES.get(e, 0) for _, e, _ in rows], dtype=int),
        np.array([n for _, _, n in rows], dtype=int),
    )


def _datetime(value: np.datetime64) -> datetime:
    """An aware UTC datetime of a ``datetime64[s]``."""
    return datetime.fromtimestamp(int(value.astype("datetime64[s]").astype("int64")), tz=UTC)
