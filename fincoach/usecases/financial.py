"""Financial analytics computed from the user's own rows (and segment aggregates for peers)."""

from __future__ import annotations

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.queries.features import load_snapshot
from fincoach.errors import Conflict
from fincoach.features.frames import UserSnapshot
from fincoach.features.state import (
    BEHAVIORAL_STATE_NAMES,
    LEGACY_DIM,
    enhanced_state,
    events_per_week,
    weekly_matrix,
)
from fincoach.features.vocab import CATEGORIES, SPENDING_CATEGORIES
from fincoach.usecases import segments
from fincoach.usecases.context import Context
from fincoach.usecases.predictions import SPEND_COLS
from schemas.financial import (
    PEER_METRICS,
    CategoryPreference,
    CategoryPreferencesResponse,
    CategorySpending,
    FinancialPersonalityResponse,
    MerchantTotal,
    PeerComparisonResponse,
    PeerMetric,
    PersonalityTraits,
    SegmentSummary,
    SpendingPatternsResponse,
    SpendingTiming,
    TraitName,
)

WINDOW_WEEKS = 12


def _behavioral(snapshot: UserSnapshot) -> dict[str, float]:
    state = enhanced_state(snapshot)
    return dict(
        zip(BEHAVIORAL_STATE_NAMES, map(float, state[LEGACY_DIM : LEGACY_DIM + 18]), strict=True)
    )


async def spending_patterns(session: AsyncSession, user_id: int) -> SpendingPatternsResponse:
    """Average weekly spending per category over 12 weeks, its trend, and when money is spent."""
    snapshot = await load_snapshot(session, user_id)
    weekly = weekly_matrix(snapshot, WINDOW_WEEKS)[:, SPEND_COLS]
    recent, before = weekly[-4:].mean(axis=0), weekly[:-4].mean(axis=0)
    behavioral = _behavioral(snapshot)
    return SpendingPatternsResponse(
        weeks=WINDOW_WEEKS,
        average_weekly_total=round(float(weekly.sum(axis=1).mean()), 2),
        categories=[
            CategorySpending(
                category=c,
                average_weekly=round(float(weekly[:, i].mean()), 2),
                trend=round(float((recent[i] - before[i]) / before[i]), 3)
                if before[i] > 0
                else None,
            )
            for i, c in enumerate(SPENDING_CATEGORIES)
        ],
        timing=SpendingTiming(
            weekday_spending_ratio=round(behavioral["weekday_spending_ratio"], 3),
            weekend_spending_ratio=round(behavioral["weekend_spending_ratio"], 3),
            morning_spending_ratio=round(behavioral["morning_spending_ratio"], 3),
            evening_spending_ratio=round(behavioral["evening_spending_ratio"], 3),
        ),
        volatility=round(behavioral["spending_volatility"], 3),
    )


async def category_preferences(session: AsyncSession, user_id: int) -> CategoryPreferencesResponse:
    """Spending shares by category (12 weeks), largest first, with each one's top merchants."""
    snapshot = await load_snapshot(session, user_id)
    tx = snapshot.transactions
    start = snapshot.as_of - np.timedelta64(7 * WINDOW_WEEKS, "D")
    window = (tx.occurred_at >= start) & np.isin(tx.category, SPEND_COLS)
    total = float(tx.amount[window].sum())
    out: list[CategoryPreference] = []
    for code in SPEND_COLS:
        mask = window & (tx.category == code)
        spent = float(tx.amount[mask].sum())
        if spent <= 0:
            continue
        merchants: dict[str, float] = {}
        for m, a in zip(tx.merchant[mask], tx.amount[mask], strict=True):
            merchants[str(m or "unknown")] = merchants.get(str(m or "unknown"), 0.0) + float(a)
        top = sorted(merchants.items(), key=lambda kv: -kv[1])[:3]
        out.append(
            CategoryPreference(
                category=CATEGORIES[code],
                share=round(spent / total, 4),
                total=round(spent, 2),
                top_merchants=[MerchantTotal(merchant=k, total=round(v, 2)) for k, v in top],
            )
        )
    return CategoryPreferencesResponse(
        weeks=WINDOW_WEEKS, total=round(total, 2), categories=sorted(out, key=lambda c: -c.share)
    )


async def personality(
    ctx: Context, session: AsyncSession, user_id: int
) -> FinancialPersonalityResponse:
    """Trait scores (0-1) derived from behavior, and the segment they add up to."""
    snapshot = await load_snapshot(session, user_id)
    segment, fallback = await segments.current(ctx, session, user_id, snapshot)
    await session.commit()
    f = segments.behavior_dict(snapshot)
    b = _behavioral(snapshot)
    traits: dict[TraitName, float] = {
        "saver": min(1.0, f["savings_rate"] / 0.3),
        "planner": b["budget_adherence_score"] * 0.5 + f["savings_consistency"] * 0.5,
        "impulsive": min(1.0, f["impulse_buying_score"]),
        "steady": b["spending_consistency"],
        "engaged": min(1.0, events_per_week(snapshot) / 10.0),
    }
    return FinancialPersonalityResponse(
        segment=None if segment is None else SegmentSummary.model_validate(segment),
        traits=PersonalityTraits(**{k: round(float(v), 3) for k, v in traits.items()}),
        # Ranked on the unrounded scores, as before the response had a model.
        dominant_trait=max(traits, key=lambda k: traits[k]),
        fallback=fallback,
    )


async def peer_comparison(
    ctx: Context, session: AsyncSession, user_id: int
) -> PeerComparisonResponse:
    """The user beside the average of similar users (their segment). Aggregates only, and only
    when the segment has at least MIN_PEERS other users."""
    snapshot = await load_snapshot(session, user_id)
    segment, _ = await segments.current(ctx, session, user_id, snapshot)
    await session.commit()
    peers = (
        None
        if segment is None
        else await segments.peers_average(session, segment.segment_id, user_id)
    )
    if peers is None:
        raise Conflict(f"fewer than {segments.MIN_PEERS} comparable users: no peer comparison yet")
    you = segments.behavior_dict(snapshot)
    return PeerComparisonResponse(
        peers=peers[0],
        metrics=[
            PeerMetric(metric=k, you=round(you[k], 4), peers_average=round(peers[1][k], 4))
            for k in PEER_METRICS
        ],
    )
