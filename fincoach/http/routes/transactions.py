"""Transactions: create, list with pagination and filters, read, delete."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from fincoach.http.deps import ContextDep, CurrentUser, SessionDep
from fincoach.usecases import transactions
from schemas.common import Page, QueryDatetime
from schemas.problem import AUTHENTICATED, problem_responses
from schemas.transactions import (
    Category,
    TransactionCreateRequest,
    TransactionKind,
    TransactionResponse,
)

router = APIRouter(
    prefix="/transactions", tags=["transactions"], responses=problem_responses(*AUTHENTICATED, 422)
)
TransactionId = Annotated[int, Path(gt=0, le=2**63 - 1)]


def _utc(value: datetime | None) -> datetime | None:
    # A date or naive datetime in a query string is read as UTC.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@router.post("", status_code=201, response_model=TransactionResponse)
async def create_transaction(
    body: TransactionCreateRequest, ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> TransactionResponse:
    row = await transactions.add(ctx, session, user.id, body.model_dump())
    return TransactionResponse.model_validate(row)


@router.get("", response_model=Page[TransactionResponse])
async def list_transactions(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    start: Annotated[
        QueryDatetime | None,
        Query(description="Inclusive lower bound: ISO 8601 date-time, or a date (midnight)"),
    ] = None,
    end: Annotated[
        QueryDatetime | None,
        Query(description="Exclusive upper bound: ISO 8601 date-time, or a date (midnight)"),
    ] = None,
    category: Category | None = None,
    kind: TransactionKind | None = None,
) -> Page[TransactionResponse]:
    rows, total = await transactions.page(
        session,
        user.id,
        limit=limit,
        offset=offset,
        start=_utc(start),
        end=_utc(end),
        category=category,
        kind=kind,
    )
    return Page(
        items=[TransactionResponse.model_validate(r) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/{transaction_id}", response_model=TransactionResponse, responses=problem_responses(404)
)
async def read_transaction(
    transaction_id: TransactionId, user: CurrentUser, session: SessionDep
) -> TransactionResponse:
    return TransactionResponse.model_validate(
        await transactions.get(session, user.id, transaction_id)
    )


@router.delete("/{transaction_id}", status_code=204, responses=problem_responses(404))
async def delete_transaction(
    transaction_id: TransactionId, ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> Response:
    await transactions.delete(ctx, session, user.id, transaction_id)
    return Response(status_code=204)
