"""Reading what the feature functions need for one user: the last year of transactions, the
last month of events, profile, goals and the last recommended action. Older transactions are
folded into the opening balance by one aggregate, so the balance is right without loading them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.queries.users import get_profile
from db.tables import BehavioralEvent, Goal, RecommendationHistory, Transaction
from features.frames import EventFrame, GoalRow, Profile, TransactionFrame, UserSnapshot
from features.vocab import ACTIONS

HISTORY_WEEKS = 52


async def load_snapshot(
    session: AsyncSession, user_id: int, *, as_of: datetime | None = None
) -> UserSnapshot:
    as_of = as_of or datetime.now(UTC)
    window_start = as_of - timedelta(weeks=HISTORY_WEEKS)
    profile = await get_profile(session, user_id)
    signed = case((Transaction.category == "income", Transaction.amount), else_=-Transaction.amount)
    older = await session.scalar(
        select(func.coalesce(func.sum(signed), 0.0)).where(
            Transaction.user_id == user_id, Transaction.occurred_at < window_start
        )
    )
    rows = await session.execute(
        select(
            Transaction.occurred_at, Transaction.amount, Transaction.category, Transaction.merchant
        )
        .where(
            Transaction.user_id == user_id,
            Transaction.occurred_at >= window_start,
            Transaction.occurred_at < as_of,
        )
        .order_by(Transaction.occurred_at)
    )
    events = await session.execute(
        select(BehavioralEvent.timestamp, BehavioralEvent.event_type).where(
            BehavioralEvent.user_id == user_id,
            BehavioralEvent.timestamp >= as_of - timedelta(days=28),
            BehavioralEvent.timestamp < as_of,
        )
    )
    goals = await session.scalars(select(Goal).where(Goal.user_id == user_id))
    last_action = await session.scalar(
        select(RecommendationHistory.action_id)
        .where(RecommendationHistory.user_id == user_id)
        .order_by(RecommendationHistory.created_at.desc(), RecommendationHistory.id.desc())
        .limit(1)
    )
    return UserSnapshot(
        as_of=np.datetime64(as_of.astimezone(UTC).replace(tzinfo=None), "s"),
        transactions=TransactionFrame.from_rows(
            (r.occurred_at, float(r.amount), r.category, r.merchant) for r in rows
        ),
        events=EventFrame.from_rows((r.timestamp, r.event_type) for r in events),
        profile=Profile(
            opening_balance=float(profile.opening_balance) + float(older or 0.0),
            monthly_income=float(profile.monthly_income),
            monthly_budget=float(profile.monthly_budget) if profile.monthly_budget else None,
        ),
        goals=tuple(
            GoalRow(float(g.target_amount), float(g.current_amount), g.target_date, g.status)
            for g in goals
        ),
        last_action=last_action if last_action is not None and last_action < len(ACTIONS) else None,
    )
