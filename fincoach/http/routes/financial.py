"""Financial analytics computed from the user's own rows (and segment aggregates for peers)."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from sqlalchemy import select

from fincoach.db.queries.features import load_snapshot
from fincoach.db.tables import UserSegment
from fincoach.errors import Conflict
from fincoach.features.state import (
    BEHAVIORAL_STATE_NAMES,
    LEGACY_DIM,
    enhanced_state,
    weekly_matrix,
)
from fincoach.features.vocab import CATEGORIES, SPENDING_CATEGORIES
from fincoach.http.deps import CurrentUser, SessionDep
from fincoach.http.routes.coaching import MIN_PEERS, _segment, behavior_dict, segment_peers_average
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
from schemas.problem import AUTHENTICATED, problem_responses

router = APIRouter(
    prefix="/financial", tags=["financial"], responses=problem_responses(*AUTHENTICATED)
)
CAT = {c: i for i, c in enumerate(CATEGORIES)}
SPEND = [CAT[c] for c in SPENDING_CATEGORIES]


def _behavioral(snapshot: Any) -> dict[str, float]:
    state = enhanced_state(snapshot)
    return dict(
        zip(BEHAVIORAL_STATE_NAMES, map(float, state[LEGACY_DIM : LEGACY_DIM + 18]), strict=True)
    )


@router.get("/spending-patterns", response_model=SpendingPatternsResponse)
async def read_spending_patterns(
    user: CurrentUser, session: SessionDep
) -> SpendingPatternsResponse:
    """Average weekly spending per category over 12 weeks, its trend, and when money is spent."""
    snapshot = await load_snapshot(session, user.id)
    weekly = weekly_matrix(snapshot, 12)[:, SPEND]
    recent, before = weekly[-4:].mean(axis=0), weekly[:-4].mean(axis=0)
    behavioral = _behavioral(snapshot)
    return SpendingPatternsResponse(
        weeks=12,
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


@router.get("/category-preferences", response_model=CategoryPreferencesResponse)
async def read_category_preferences(
    user: CurrentUser, session: SessionDep
) -> CategoryPreferencesResponse:
    """Spending shares by category (12 weeks), largest first, with each one's top merchants."""
    snapshot = await load_snapshot(session, user.id)
    tx = snapshot.transactions
    start = snapshot.as_of - np.timedelta64(84, "D")
    window = (tx.occurred_at >= start) & np.isin(tx.category, SPEND)
    total = float(tx.amount[window].sum())
    out: list[CategoryPreference] = []
    for code in SPEND:
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
        weeks=12, total=round(total, 2), categories=sorted(out, key=lambda c: -c.share)
    )


@router.get("/financial-personality", response_model=FinancialPersonalityResponse)
async def read_financial_personality(
    request: Request, user: CurrentUser, session: SessionDep
) -> FinancialPersonalityResponse:
    """Trait scores (0-1) derived from behavior, and the segment they add up to."""
    snapshot = await load_snapshot(session, user.id)
    segment, fallback = await _segment(request, session, user.id, snapshot)
    await session.commit()
    f = behavior_dict(snapshot)
    b = _behavioral(snapshot)
    traits: dict[TraitName, float] = {
        "saver": min(1.0, f["savings_rate"] / 0.3),
        "planner": b["budget_adherence_score"] * 0.5 + f["savings_consistency"] * 0.5,
        "impulsive": min(1.0, f["impulse_buying_score"]),
        "steady": b["spending_consistency"],
        "engaged": min(1.0, float(np.expm1(f["log_events_per_week"])) / 10.0),
    }
    return FinancialPersonalityResponse(
        segment=None if segment is None else SegmentSummary.model_validate(segment),
        traits=PersonalityTraits(**{k: round(float(v), 3) for k, v in traits.items()}),
        # Ranked on the unrounded scores, as before the response had a model.
        dominant_trait=max(traits, key=lambda k: traits[k]),
        fallback=fallback,
    )


@router.get(
    "/peer-comparison", response_model=PeerComparisonResponse, responses=problem_responses(409)
)
async def read_peer_comparison(
    request: Request, user: CurrentUser, session: SessionDep
) -> PeerComparisonResponse:
    """The user beside the average of similar users (their segment). Aggregates only, and only
    when the segment has at least 5 other users, so no single user's data can be read out."""
    snapshot = await load_snapshot(session, user.id)
    segment, _ = await _segment(request, session, user.id, snapshot)
    await session.commit()
    segment_id = segment.segment_id if segment is not None else None
    if segment_id is None:
        segment_id = await session.scalar(
            select(UserSegment.segment_id).where(UserSegment.user_id == user.id)
        )
    peers = (
        None if segment_id is None else await segment_peers_average(session, segment_id, user.id)
    )
    if peers is None:
        raise Conflict(f"fewer than {MIN_PEERS} comparable users: no peer comparison yet")
    you = behavior_dict(snapshot)
    return PeerComparisonResponse(
        peers=peers[0],
        metrics=[
            PeerMetric(metric=k, you=round(you[k], 4), peers_average=round(peers[1][k], 4))
            for k in PEER_METRICS
        ],
    )
