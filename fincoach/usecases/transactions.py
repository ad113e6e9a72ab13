"""Transactions and the wallet: one implementation behind ``/transactions`` (this backend's
form: a positive amount and a kind) and ``/financial/transactions`` (the original FinCoach
form: a signed amount, description, merchant and location, the balance after). Every write moves
the wallet in the same database transaction and is committed before the answer; then the
predictions it makes stale are dropped from the cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.cache.predictions import ON_TRANSACTION
from fincoach.db.queries import transactions as rows
from fincoach.db.tables import Transaction, Wallet
from fincoach.features.vocab import CATEGORIES
from fincoach.usecases import quotas
from fincoach.usecases.context import Context

DIRECTION_OF_KIND = {"income": "credit", "expense": "debit", "transfer": "debit"}


async def add(
    ctx: Context,
    session: AsyncSession,
    user_id: int,
    values: dict[str, Any],
    *,
    keep_non_negative: bool = False,
) -> Transaction:
    """Store a transaction (positive ``amount``; ``transaction_type`` or else ``kind`` gives the
    direction), move the wallet, commit, and drop the user's stale predictions."""
    async with quotas.user_lock("transaction", user_id):
        await quotas.check_transaction(session, ctx.settings, user_id)
        direction = (
            values.get("transaction_type") or DIRECTION_OF_KIND[values.get("kind", "expense")]
        )
        kind = values.get("kind") or ("income" if direction == "credit" else "expense")
        row = await rows.create_transaction(
            session,
            user_id,
            {
                **values,
                "transaction_type": direction,
                "kind": kind,
                "occurred_at": values.get("occurred_at") or datetime.now(UTC),
            },
            keep_non_negative=keep_non_negative,
        )
        await session.commit()
    await ctx.predictions.invalidate(user_id, ON_TRANSACTION)
    return row


async def add_signed(
    ctx: Context, session: AsyncSession, user_id: int, values: dict[str, Any]
) -> Transaction:
    """The original API's transaction: the sign of ``amount`` is the direction, and a debit
    the wallet cannot cover is refused (InsufficientFunds)."""
    amount = float(values["amount"])
    credit = amount > 0
    return await add(
        ctx,
        session,
        user_id,
        {
            "amount": abs(amount),
            "transaction_type": "credit" if credit else "debit",
            "kind": "income" if credit else "expense",
            "category": values["category"],
            "description": values["description"],
            "merchant": values.get("merchant_name"),
            "location_city": values.get("location_city"),
            "location_country": values.get("location_country") or "US",
        },
        keep_non_negative=True,
    )


async def delete(ctx: Context, session: AsyncSession, user_id: int, transaction_id: int) -> None:
    await rows.delete_transaction(session, user_id, transaction_id)
    await session.commit()
    await ctx.predictions.invalidate(user_id, ON_TRANSACTION)


async def page(
    session: AsyncSession, user_id: int, *, limit: int, offset: int = 0, **filters: Any
) -> tuple[list[Transaction], int]:
    """A page of the user's transactions, newest first, and how many match in all."""
    return await rows.list_transactions(session, user_id, limit=limit, offset=offset, **filters)


async def recent(
    session: AsyncSession,
    user_id: int,
    *,
    limit: int,
    days: int | None = None,
    category: str | None = None,
    transaction_type: str | None = None,
) -> list[Transaction]:
    """The original API's list: newest first, optionally of the last ``days`` days."""
    start = datetime.now(UTC) - timedelta(days=days) if days else None
    found, _ = await rows.list_transactions(
        session,
        user_id,
        limit=limit,
        start=start,
        category=category,
        transaction_type=transaction_type,
    )
    return found


async def get(session: AsyncSession, user_id: int, transaction_id: int) -> Transaction:
    return await rows.get_transaction(session, user_id, transaction_id)


async def wallet(session: AsyncSession, user_id: int) -> Wallet:
    """The user's wallet (made, and committed, for a user from before wallets)."""
    found = await rows.get_wallet(session, user_id)
    await session.commit()
    return found


async def spending_by_category(
    session: AsyncSession, user_id: int, days: int
) -> list[dict[str, Any]]:
    """Debits of the last ``days`` days per category, largest first, with their share (%)."""
    since = datetime.now(UTC) - timedelta(days=days)
    found = await rows.debits_by_category(session, user_id, since)
    total = sum(t for _, t, _ in found)
    return [
        {
            "category": category,
            "total_amount": amount,
            "transaction_count": count,
            "percentage": amount / total * 100 if total > 0 else 0.0,
        }
        for category, amount, count in found
    ]


def week_totals(found: list[Transaction]) -> tuple[float, float]:
    """(debits, credits) of the rows."""
    spent = sum(r.amount for r in found if r.transaction_type == "debit")
    earned = sum(r.amount for r in found if r.transaction_type == "credit")
    return round(spent, 2), round(earned, 2)


async def health_summary(session: AsyncSession, user_id: int) -> dict[str, Any]:
    """The original API's financial health summary of the last 7 days."""
    balance = (await wallet(session, user_id)).balance
    week = await rows.transactions_between(session, user_id, datetime.now(UTC) - timedelta(days=7))
    spent, earned = week_totals(week)
    return {
        "current_balance": balance,
        "weekly_spending": spent,
        "weekly_income": earned,
        "transaction_count": len(week),
        "savings_rate": (earned - spent) / max(earned, 1.0),
        "daily_spending_avg": spent / 7,
        "top_spending_categories": (await spending_by_category(session, user_id, 7))[:5],
    }


async def balance_history(session: AsyncSession, user_id: int, days: int) -> list[dict[str, Any]]:
    """The balance after each transaction of the last ``days`` days, oldest first."""
    since = datetime.now(UTC) - timedelta(days=days)
    return [
        {
            "date": r.occurred_at.isoformat(),
            "balance": r.balance_after,
            "transaction_type": r.transaction_type,
            "amount": r.amount,
        }
        for r in await rows.transactions_between(session, user_id, since)
    ]


async def monthly_summary(
    session: AsyncSession, user_id: int, year: int, month: int
) -> dict[str, Any]:
    """Income, spending and their difference in one calendar month (UTC)."""
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    found = await rows.transactions_between(session, user_id, start, end)
    spent, earned = week_totals(found)
    return {
        "month": month,
        "year": year,
        "total_income": earned,
        "total_spending": spent,
        "net_change": round(earned - spent, 2),
        "transaction_count": len(found),
        "average_transaction": sum(r.amount for r in found) / len(found) if found else 0.0,
    }


def categories() -> list[dict[str, str]]:
    """Every category with a label and a description (the original API's list)."""
    return [
        {
            "value": c,
            "label": c.replace("_", " ").title(),
            "description": f"Transactions related to {c.replace('_', ' ')}",
        }
        for c in CATEGORIES
    ]
