"""Operations: the model versions each deployment serves, and the deep health check."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

ComponentStatus = Literal["ok", "unavailable"]


class SwapResult(BaseModel):
    """The last attempt to swap a model slot to a registry version (models.serving.SwapReport)."""

    name: str = Field(description="Model name in the registry")
    requested: str | None = Field(description="Version asked for; null means the newest")
    active: str | None = Field(description="Version serving after the attempt; null if none")
    ok: bool = Field(description="False when the version failed to load or validate")
    error: str | None = Field(description="Why the swap failed; null when it succeeded")
    # Kept as the string the service wrote, so the body is exactly what it reported.
    at: str = Field(description="When the attempt ran (ISO 8601, UTC)")


class ModelSlotInfo(BaseModel):
    version: str | None = Field(description="Registry version serving; null when none is loaded")
    last_swap: SwapResult | None = Field(description="Result of the last swap; null before any")


class DeploymentError(BaseModel):
    """A deployment that did not answer (Serve only): failed, timed out or unreachable."""

    error: str = Field(description="The failure, as ``ExceptionType: message``")


class ModelsResponse(BaseModel):
    deployments: dict[str, dict[str, ModelSlotInfo] | DeploymentError] = Field(
        description="By deployment name (SegmentationDeployment, ...): its models by name, "
        "or the error when the deployment did not answer"
    )


class JobBrief(BaseModel):
    last_status: str | None = Field(description="ok, failed, running, or null (never run)")
    last_finished_at: datetime | None
    next_run_at: datetime


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description='"degraded" when a model or the bandit is unavailable (fallbacks answer)'
    )
    database: Literal["ok"] = Field(
        default="ok", description="Always ok: a down database is a 503 instead"
    )
    models: dict[str, ComponentStatus] = Field(
        default_factory=dict,
        description="By deployment name: ok when every one of its models has a version loaded "
        "(with the operations token only)",
    )
    bandit: ComponentStatus | None = Field(
        default=None,
        description="Whether the bandit statistics answer (with the operations token only)",
    )
    version: str | None = Field(default=None, description="API version (operations token)")
    jobs: dict[str, JobBrief] = Field(
        default_factory=dict, description="Background jobs by name: last result, next run"
    )


class JobStatus(BaseModel):
    name: str
    description: str
    period_s: float
    next_run_at: datetime
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_status: str | None = Field(description="ok, failed, running, or null (never run)")
    last_detail: dict[str, Any] | None
    last_duration_s: float | None
    runs: int
    running_on: str | None = Field(description="Holder of the lease while it runs")


class JobsResponse(BaseModel):
    scheduler_enabled: bool
    jobs: list[JobStatus]
