"""The original FinCoach API's model endpoints (no sign-in): the coaching actions, the legacy
model's information and health, and every model service's health."""

from __future__ import annotations

from fastapi import APIRouter

from fincoach.http.deps import ContextDep
from fincoach.usecases import model_status
from schemas.original import (
    ActionsResponse,
    CoachingHealthResponse,
    EnhancedHealthResponse,
    ModelInfoResponse,
)

router = APIRouter(prefix="/coaching", tags=["coaching"])


@router.get("/actions", response_model=ActionsResponse)
async def read_actions() -> ActionsResponse:
    """The 5 legacy coaching actions and their descriptions."""
    return model_status.actions()


@router.get("/model-info", response_model=ModelInfoResponse)
async def read_model_info(ctx: ContextDep) -> ModelInfoResponse:
    """The legacy recommendation model: loaded, its version, state and action sizes."""
    return await model_status.model_info(ctx)


@router.get("/health", response_model=CoachingHealthResponse)
async def read_coaching_health(ctx: ContextDep) -> CoachingHealthResponse:
    """The legacy recommendation model's health: loaded and answering a smoke inference."""
    return await model_status.coaching_health(ctx)


@router.get("/enhanced-health", response_model=EnhancedHealthResponse)
async def read_enhanced_health(ctx: ContextDep) -> EnhancedHealthResponse:
    """Every model service's health, and overall."""
    return await model_status.enhanced_health(ctx)
