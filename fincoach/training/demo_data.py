"""Write a simulated population into the database: users, profiles, goals, transactions and a
few weeks of behavioral events. Used by `fincoach demo-data` and by `make serve` on an empty DB.

Rows go in with Core ``insert`` executemany in chunks (no ORM objects: 10^5-10^6 rows), and every
demo user shares one argon2 hash, since hashing is deliberately slow (~50 ms each).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.db.tables import BehavioralEvent, Goal, Transaction, User, UserProfile, Wallet
from fincoach.features.vocab import CATEGORIES, CATEGORY_INDEX, EVENT_TYPES
from fincoach.training.simulator import Population

DEMO_DOMAIN = "demo.fincoach.example"
DEMO_PASSWORD = "demo-password"
CHUNK = 20_000

Progress = Callable[[int], None]


def demo_email(index: int) -> str:
    return f"demo{index + 1}@{DEMO_DOMAIN}"


@dataclass(frozen=True)
class LoadReport:
    users: int
    goals: int
    transactions: int
    events: int
    seconds: float

    @property
    def rows(self) -> int:
        return self.users * 3 + self.goals + self.transactions + self.events


async def count_demo_users(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        n = await conn.scalar(
            select(func.count()).select_from(User).where(User.email.like(f"%@{DEMO_DOMAIN}"))
        )
    return int(n or 0)


async def count_users(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(User)) or 0)


async def delete_demo_users(engine: AsyncEngine) -> int:
    """Remove every demo user; their rows go with them (ON DELETE CASCADE)."""
    async with engine.begin() as conn:
        result = await conn.execute(delete(User).where(User.email.like(f"%@{DEMO_DOMAIN}")))
    return int(result.rowcount or 0)


def _chunks(rows: list[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _event_rows(population: Population, user_ids: list[int]) -> list[dict[str, Any]]:
    """The last four weeks of the simulated app usage (older events add rows, not signal)."""
    events = population.events
    if events is None:
        return []
    end = np.datetime64(population.end, "s")
    recent = np.nonzero(events.timestamp >= end - np.timedelta64(28, "D"))[0]
    rng = np.random.default_rng(population.config.seed)
    stamps = events.timestamp[recent].astype("datetime64[us]").astype(datetime)
    return [
        {
            "event_id": str(uuid.UUID(bytes=rng.bytes(16), version=4)),
            "user_id": user_ids[int(events.user[i])],
            "event_type": EVENT_TYPES[int(events.event_type[i])],
            "event_data": {"source": "demo"},
            "timestamp": stamp.replace(tzinfo=UTC),
        }
        for i, stamp in zip(recent, stamps, strict=True)
    ]


def running_balances(
    users: np.ndarray,
    occurred_at: np.ndarray,
    amounts: np.ndarray,
    credit: np.ndarray,
    opening: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(balance after each row, final balance per user): each user's opening balance plus their
    signed amounts in (occurred_at, row) order, as the wallet keeps them."""
    n = len(users)
    order = np.lexsort((np.arange(n), occurred_at, users))
    signed = np.where(credit, amounts, -amounts)[order]
    sorted_users = users[order]
    cumulative = np.cumsum(signed)
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1] if n else np.array([], int)
    base = np.zeros(n)
    if n:
        before_start = np.r_[0.0, cumulative][starts]
        base = np.repeat(before_start, np.diff(np.r_[starts, n]))
    after = np.empty(n)
    after[order] = np.round(opening[sorted_users] + cumulative - base, 2)
    final = opening.astype(float).copy()
    if n:
        last = np.r_[starts[1:] - 1, n - 1]
        final[sorted_users[last]] = after[order][last]
    return after, np.round(final, 2)


async def load_population(
    engine: AsyncEngine,
    population: Population,
    *,
    hashed_password: str,
    progress: Progress | None = None,
) -> LoadReport:
    """Insert the population in one transaction: all of it is there, or none of it."""
    started = datetime.now(UTC)
    tick = progress or (lambda _n: None)
    txs = population.transactions
    async with engine.begin() as conn:
        await conn.execute(
            insert(User),
            [
                {
                    "email": demo_email(u.index),
                    "hashed_password": hashed_password,
                    "first_name": u.full_name.split(" ", 1)[0],
                    "last_name": u.full_name.split(" ", 1)[1] if " " in u.full_name else "",
                }
                for u in population.users
            ],
        )
        emails = [demo_email(u.index) for u in population.users]
        id_by_email = dict(
            (await conn.execute(select(User.email, User.id).where(User.email.in_(emails)))).all()
        )
        user_ids = [id_by_email[e] for e in emails]
        tick(len(user_ids))
        await conn.execute(
            insert(UserProfile),
            [
                {
                    "user_id": uid,
                    "monthly_income": round(u.weekly_income * 52 / 12, 2),
                    "opening_balance": u.opening_balance,
                    "currency": "USD",
                    "risk_tolerance": u.risk_tolerance,
                    "monthly_budget": u.monthly_budget,
                }
                for u, uid in zip(population.users, user_ids, strict=True)
            ],
        )
        tick(len(user_ids))
        goal_rows = [
            {
                "user_id": user_ids[g.user],
                "name": g.name,
                "target_amount": g.target_amount,
                "current_amount": g.current_amount,
                "target_date": population.week_start(g.target_week),
                "status": g.status,
            }
            for g in population.goals
        ]
        await conn.execute(insert(Goal), goal_rows)
        tick(len(goal_rows))

        ids = np.asarray(user_ids)[txs.user]
        occurred = txs.occurred_at.astype("datetime64[us]").astype(datetime)
        categories = np.asarray(CATEGORIES, dtype=object)[txs.category]
        amounts = txs.amount.tolist()
        credit = txs.category == CATEGORY_INDEX["income"]
        opening = np.array([u.opening_balance for u in population.users])
        after, final = running_balances(txs.user, txs.occurred_at, txs.amount, credit, opening)
        for start in range(0, len(txs), CHUNK):
            stop = min(start + CHUNK, len(txs))
            await conn.execute(
                insert(Transaction),
                [
                    {
                        "user_id": int(ids[i]),
                        "amount": amounts[i],
                        "transaction_type": "credit" if credit[i] else "debit",
                        "category": categories[i],
                        "merchant": txs.merchant[i],
                        "description": txs.merchant[i],
                        "kind": txs.kind[i],
                        "balance_after": float(after[i]),
                        "occurred_at": occurred[i].replace(tzinfo=UTC),
                    }
                    for i in range(start, stop)
                ],
            )
            tick(stop - start)

        await conn.execute(
            insert(Wallet),
            [
                {"user_id": uid, "balance": float(final[position])}
                for position, uid in enumerate(user_ids)
            ],
        )
        tick(len(user_ids))
        events = _event_rows(population, user_ids)
        for chunk in _chunks(events):
            await conn.execute(insert(BehavioralEvent), chunk)
            tick(len(chunk))
    return LoadReport(
        users=len(user_ids),
        goals=len(goal_rows),
        transactions=len(txs),
        events=len(events),
        seconds=(datetime.now(UTC) - started).total_seconds(),
    )


def total_rows(population: Population) -> int:
    """Rows `load_population` will write before events (for a progress bar's total)."""
    return 3 * len(population.users) + len(population.goals) + len(population.transactions)
