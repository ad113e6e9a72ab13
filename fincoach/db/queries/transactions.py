"""Transaction queries, scoped to the owner."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.tables import Transaction
from fincoach.errors import NotFound


def _filtered(
    user_id: int,
    *,
    start: datetime | None,
    end: datetime | None,
    category: str | None,
    kind: str | None,
) -> Select[Any]:
    query = select(Transaction).where(Transaction.user_id == user_id)
    if start is not None:
        query = query.where(Transaction.occurred_at >= start)
    if end is not None:
        query = query.where(Transaction.occurred_at < end)
    if category is not None:
        query = query.where(Transaction.category == category)
    if kind is not None:
        query = query.where(Transaction.kind == kind)
    return query


async def list_transactions(
    session: AsyncSession,
    user_id: int,
    *,
    limit: int,
    offset: int,
    start: datetime | None = None,
    end: datetime | None = None,
    category: str | None = None,
    kind: str | None = None,
) -> tuple[list[Transaction], int]:
    """A page of transactions, newest first, and how many match in all."""
    query = _filtered(user_id, start=start, end=end, category=category, kind=kind)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(Transaction.occurred_at.desc(), Transaction.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


async def get_transaction(session: AsyncSession, user_id: int, transaction_id: int) -> Transaction:
    row = await session.scalar(
        select(Transaction).where(Transaction.id == transaction_id, Transaction.user_id == user_id)
    )
    if row is None:
        raise NotFound(f"Transaction {transaction_id} not found")
    return row


async def create_transaction(
    session: AsyncSession, user_id: int, values: dict[str, Any]
) -> Transaction:
    row = Transaction(user_id=user_id, **values)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def delete_transaction(session: AsyncSession, user_id: int, transaction_id: int) -> None:
    await session.delete(await get_transaction(session, user_id, transaction_id))
    await session.flush()
