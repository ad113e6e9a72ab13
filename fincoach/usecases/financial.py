"""Financial analytics computed from the user's own rows (and segment aggregates for peers)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.queries.features import load_snapshot
from fincoach.features.frames import UserSnapshot
from fincoach.features.state import (
    BEHAVIORAL_STATE_NAMES,
    LEGACY_DIM,
    enhanced_state,
    events_per_week,
    legacy_state,
    weekly_matrix,
)
from fincoach.features.vocab import CATEGORIES, SPENDING_CATEGORIES
from fincoach.usecases import events, segments, transactions
from fincoach.usecases.context import Context
from fincoach.usecases.predictions import SPEND_COLS
from schemas.financial import (
    PEER_METRICS,
    CategoryInsight,
    CategoryPreference,
    CategoryPreferencesResponse,
    CategorySpending,
    FinancialPersonalityResponse,
    MerchantTotal,
    PeerComparison,
    PeerComparisonResponse,
    PeerMetric,
    PersonalityTrait,
    PersonalityTraits,
    SegmentSummary,
    SpendingPatternsResponse,
    SpendingTiming,
    TraitName,
)
from schemas.wallet import SpendingAnalytics

WINDOW_WEEKS = 12
# The original API's analysis window.
ORIGINAL_DAYS = 30
# A coefficient of variation of weekly spending above this is variable spending.
VARIABLE_SPENDER_CV = 0.5


def _behavioral(snapshot: UserSnapshot) -> dict[str, float]:
    state = enhanced_state(snapshot)
    return dict(
        zip(BEHAVIORAL_STATE_NAMES, map(float, state[LEGACY_DIM : LEGACY_DIM + 18]), strict=True)
    )


async def spending_patterns(
    session: AsyncSession, user_id: int, days: int = 30
) -> SpendingPatternsResponse:
    """Average weekly spending per category over 12 weeks, its trend, and when money is spent;
    the last ``days`` days' spending by category and app activity (the original API's)."""
    snapshot = await load_snapshot(session, user_id)
    activity = await events.aggregate(session, user_id, days)
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
        period_days=days,
        behavioral_data=activity,
        spending_analytics=[
            SpendingAnalytics.model_validate(a)
            for a in await transactions.spending_by_category(session, user_id, days)
        ],
        engagement_score=activity.engagement_score,
        behavior_diversity=activity.behavior_diversity,
        generated_at=activity.generated_at,
    )


async def category_preferences(session: AsyncSession, user_id: int) -> CategoryPreferencesResponse:
    """Spending shares by category (12 weeks), largest first, with each one's top merchants."""
    snapshot = await load_snapshot(session, user_id, raw_weeks=WINDOW_WEEKS, weeks=WINDOW_WEEKS)
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
    ranked = await _category_insights(session, user_id)
    return CategoryPreferencesResponse(
        weeks=WINDOW_WEEKS,
        total=round(total, 2),
        categories=sorted(out, key=lambda c: -c.share),
        category_preferences=ranked,
        top_category=ranked[0] if ranked else None,
        behavioral_data=await events.aggregate(session, user_id, ORIGINAL_DAYS),
        analysis_period_days=ORIGINAL_DAYS,
    )


async def _category_insights(session: AsyncSession, user_id: int) -> list[CategoryInsight]:
    """The original API's category ranking: debits of the last 30 days per category."""
    found = await transactions.spending_by_category(session, user_id, ORIGINAL_DAYS)
    return [
        CategoryInsight(
            category=a["category"],
            total_amount=a["total_amount"],
            transaction_count=a["transaction_count"],
            average_amount=a["total_amount"] / max(a["transaction_count"], 1),
            percentage_of_spending=round(a["percentage"], 2),
            behavioral_score=0.0,
        )
        for a in found
    ]


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
    metrics = {
        "spending_volatility": f["spending_volatility"],
        "impulse_buying_score": f["impulse_buying_score"],
        "category_diversity": b["category_diversity"],
        "savings_rate": f["savings_rate"],
        "financial_stress_indicator": b["financial_stress_indicator"],
    }
    return FinancialPersonalityResponse(
        segment=None if segment is None else SegmentSummary.model_validate(segment),
        traits=PersonalityTraits(**{k: round(float(v), 3) for k, v in traits.items()}),
        # Ranked on the unrounded scores, as before the response had a model.
        dominant_trait=max(traits, key=lambda k: traits[k]),
        fallback=fallback,
        user_id=str(user_id),
        segment_info=None if segment is None else segments.segment_info(segment),
        personality_traits=_named_traits(metrics),
        financial_metrics={k: round(float(v), 4) for k, v in metrics.items()},
        behavioral_summary=await events.aggregate(session, user_id, ORIGINAL_DAYS),
        generated_at=datetime.now(UTC).isoformat(),
    )


