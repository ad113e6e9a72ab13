"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

import errors
from api.problems import RETRY_AFTER_SECONDS, problem_response

router = APIRouter(tags=["health"])


class HealthResponse(BaseModel):
    status: str
    database: str
    version: str


@router.get("/health", response_model=HealthResponse, responses={503: {"description": "Down"}})
async def read_health(request: Request) -> HealthResponse | JSONResponse:
    try:
        async with request.app.state.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any DB failure means "not ready"
        return problem_response(
            request,
            status=503,
            title="Service unavailable",
            code=errors.SERVICE_UNAVAILABLE,
            detail=f"database: {type(exc).__name__}",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    return HealthResponse(status="ok", database="ok", version=request.app.version)
