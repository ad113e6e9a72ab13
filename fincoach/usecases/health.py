"""The deep health check and the model versions served."""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from dataclasses import dataclass

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
# flood of it) costs the deployments and the bandit one call a second per process ...
LIVENESS_TTL_S = 1.0
# ... and does not wait for that check while the last one said 200 less than this long ago: the
# check runs in the background and the probe gets the last answer (stale-while-revalidate), so
# a probe's latency is the event loop's, not that of four calls across a busy machine.
LIVENESS_MAX_STALE_S = 5.0


@dataclass
class _Liveness:
    answer: HealthResponse | None = None  # the last check's 200 answer (None: none, or a 503)
    at: float = -math.inf  # when it was made (time.monotonic())
    check: asyncio.Task[HealthResponse] | None = None  # the check running now


_LIVENESS: weakref.WeakKeyDictionary[ModelClients, _Liveness] = weakref.WeakKeyDictionary()


async def liveness(ctx: Context) -> HealthResponse:
    """What an anonymous caller learns: the same 200/503 as ``health``, with the status only
    (no component, version, job or user detail; a 503 says "starting" or "unavailable").

    One check at a time per process, shared by the callers that arrive meanwhile. A caller
    waits for it only when there is no 200 answer younger than LIVENESS_MAX_STALE_S: while
    starting, after a 503, or when checks hang."""
    state = _LIVENESS.setdefault(ctx.models, _Liveness())
    age = time.monotonic() - state.at
    if state.answer is not None and age < LIVENESS_TTL_S:
        return state.answer
    if state.check is None:
        state.check = asyncio.create_task(_check_liveness(ctx, state))
        state.check.add_done_callback(_retrieve)
    if state.answer is not None and age < LIVENESS_MAX_STALE_S:
        return state.answer
    return await asyncio.shield(state.check)


async def _check_liveness(ctx: Context, state: _Liveness) -> HealthResponse:
    try:
        full = await health(ctx, "")
    except ServiceUnavailable as exc:
        state.answer, state.at = None, time.monotonic()
        starting = str(exc.detail).startswith("starting")
        raise ServiceUnavailable(
            "starting" if starting else "unavailable", headers=exc.headers
        ) from None
    except BaseException:
        state.answer = None
        raise
    finally:
        state.check = None
    state.answer, state.at = HealthResponse(status=full.status), time.monotonic()
    return state.answer


def _retrieve(task: asyncio.Task[HealthResponse]) -> None:
    # A check nobody waited for (its answer went to later callers) may end in a 503 or an
    # error; reading it here keeps asyncio from logging "exception was never retrieved".
    if not task.cancelled():
        task.exception()


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
