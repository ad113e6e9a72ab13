"""The online feature store: the triggers keep the per-user aggregates equal to a recount of
the rows through every kind of write (the API's, bulk loads, updates, deletes, an account's
deletion), on both databases; a rebuild repairs aggregates that drifted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.db.feature_store import missing_triggers, rebuild
from fincoach.db.tables import BehavioralEvent, EventDay, LedgerDay, LedgerTotal, Transaction
from fincoach.training.demo_data import load_population
from fincoach.training.simulator import SimConfig, simulate


async def _differing(engine: AsyncEngine) -> list[int]:
    return (await rebuild(engine, check_only=True)).differing_users


async def _register(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    body = {"email": email, "password": "correct horse 9", "full_name": "Store Test"}
    assert (await client.post("/auth/register", json=body)).status_code == 201
    token = (
        await client.post("/auth/token", data={"username": email, "password": "correct horse 9"})
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def test_writes_through_the_api_keep_the_aggregates(
    client: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    headers = await _register(client, "store@example.com")
    now = datetime.now(UTC)
    for i, (amount, category, kind) in enumerate(
        (
            (42.5, "groceries", "expense"),
            (1200, "income", "income"),
            (9.99, "entertainment", "expense"),
            (60, "groceries", "expense"),
        )
    ):
        at = (now - timedelta(days=i, hours=3)).isoformat()
        answer = await client.post(
            "/transactions",
            json={"amount": amount, "category": category, "kind": kind, "occurred_at": at},
            headers=headers,
        )
        assert answer.status_code == 201, answer.text
    for i in range(3):
        answer = await client.post(
            "/events",
            json={"event_type": "goal_modification", "event_id": f"store-{i}", "event_data": {}},
            headers=headers,
        )
        assert answer.status_code == 202, answer.text
    async with clean_engine.connect() as conn:
        total = await conn.scalar(select(LedgerTotal.signed_total))
        days = await conn.scalar(select(func.sum(LedgerDay.n)))
    assert total == 1200 - 42.5 - 9.99 - 60 and days == 4
    assert await _differing(clean_engine) == []

    # Legacy wallet writes, and the account's deletion, go through the same triggers.
    legacy = await client.post(
        "/financial/transactions",
        json={"amount": -15.25, "category": "transport", "description": "Bus"},
        headers=headers,
    )
    assert legacy.status_code in (200, 201), legacy.text
    assert await _differing(clean_engine) == []
    assert (await client.delete("/auth/account", headers=headers)).status_code in (200, 204)
    async with clean_engine.connect() as conn:
        for table in (LedgerDay, LedgerTotal, EventDay):
            assert await conn.scalar(select(func.count()).select_from(table)) == 0


async def test_bulk_loads_updates_and_deletes_keep_the_aggregates(
    clean_engine: AsyncEngine,
) -> None:
    population = simulate(SimConfig(n_users=4, n_weeks=10, seed=21))
    await load_population(clean_engine, population, hashed_password="x")
    assert await _differing(clean_engine) == []
    async with clean_engine.begin() as conn:
        rows = (
            await conn.execute(
                select(Transaction.id, Transaction.occurred_at).order_by(Transaction.id)
            )
        ).all()
        ids = [row_id for row_id, _ in rows]
        # Moved to another day and category, amount changed, direction flipped; some deleted.
        for row_id, at in rows[::7]:
            await conn.execute(
                update(Transaction)
                .where(Transaction.id == row_id)
                .values(
                    occurred_at=at - timedelta(days=1, hours=13),
                    amount=Transaction.amount + 1,
                    category="shopping",
                )
            )
        await conn.execute(
            update(Transaction)
            .where(Transaction.id.in_(ids[3::11]))
            .values(transaction_type="credit")
        )
        await conn.execute(update(Transaction).values(balance_after=0))  # not a feature column
        await conn.execute(delete(Transaction).where(Transaction.id.in_(ids[5::9])))
        await conn.execute(
            delete(BehavioralEvent).where(
                BehavioralEvent.id.in_(select(BehavioralEvent.id).limit(10))
            )
        )
    assert await _differing(clean_engine) == []


async def test_rebuild_repairs_aggregates_that_drifted(clean_engine: AsyncEngine) -> None:
    population = simulate(SimConfig(n_users=3, n_weeks=6, seed=22))
    await load_population(clean_engine, population, hashed_password="x")
    async with clean_engine.begin() as conn:
        assert await missing_triggers(conn) == []
        user = await conn.scalar(select(func.min(LedgerDay.user_id)))
        await conn.execute(update(LedgerDay).where(LedgerDay.user_id == user).values(n=99))
        await conn.execute(delete(EventDay))
    stale = await _differing(clean_engine)
    assert user in stale and len(stale) == 3  # every user had events
    report = await rebuild(clean_engine)
    assert report.users == 3 and sorted(report.differing_users) == sorted(stale)
    assert await _differing(clean_engine) == []
    async with clean_engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM event_days")) > 0
