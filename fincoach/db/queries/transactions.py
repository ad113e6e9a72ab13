"""Transactions and the wallet, scoped to the owner. Functions take ``session`` and never
commit: the caller owns the transaction.

The wallet holds the opening balance plus every transaction (credits in, debits out), and each
transaction's ``balance_after`` is that running balance in (occurred_at, id) order. Every write
moves the wallet with one conditional ``UPDATE ... RETURNING`` first: on PostgreSQL it takes the
wallet's row lock, on SQLite the database's write lock, so two parallel writes for one user run
one after the other and neither update is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ColumnElement

from fincoach.db.tables import Transaction, UserProfile, Wallet, utcnow
from fincoach.errors import BalanceOutOfRange, InsufficientFunds, NotFound
from schemas.limits import MAX_AMOUNT

# Signed amount of a row: credits add to the wallet, debits take from it.
SIGNED: ColumnElement[float] = case(
    (Transaction.transaction_type == "credit", Transaction.amount), else_=-Transaction.amount
)


def _filtered(
    user_id: int,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    category: str | None = None,
    kind: str | None = None,
    transaction_type: str | None = None,
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
    if transaction_type is not None:
        query = query.where(Transaction.transaction_type == transaction_type)
    return query


async def list_transactions(
    session: AsyncSession, user_id: int, *, limit: int, offset: int = 0, **filters: Any
) -> tuple[list[Transaction], int]:
    """A page of transactions, newest first, and how many match in all."""
    query = _filtered(user_id, **filters)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(Transaction.occurred_at.desc(), Transaction.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


async def transactions_between(
    session: AsyncSession, user_id: int, start: datetime | None, end: datetime | None = None
) -> list[Transaction]:
    """The user's transactions in ``[start, end)``, oldest first."""
    rows = await session.scalars(
        _filtered(user_id, start=start, end=end).order_by(Transaction.occurred_at, Transaction.id)
    )
    return list(rows)


async def debits_by_category(
    session: AsyncSession, user_id: int, since: datetime
) -> list[tuple[str, float, int]]:
    """(category, total, count) of the debits since ``since``, largest total first."""
    total = func.sum(Transaction.amount)
    rows = await session.execute(
        select(Transaction.category, total, func.count())
        .where(
            Transaction.user_id == user_id,
            Transaction.transaction_type == "debit",
            Transaction.occurred_at >= since,
        )
        .group_by(Transaction.category)
        .order_by(total.desc(), Transaction.category)
    )
    return [(str(c), float(t or 0), int(n)) for c, t, n in rows.all()]


async def get_transaction(session: AsyncSession, user_id: int, transaction_id: int) -> Transaction:
    row = await session.scalar(
        select(Transaction).where(Transaction.id == transaction_id, Transaction.user_id == user_id)
    )
    if row is None:
        raise NotFound(f"Transaction {transaction_id} not found")
    return row


async def get_wallet(session: AsyncSession, user_id: int) -> Wallet:
    """The user's wallet, made (at the balance their rows give) when missing."""
    wallet = await session.scalar(select(Wallet).where(Wallet.user_id == user_id))
    if wallet is None:
        wallet = Wallet(user_id=user_id, balance=await _rows_balance(session, user_id))
        session.add(wallet)
        await session.flush()
    return wallet


async def _opening_balance(session: AsyncSession, user_id: int) -> float:
    opening = await session.scalar(
        select(UserProfile.opening_balance).where(UserProfile.user_id == user_id)
    )
    return float(opening or 0.0)


async def _rows_balance(session: AsyncSession, user_id: int) -> float:
    signed_sum = await session.scalar(
        select(func.coalesce(func.sum(SIGNED), 0.0)).where(Transaction.user_id == user_id)
    )
    return round(await _opening_balance(session, user_id) + float(signed_sum or 0.0), 2)


async def move_wallet(
    session: AsyncSession, user_id: int, delta: float, *, keep_non_negative: bool = False
) -> float:
    """Add ``delta`` to the wallet in one statement and return the new balance (the wallet is
    locked from here to the caller's commit). With ``keep_non_negative``, a debit that would take
    the balance below zero is refused: InsufficientFunds."""
    stmt = (
        update(Wallet)
        .where(Wallet.user_id == user_id)
        .values(balance=Wallet.balance + delta, updated_at=utcnow())
        .returning(Wallet.balance)
    )
    if keep_non_negative and delta < 0:
        stmt = stmt.where(Wallet.balance + delta >= 0)
    balance = (await session.execute(stmt)).scalar_one_or_none()
    if balance is None:
        if await session.scalar(select(Wallet.id).where(Wallet.user_id == user_id)) is not None:
            raise InsufficientFunds("Insufficient funds")
        await get_wallet(session, user_id)  # a user from before wallets: make it, then move it
        return await move_wallet(session, user_id, delta, keep_non_negative=keep_non_negative)
    return round(float(balance), 2)


async def _balance_before(session: AsyncSession, user_id: int, at: datetime) -> float:
    """The running balance just before a new row at ``at`` (which sorts after rows at ``at``)."""
    previous = await session.scalar(
        select(Transaction.balance_after)
        .where(Transaction.user_id == user_id, Transaction.occurred_at <= at)
        .order_by(Transaction.occurred_at.desc(), Transaction.id.desc())
        .limit(1)
    )
    if previous is not None:
        return float(previous)
    return await _opening_balance(session, user_id)


async def _shift_later(session: AsyncSession, user_id: int, row: Transaction, delta: float) -> None:
    """Move ``balance_after`` of the rows after ``row`` in (occurred_at, id) order by ``delta``."""
    await session.execute(
        update(Transaction)
        .where(
            Transaction.user_id == user_id,
            (Transaction.occurred_at > row.occurred_at)
            | ((Transaction.occurred_at == row.occurred_at) & (Transaction.id > row.id)),
        )
        .values(balance_after=Transaction.balance_after + delta)
    )


def signed(amount: float, transaction_type: str) -> float:
    return amount if transaction_type == "credit" else -amount


@contextmanager
def _balances_in_range() -> Iterator[None]:
    """A balance the database's range check refuses is the client's error, not a 500."""
    try:
        yield
    except IntegrityError as exc:
        if "balance" not in str(exc.orig):
            raise
        raise BalanceOutOfRange(
            f"this would take a balance beyond +-{MAX_AMOUNT:,}: refused"
        ) from exc


async def create_transaction(
    session: AsyncSession, user_id: int, values: dict[str, Any], *, keep_non_negative: bool = False
) -> Transaction:
    """Insert a transaction and move the wallet and the balances after it."""
    delta = signed(float(values["amount"]), values["transaction_type"])
    with _balances_in_range():
        await move_wallet(session, user_id, delta, keep_non_negative=keep_non_negative)
        at: datetime = values["occurred_at"]
        before = await _balance_before(session, user_id, at)
        row = Transaction(user_id=user_id, balance_after=round(before + delta, 2), **values)
        session.add(row)
        await session.flush()
        await _shift_later(session, user_id, row, delta)
    await session.refresh(row)
    return row


async def delete_transaction(session: AsyncSession, user_id: int, transaction_id: int) -> None:
    """Delete the row, take its amount back out of the wallet and the balances after it."""
    row = await get_transaction(session, user_id, transaction_id)
    delta = -signed(float(row.amount), row.transaction_type)
    with _balances_in_range():
        await move_wallet(session, user_id, delta)
        await _shift_later(session, user_id, row, delta)
    await session.delete(row)
    await session.flush()
