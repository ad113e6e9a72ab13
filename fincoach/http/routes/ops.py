"""Operations: which model versions serve, a deep health check, and the in-process metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from fincoach import errors
from fincoach.http.problems import database_unavailable, problem_response
from fincoach.jobs.scheduler import job_table
from fincoach.observability import metrics
from schemas.ops import ComponentStatus, HealthResponse, JobBrief, ModelsResponse
from schemas.problem import problem_responses

router = APIRouter(tags=["operations"])


@router.get("/models", response_model=ModelsResponse)
async def read_models(request: Request) -> ModelsResponse:
    """The version each model deployment serves and the result of its last swap."""
    return ModelsResponse.model_validate(
        {"deployments": await request.app.state.models.model_versions()}
    )


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {**problem_responses(503)[503], "description": "The database is down"}},
)
async def read_health(request: Request) -> HealthResponse | JSONResponse:
    """Database, each model deployment and the bandit actor. 200 while the database answers
    (``status`` says "degraded" if a model or the actor does not: answers then use fallbacks),
    503 with Retry-After when it does not."""
    try:
        async with request.app.state.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any DB failure means "not ready"
        return database_unavailable(request, f"database: {type(exc).__name__}")
    models = request.app.state.models
    deployments = await models.model_versions()
    model_status: dict[str, ComponentStatus] = {
        name: "ok"
        if isinstance(info, dict)
        and "error" not in info
        and all(slot.get("version") for slot in info.values())
        else "unavailable"
        for name, info in deployments.items()
    }
    bandit: ComponentStatus = "ok" if await models.bandit_stats() is not None else "unavailable"
    healthy = all(v == "ok" for v in model_status.values()) and bandit == "ok"
    try:
        jobs = {
            row.name: JobBrief(
                last_status=row.last_status,
                last_finished_at=row.last_finished_at,
                next_run_at=row.next_run_at,
            )
            for row in await job_table(request.app.state)
        }
    except Exception:  # noqa: BLE001 - the job table is informative; health is the DB above
        jobs = {}
    return HealthResponse(
        status="ok" if healthy else "degraded",
        database="ok",
        models=model_status,
        bandit=bandit,
        version=request.app.version,
        jobs=jobs,
    )


@router.get("/metrics", include_in_schema=False)
async def read_metrics(request: Request) -> Response:
    """Prometheus text of this process's metrics (``fincoach_*``), for the in-process app.
    Under Ray Serve the replicas export them through Ray's metrics agent instead (404 here)."""
    rendered = metrics.render_prometheus()
    if rendered is None:
        return problem_response(
            request,
            status=404,
            title="Not found",
            code=errors.NOT_FOUND,
            detail="Under Ray Serve, scrape Ray's metrics export port of each node (README)",
        )
    body, content_type = rendered
    return Response(body, media_type=content_type)
