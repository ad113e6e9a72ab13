"""A heavy user for the request-path benchmarks: the real account's transactions (about three
years, ../shared/fincoach-original/dataset) moved to end yesterday, and 10,000 app events
spread over the same years (about nine a day; ``--recent-events`` puts them all in the last 28
days instead). Written straight into the database, with a wallet and balances as the API keeps
them, so the user signs in like any other.

Usage: .venv/bin/python bench/heavy_user.py --database-url URL [--email E] [--password P]
       [--events 10000] [--recent-events] [--csv PATH]
Prints the user's id, transaction and event counts as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from fincoach.config import Settings  # noqa: E402
from fincoach.db.engine import make_engine  # noqa: E402
from fincoach.db.migrate import upgrade  # noqa: E402
from fincoach.db.tables import (  # noqa: E402
    BehavioralEvent,
    Transaction,
    User,
    UserProfile,
    Wallet,
)
from fincoach.features.vocab import EVENT_TYPES  # noqa: E402
from fincoach.training.demo_data import running_balances  # noqa: E402
from fincoach.training.real_data import load_history, to_datetime  # noqa: E402
from fincoach.usecases.passwords import hash_password  # noqa: E402

REAL_CSV = ROOT.parent / "shared/fincoach-original/dataset/anonymized_original_with_category.csv"
OPENING = 1000.0
CHUNK = 2000


async def write_heavy_user(
    url: str, email: str, password: str, csv: Path, n_events: int, recent_events: bool
) -> dict[str, int]:
    history = load_history(csv)
    now = np.datetime64(datetime.now(UTC).replace(tzinfo=None), "s")
    shift = (now - np.timedelta64(1, "D")) - history.occurred_at[-1]
    occurred = history.occurred_at + shift
    credit = history.category == "income"
    after, final = running_balances(
        np.zeros(len(history), dtype=int), occurred, history.amount, credit, np.array([OPENING])
    )
    rng = np.random.default_rng(13)
    span = np.timedelta64(28, "D") if recent_events else now - occurred[0]
    offsets = np.sort(rng.integers(1, int(span / np.timedelta64(1, "s")), size=n_events))
    stamps = now - offsets.astype("timedelta64[s]")

    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            user_id = (
                await conn.execute(
                    insert(User)
                    .values(
                        email=email,
                        hashed_password=hash_password(password, Settings()),
                        first_name="Heavy",
                        last_name="User",
                    )
                    .returning(User.id)
                )
            ).scalar_one()
            await conn.execute(
                insert(UserProfile).values(
                    user_id=user_id, monthly_income=2500.0, opening_balance=OPENING
                )
            )
            await conn.execute(insert(Wallet).values(user_id=user_id, balance=float(final[0])))
            rows = [
                {
                    "user_id": user_id,
                    "amount": round(float(history.amount[i]), 2),
                    "transaction_type": "credit" if credit[i] else "debit",
                    "category": str(history.category[i]),
                    "merchant": history.merchant[i],
                    "description": history.merchant[i],
                    "kind": "income" if credit[i] else "expense",
                    "balance_after": float(after[i]),
                    "occurred_at": to_datetime(occurred[i]),
                }
                for i in range(len(history))
            ]
            for start in range(0, len(rows), CHUNK):
                await conn.execute(insert(Transaction), rows[start : start + CHUNK])
            events = [
                {
                    "event_id": str(uuid.UUID(bytes=rng.bytes(16), version=4)),
                    "user_id": user_id,
                    "event_type": EVENT_TYPES[i % len(EVENT_TYPES)],
                    "event_data": {"source": "bench"},
                    "timestamp": to_datetime(stamp),
                }
                for i, stamp in enumerate(stamps)
            ]
            for start in range(0, len(events), CHUNK):
                await conn.execute(insert(BehavioralEvent), events[start : start + CHUNK])
    finally:
        await engine.dispose()
    return {"user_id": int(user_id), "transactions": len(rows), "events": len(events)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="SQLAlchemy async URL")
    parser.add_argument("--email", default="heavy@bench.fincoach.example")
    parser.add_argument("--password", default="demo-password")
    parser.add_argument("--csv", type=Path, default=REAL_CSV, help="the real account's CSV")
    parser.add_argument("--events", type=int, default=10_000, help="app events to write")
    parser.add_argument(
        "--recent-events", action="store_true", help="all events in the last 28 days"
    )
    args = parser.parse_args()
    out = asyncio.run(
        write_heavy_user(
            args.database_url, args.email, args.password, args.csv, args.events, args.recent_events
        )
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