# The original API's traits named when a feature passes a threshold: (feature, threshold, score
# gain, trait, description); the score is min(1, feature x gain).
_THRESHOLD_TRAITS: tuple[tuple[str, float, float, str, str], ...] = (
    (
        "impulse_buying_score",
        0.3,
        1.0,
        "Impulse Buyer",
        "You tend to make quick purchasing decisions",
    ),
    (
        "category_diversity",
        0.7,
        1.0,
        "Diverse Spender",
        "You spend across many different categories",
    ),
    (
        "savings_rate",
        0.2,
        2.0,
        "Disciplined Saver",
        "You consistently save a good portion of your income",
    ),
)


def _named_traits(m: dict[str, float]) -> list[PersonalityTrait]:
    """The original API's named traits, from scale-free features (volatility is a coefficient
    of variation of weekly spending)."""
    volatile = m["spending_volatility"] > VARIABLE_SPENDER_CV
    out = [
        PersonalityTrait(
            trait="Variable Spender" if volatile else "Consistent Spender",
            description="Your spending varies significantly from week to week"
            if volatile
            else "You maintain steady spending patterns",
            score=round(
                min(1.0, m["spending_volatility"])
                if volatile
                else max(0.3, 1.0 - m["spending_volatility"] / VARIABLE_SPENDER_CV),
                3,
            ),
        )
    ]
    out.extend(
        PersonalityTrait(
            trait=trait, description=description, score=round(min(1.0, m[metric] * gain), 3)
        )
        for metric, threshold, gain, trait, description in _THRESHOLD_TRAITS
        if m[metric] > threshold
    )
    return out


async def peer_comparison(
    ctx: Context, session: AsyncSession, user_id: int
) -> PeerComparisonResponse:
    """The user beside the average of similar users (their segment): the published peer
    snapshot only (segments.publish_peer_snapshot), else a message and no comparison."""
    snapshot = await load_snapshot(session, user_id)
    segment, _ = await segments.current(ctx, session, user_id, snapshot)
    await session.commit()
    peers = (
        None
        if segment is None
        else await segments.peers_average(session, segment.segment_id, user_id)
    )
    info = None if segment is None else segments.segment_info(segment)
    if segment is None or peers is None:
        return PeerComparisonResponse(
            message=f"No peer data available for comparison: fewer than {segments.MIN_PEERS} "
            "comparable users",
            peers=0,
            metrics=[],
            segment_info=info,
            comparison=None,
            insights=[],
        )
    you = segments.behavior_dict(snapshot)
    balance = float(legacy_state(snapshot)[0])
    averages = await segments.peer_averages(session, segment.segment_id, user_id, peers[1])
    below = await segments.balance_percentile(session, segment.segment_id, balance)
    comparison = PeerComparison(
        user_metrics={
            "current_balance": round(balance, 2),
            "savings_rate": round(you["savings_rate"], 4),
            "spending_volatility": round(you["spending_volatility"], 4),
        },
        peer_averages=averages.model_dump() if averages is not None else {},
        comparison_scores={
            "balance_percentile": round(below, 4),
            "savings_percentile": 0.5,
            "volatility_percentile": 0.5,
        },
        peer_count=peers[0],
    )
    above = "above" if you["savings_rate"] > peers[1]["savings_rate"] else "below"
    return PeerComparisonResponse(
        peers=peers[0],
        metrics=[
            PeerMetric(metric=k, you=round(you[k], 4), peers_average=round(peers[1][k], 4))
            for k in PEER_METRICS
        ],
        segment_info=info,
        comparison=comparison,
        insights=[
            f"You're in the {segment.segment_name} segment",
            f"Your balance is {'above' if below > 0.5 else 'below'} average for your segment",
            f"Your savings rate is {above} average for your segment",
        ],
    )
