"""The deep health check and the model versions served."""

from __future__ import annotations

from sqlalchemy import text

from fincoach.db.queries.jobs import job_rows
from fincoach.errors import ServiceUnavailable
from fincoach.usecases.context import Context
from schemas.ops import ComponentStatus, HealthResponse, JobBrief, ModelsResponse

RETRY_AFTER_S = "5"


async def models(ctx: Context) -> ModelsResponse:
    """The version each model deployment serves and the result of its last swap."""
    return ModelsResponse.model_validate({"deployments": await ctx.models.model_versions()})


async def health(ctx: Context, version: str) -> HealthResponse:
    """Database, each model deployment, the bandit and the jobs. ServiceUnavailable while the
    database does not answer; "degraded" when a model or the bandit does not (answers then use
    their fallbacks)."""
    try:
        async with ctx.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any DB failure means "not ready"
        raise ServiceUnavailable(
            f"database: {type(exc).__name__}", headers={"Retry-After": RETRY_AFTER_S}
        ) from exc
    deployments = await ctx.models.model_versions()
    model_status: dict[str, ComponentStatus] = {
        name: "ok"
        if isinstance(info, dict)
        and "error" not in info
        and all(slot.get("version") for slot in info.values())
        else "unavailable"
        for name, info in deployments.items()
    }
    bandit: ComponentStatus = "ok" if await ctx.models.bandit_stats() is not None else "unavailable"
    healthy = all(v == "ok" for v in model_status.values()) and bandit == "ok"
    try:
        async with ctx.sessions() as session:
            jobs = {
                row.name: JobBrief(
                    last_status=row.last_status,
                    last_finished_at=row.last_finished_at,
                    next_run_at=row.next_run_at,
                )
                for row in await job_rows(session)
            }
    except Exception:  # noqa: BLE001 - the job table is informative; health is the DB above
        jobs = {}
    return HealthResponse(
        status="ok" if healthy else "degraded",
        database="ok",
        models=model_status,
        bandit=bandit,
        version=version,
        jobs=jobs,
    )
