"""The user's financial state of the last 7 days (the legacy recommendation's
``state_summary``), a 0-100 health score, and plain-language insights from them."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.queries.features import load_snapshot
from fincoach.features.frames import UserSnapshot
from fincoach.features.state import legacy_state
from fincoach.features.vocab import CATEGORIES
from schemas.original import FinancialState, FinancialStateResponse, Insight, InsightsResponse

_SPENT = {c: 4 + i for i, c in enumerate(CATEGORIES) if c != "income"}


def from_state(state: np.ndarray) -> FinancialState:
    """The financial state from a legacy (17-dim) or enhanced state vector."""
    spent, earned = float(state[1]), float(state[2])
    return FinancialState(
        current_balance=round(float(state[0]), 2),
        weekly_spending=round(spent, 2),
        weekly_income=round(earned, 2),
        transaction_count=int(state[3]),
        savings_rate=(earned - spent) / max(earned, 1.0),
        daily_spending_avg=round(spent / 7, 2),
        category_spending={c: round(float(state[i]), 2) for c, i in _SPENT.items() if state[i] > 0},
    )


def health_score(s: FinancialState) -> float:
    """0-100: the mean of spending control, savings rate, stability (weeks of spending the
    balance covers) and daily pace against income, each 0-100 (the web client's own score)."""
    control = 100 - s.weekly_spending / max(s.weekly_income, 1.0) * 100
    savings = s.savings_rate * 100
    stability = s.current_balance / max(s.weekly_spending, 1.0) * 10
    daily_income = s.weekly_income / 7
    pace = 100 - abs(s.daily_spending_avg - daily_income) / max(daily_income, 1.0) * 100
    parts = np.clip([control, savings, stability, pace], 0, 100)
    return round(float(parts.mean()), 1)


def of_snapshot(snapshot: UserSnapshot) -> FinancialState:
    return from_state(legacy_state(snapshot))


async def financial_state(session: AsyncSession, user_id: int) -> FinancialStateResponse:
    state = of_snapshot(await load_snapshot(session, user_id))
    return FinancialStateResponse(**state.model_dump(), financial_health_score=health_score(state))


def _insights(s: FinancialState) -> list[Insight]:
    out: list[Insight] = []
    if s.daily_spending_avg > 50:
        out.append(
            Insight(
                type="spending_velocity",
                title="High Daily Spending",
                message=f"Your daily spending average is ${s.daily_spending_avg:.2f}. Consider "
                "tracking your daily expenses more closely.",
                priority="medium",
            )
        )
    if s.savings_rate < 0.1:
        out.append(
            Insight(
                type="savings_rate",
                title="Low Savings Rate",
                message=f"Your savings rate is {s.savings_rate * 100:.1f}%. Financial experts "
                "recommend saving at least 20% of income.",
                priority="high",
            )
        )
    elif s.savings_rate > 0.3:
        out.append(
            Insight(
                type="savings_rate",
                title="Excellent Savings Rate",
                message=f"Your savings rate of {s.savings_rate * 100:.1f}% is excellent! "
                "Consider investing your surplus.",
                priority="low",
            )
        )
    if s.category_spending and s.weekly_spending > 0:
        category, amount = max(s.category_spending.items(), key=lambda kv: kv[1])
        if amount > s.weekly_spending * 0.4:
            out.append(
                Insight(
                    type="category_concentration",
                    title="High Category Spending",
                    message=f"You're spending ${amount:.2f} on {category}, which is "
                    f"{amount / s.weekly_spending * 100:.1f}% of your weekly spending.",
                    priority="medium",
                )
            )
    return out


async def insights(session: AsyncSession, user_id: int) -> InsightsResponse:
    state = of_snapshot(await load_snapshot(session, user_id))
    return InsightsResponse(insights=_insights(state), generated_at=datetime.now(UTC))
