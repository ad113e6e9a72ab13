"""Financial analytics computed from the user's own rows (and segment aggregates for peers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from fincoach.http.deps import ContextDep, CurrentUser, SessionDep
from fincoach.usecases import financial
from schemas.financial import (
    CategoryPreferencesResponse,
    FinancialPersonalityResponse,
    PeerComparisonResponse,
    SpendingPatternsResponse,
)
from schemas.problem import AUTHENTICATED, problem_responses

router = APIRouter(
    prefix="/financial", tags=["financial"], responses=problem_responses(*AUTHENTICATED)
)


@router.get(
    "/spending-patterns",
    response_model=SpendingPatternsResponse,
    responses=problem_responses(422),
)
async def read_spending_patterns(
    user: CurrentUser,
    session: SessionDep,
    days: Annotated[int, Query(ge=1, le=3660, description="Days of spending_analytics")] = 30,
) -> SpendingPatternsResponse:
    """Average weekly spending per category over 12 weeks, its trend, and when money is spent;
    the last ``days`` days' spending by category and app activity."""
    return await financial.spending_patterns(session, user.id, days)


@router.get("/category-preferences", response_model=CategoryPreferencesResponse)
async def read_category_preferences(
    user: CurrentUser, session: SessionDep
) -> CategoryPreferencesResponse:
    """Spending shares by category (12 weeks), largest first, with each one's top merchants."""
    return await financial.category_preferences(session, user.id)


@router.get("/financial-personality", response_model=FinancialPersonalityResponse)
async def read_financial_personality(
    ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> FinancialPersonalityResponse:
    """Trait scores (0-1) derived from behavior, and the segment they add up to."""
    return await financial.personality(ctx, session, user.id)


@router.get("/peer-comparison", response_model=PeerComparisonResponse)
async def read_peer_comparison(
    ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> PeerComparisonResponse:
    """The user beside the average of similar users (their segment). Aggregates only, and only
    when the segment has at least 5 other users, so no single user's data can be read out;
    with fewer, a message and no comparison."""
    return await financial.peer_comparison(ctx, session, user.id)
