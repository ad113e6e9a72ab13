"""Operations: which model versions serve, a deep health check, and the in-process metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from fincoach import errors
from fincoach.http.deps import ContextDep, is_ops, require_ops
from fincoach.http.problems import problem_response
from fincoach.observability import metrics
from fincoach.usecases import health
from schemas.ops import HealthResponse, ModelsResponse
from schemas.problem import problem_responses

router = APIRouter(tags=["operations"])


@router.get(
    "/models",
    response_model=ModelsResponse,
    dependencies=[Depends(require_ops)],
    responses=problem_responses(401),
)
async def read_models(ctx: ContextDep) -> ModelsResponse:
    """The version each model deployment serves and the result of its last swap (with the
    operations token only)."""
    return await health.models(ctx)


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={
        503: {
            **problem_responses(503)[503],
            "description": "The database is down, or the app is still starting",
        }
    },
)
async def read_health(request: Request, ctx: ContextDep) -> HealthResponse:
    """Database, each model deployment and the bandit actor. 503 with Retry-After while the
    database does not answer, and while starting (until every deployment and the bandit have
    answered once); then 200 (``status`` says "degraded" if a model or the actor does not:
    answers then use fallbacks). Without the operations token only that: the status, no
    component, job or version detail."""
    if is_ops(request):
        return await health.health(ctx, request.app.version)
    return await health.liveness(ctx)


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
