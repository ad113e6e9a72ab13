"""The wallet: its balance is the opening balance plus every transaction, each transaction's
balance_after is the running balance in time order, whichever route wrote it, and parallel
writes for one user never lose an update (PostgreSQL row lock, SQLite's single writer)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.db.tables import Transaction, Wallet
from tests.conftest import load_recent_users, register


async def _ledger(
    engine: AsyncEngine, user_id: int
) -> tuple[float, list[tuple[str, float, float]]]:
    """(wallet balance, [(type, amount, balance_after)] in time order)."""
    async with engine.connect() as conn:
        balance = await conn.scalar(select(Wallet.balance).where(Wallet.user_id == user_id))
        rows = (
            await conn.execute(
                select(Transaction.transaction_type, Transaction.amount, Transaction.balance_after)
                .where(Transaction.user_id == user_id)
                .order_by(Transaction.occurred_at, Transaction.id)
            )
        ).all()
    assert balance is not None
    return float(balance), [(t, float(a), float(b)) for t, a, b in rows]


def _consistent(opening: float, balance: float, rows: list[tuple[str, float, float]]) -> None:
    running = opening
    for kind, amount, after in rows:
        running = round(running + (amount if kind == "credit" else -amount), 2)
        assert after == running, (kind, amount, after, running)
    assert balance == running


async def test_both_routes_keep_one_consistent_ledger(client, clean_engine) -> None:
    h = await register(client, "ledger@example.com")
    user_id = (await client.get("/users/me", headers=h)).json()["id"]
    now = datetime.now(UTC)
    assert (await client.get("/financial/wallet", headers=h)).json()["balance"] == 1000.0
    r = await client.post(
        "/financial/transactions",
        headers=h,
        json={"amount": -40, "category": "groceries", "description": "Food"},
    )
    assert r.json()["balance_after"] == 960.0 and r.json()["transaction_type"] == "debit"
    r = await client.post(
        "/transactions", headers=h, json={"amount": 300, "category": "income", "kind": "income"}
    )
    assert r.json()["transaction_type"] == "credit" and r.json()["balance_after"] == 1260.0
    # A back-dated expense goes in its place in time: the balances after it move.
    past = (now - timedelta(days=3)).isoformat()
    r = await client.post(
        "/transactions",
        headers=h,
        json={"amount": 100, "category": "bills", "occurred_at": past},
    )
    assert r.status_code == 201 and r.json()["balance_after"] == 900.0
    backdated = r.json()["id"]
    balance, rows = await _ledger(clean_engine, user_id)
    assert balance == 1160.0
    _consistent(1000.0, balance, rows)
    # Deleting a transaction takes it back out of the wallet and of the balances after it.
    r = await client.delete(f"/financial/transactions/{backdated}", headers=h)
    assert r.status_code == 204
    balance, rows = await _ledger(clean_engine, user_id)
    assert balance == 1260.0
    _consistent(1000.0, balance, rows)
    # The original route refuses a debit the wallet cannot cover; this backend's does not.
    r = await client.post(
        "/financial/transactions",
        headers=h,
        json={"amount": -5000, "category": "shopping", "description": "TV"},
    )
    assert r.status_code == 400 and r.json()["detail"] == "Insufficient funds"
    r = await client.post("/transactions", headers=h, json={"amount": 5000, "category": "shopping"})
    assert r.status_code == 201 and r.json()["balance_after"] == -3740.0


async def test_parallel_writes_lose_no_update(client, clean_engine) -> None:
    h = await register(client, "parallel@example.com")
    user_id = (await client.get("/users/me", headers=h)).json()["id"]

    async def spend(i: int) -> int:
        r = await client.post(
            "/financial/transactions",
            headers=h,
            json={"amount": -(1 + i % 7), "category": "dine_out", "description": f"#{i}"},
        )
        return r.status_code

    async def earn(i: int) -> int:
        r = await client.post(
            "/transactions",
            headers=h,
            json={"amount": 2 + i % 3, "category": "income", "kind": "income"},
        )
        return r.status_code

    statuses = await asyncio.gather(*(spend(i) for i in range(24)), *(earn(i) for i in range(8)))
    assert set(statuses) == {201}, statuses
    spent = sum(1 + i % 7 for i in range(24))
    earned = sum(2 + i % 3 for i in range(8))
    balance, rows = await _ledger(clean_engine, user_id)
    assert len(rows) == 32
    assert balance == 1000.0 - spent + earned
    _consistent(1000.0, balance, rows)
    wallet = (await client.get("/financial/wallet", headers=h)).json()
    assert float(wallet["balance"]) == balance


async def test_demo_users_have_a_consistent_wallet_and_recent_transactions(
    client, clean_engine, settings
) -> None:
    from fincoach.db.tables import UserProfile

    await load_recent_users(clean_engine, settings, users=5, weeks=8, seed=12)
    async with clean_engine.connect() as conn:
        openings = dict(
            (await conn.execute(select(UserProfile.user_id, UserProfile.opening_balance))).all()
        )
    for user_id, opening in openings.items():
        balance, rows = await _ledger(clean_engine, user_id)
        assert rows, "every demo user has transactions"
        _consistent(float(opening), balance, rows)
    token = await client.post(
        "/auth/login", json={"email": "demo1@demo.fincoach.example", "password": "demo-password"}
    )
    h = {"Authorization": f"Bearer {token.json()['access_token']}"}
    recent = (await client.get("/financial/transactions", params={"limit": 5}, headers=h)).json()
    assert len(recent) == 5
    newest = datetime.fromisoformat(recent[0]["transaction_date"])
    assert datetime.now(UTC) - newest < timedelta(days=8), "the dashboard shows recent activity"
