"""The original API's model endpoints: the coaching actions, the legacy model's information
and health, and the health of every model service (what ``/health`` and ``/models`` tell in
this backend's own shape)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from fincoach.features.state import LEGACY_DIM
from fincoach.features.vocab import ACTIONS, LEGACY_ACTION_COUNT
from fincoach.usecases.clients import ModelCallFailed
from fincoach.usecases.context import Context
from models.names import (
    CQL_ENHANCED,
    CQL_LEGACY,
    FORECAST,
    GOAL_PROBABILITY,
    SEGMENTATION,
    deployment_of,
)
from schemas.original import (
    ActionsResponse,
    CoachingAction,
    CoachingHealthResponse,
    EnhancedHealthResponse,
    ModelInfoResponse,
    ServiceHealth,
)

LEGACY_ACTIONS = (
    CoachingAction(
        id=0,
        type="continue_current_behavior",
        name="Continue Current Behavior",
        description="User is maintaining good financial habits",
        priority="low",
        category="general",
    ),
    CoachingAction(
        id=1,
        type="spending_alert",
        name="Spending Alert",
        description="User needs to reduce spending",
        priority="high",
        category="spending",
    ),
    CoachingAction(
        id=2,
        type="budget_suggestion",
        name="Budget Suggestion",
        description="User should create or adjust budget",
        priority="medium",
        category="budgeting",
    ),
    CoachingAction(
        id=3,
        type="savings_nudge",
        name="Savings Nudge",
        description="User has opportunity to save more",
        priority="medium",
        category="saving",
    ),
    CoachingAction(
        id=4,
        type="positive_reinforcement",
        name="Positive Reinforcement",
        description="User is doing well financially",
        priority="low",
        category="general",
    ),
)
assert [a.type for a in LEGACY_ACTIONS] == list(ACTIONS[:LEGACY_ACTION_COUNT])


def actions() -> ActionsResponse:
    """The 5 legacy coaching actions (the enhanced recommendation also has newer ones)."""
    return ActionsResponse(actions=list(LEGACY_ACTIONS))


async def _versions(ctx: Context) -> dict[str, str | None]:
    """{model: version served, None when not loaded or its deployment does not answer}."""
    deployments = await ctx.models.model_versions()
    out: dict[str, str | None] = {}
    for model in (SEGMENTATION, FORECAST, GOAL_PROBABILITY, CQL_LEGACY, CQL_ENHANCED):
        info: Any = deployments.get(deployment_of(model), {})
        slot = info.get(model) if isinstance(info, dict) else None
        out[model] = slot.get("version") if isinstance(slot, dict) else None
    return out


async def model_info(ctx: Context) -> ModelInfoResponse:
    version = (await _versions(ctx))[CQL_LEGACY]
    return ModelInfoResponse(
        model_loaded=version is not None,
        model_path=f"{CQL_LEGACY}/{version}" if version else CQL_LEGACY,
        state_dimensions=LEGACY_DIM,
        action_dimensions=LEGACY_ACTION_COUNT,
        available_actions=list(ACTIONS[:LEGACY_ACTION_COUNT]),
        model_version=version,
    )


async def coaching_health(ctx: Context) -> CoachingHealthResponse:
    """The legacy recommender: loaded, and answering a smoke inference."""
    loaded = (await _versions(ctx))[CQL_LEGACY] is not None
    test = "skipped"
    if loaded:
        try:
            q, _ = await ctx.models.q_values(np.zeros(LEGACY_DIM), "legacy")
            test = "passed" if np.isfinite(q).all() else "failed"
        except ModelCallFailed:
            test = "failed"
    return CoachingHealthResponse(
        status="healthy" if loaded and test == "passed" else "degraded",
        model_loaded=loaded,
        fallback_available=True,
        last_check=datetime.now(UTC).isoformat(),
        inference_test=test,  # type: ignore[arg-type]
    )


def _service(version: str | None) -> ServiceHealth:
    return ServiceHealth(
        status="healthy" if version else "degraded",
        model_loaded=version is not None,
        version=version,
    )


async def enhanced_health(ctx: Context) -> EnhancedHealthResponse:
    versions = await _versions(ctx)
    bandit = await ctx.models.bandit_stats(fresh=True)
    services = {
        "enhanced_cql_service": _service(versions[CQL_ENHANCED]),
        "segmentation_service": _service(versions[SEGMENTATION]),
        "behavioral_service": ServiceHealth(
            status="healthy" if bandit is not None else "degraded",
            model_loaded=bandit is not None,
        ),
        "spending_prediction_service": _service(versions[FORECAST]),
        "goal_prediction_service": _service(versions[GOAL_PROBABILITY]),
    }
    healthy = all(s.status == "healthy" for s in services.values())
    return EnhancedHealthResponse(**services, overall_status="healthy" if healthy else "degraded")
