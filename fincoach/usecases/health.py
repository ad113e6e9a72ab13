"""The deep health check and the model versions served."""

from __future__ import annotations

import time
import weakref

from sqlalchemy import text

from fincoach.db.queries.jobs import job_rows
from fincoach.errors import ServiceUnavailable
from fincoach.usecases.clients import ModelClients
from fincoach.usecases.context import Context
from schemas.ops import ComponentStatus, HealthResponse, JobBrief, ModelsResponse

RETRY_AFTER_S = "5"
STARTING_RETRY_AFTER_S = "1"
# The model clients (one per serving process) that have once seen every deployment and the
# bandit answer: until then the process is starting, and /health says 503.
_READY: weakref.WeakSet[ModelClients] = weakref.WeakSet()


async def models(ctx: Context) -> ModelsResponse:
    """The version each model deployment serves and the result of its last swap."""
    return ModelsResponse.model_validate({"deployments": await ctx.models.model_versions()})


# An anonymous caller gets the status of a full check at most this old: polling /health (or a
# flood of it) costs the deployments and the bandit one call a second per process.
LIVENESS_TTL_S = 1.0
_LAST: weakref.WeakKeyDictionary[ModelClients, tuple[float, HealthResponse]] = (
    weakref.WeakKeyDictionary()
)


async def liveness(ctx: Context) -> HealthResponse:
    """What an anonymous caller learns: the same 200/503 as ``health``, with the status only
    (no component, version, job or user detail; a 503 says "starting" or "unavailable")."""
    last = _LAST.get(ctx.models)
    if last is not None and time.monotonic() - last[0] < LIVENESS_TTL_S:
        return last[1]
    try:
        full = await health(ctx, "")
    except ServiceUnavailable as exc:
        starting = str(exc.detail).startswith("starting")
        raise ServiceUnavailable(
            "starting" if starting else "unavailable", headers=exc.headers
        ) from None
    answer = HealthResponse(status=full.status)
    _LAST[ctx.models] = (time.monotonic(), answer)
    return answer


async def health(ctx: Context, version: str) -> HealthResponse:
    """Database, each model deployment, the bandit and the jobs. ServiceUnavailable while the
    database does not answer, and while starting: until every model deployment and the bandit
    have answered once. After that, "degraded" when a model or the bandit does not (answers
    then use their fallbacks)."""
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
    answered = await ctx.models.bandit_stats(fresh=True)
    bandit: ComponentStatus = "ok" if answered is not None else "unavailable"
    healthy = all(v == "ok" for v in model_status.values()) and bandit == "ok"
    if healthy:
        _READY.add(ctx.models)
    elif ctx.models not in _READY:
        waiting = [n for n, v in model_status.items() if v != "ok"] + (
            ["bandit"] if bandit != "ok" else []
        )
        raise ServiceUnavailable(
            f"starting: waiting for {', '.join(waiting)}",
            headers={"Retry-After": STARTING_RETRY_AFTER_S},
        )
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
