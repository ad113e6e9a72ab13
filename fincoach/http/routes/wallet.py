"""The wallet and transactions as the original FinCoach API serves them (``/financial/...``).

``/financial/transactions`` and this backend's ``/transactions`` are one implementation
(``fincoach.usecases.transactions``) in two shapes; ``/transactions`` is the primary one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from fincoach.db.tables import Transaction
from fincoach.errors import BadRequest
from fincoach.http.deps import ContextDep, CurrentUser, SessionDep
from fincoach.usecases import events, transactions
from schemas.problem import AUTHENTICATED, problem_responses
from schemas.wallet import (
    BalanceHistoryResponse,
    CategoriesResponse,
    Category,
    FinancialHealthSummary,
    MonthlySummary,
    SpendingAnalytics,
    TrackedTransactionEvent,
    TransactionCreate,
    TransactionOut,
    TransactionType,
    WalletResponse,
)

router = APIRouter(
    prefix="/financial", tags=["financial"], responses=problem_responses(*AUTHENTICATED)
)
Days = Annotated[int, Query(ge=1, le=3660, description="Days back from now")]
TransactionId = Annotated[int, Path(gt=0, le=2**63 - 1)]


def transaction_out(row: Transaction) -> TransactionOut:
    return TransactionOut.model_validate(
        {
            "id": str(row.id),
            "transaction_type": row.transaction_type,
            "amount": row.amount,
            "category": row.category,
            "description": row.description or "",
            "merchant_name": row.merchant,
            "location_city": row.location_city,
            "location_country": row.location_country,
            "balance_after": row.balance_after,
            "transaction_date": row.occurred_at,
            "kind": row.kind,
        }
    )


@router.get("/wallet", response_model=WalletResponse)
async def read_wallet(user: CurrentUser, session: SessionDep) -> WalletResponse:
    """The wallet: its balance (the opening balance plus every transaction) and currency."""
    wallet = await transactions.wallet(session, user.id)
    return WalletResponse.model_validate(
        {
            "id": str(wallet.id),
            "balance": wallet.balance,
            "currency": wallet.currency,
            "updated_at": wallet.updated_at,
        }
    )


@router.post(
    "/transactions",
    status_code=201,
    response_model=TransactionOut,
    responses=problem_responses(400, 422),
)
async def create_signed_transaction(
    body: TransactionCreate, ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> TransactionOut:
    """Record a transaction: a positive amount is a credit (money in), a negative one a debit
    (money out). A debit the wallet cannot cover is a 400 ("Insufficient funds")."""
    row = await transactions.add_signed(ctx, session, user.id, body.model_dump())
    return transaction_out(row)


@router.get("/transactions", response_model=list[TransactionOut], responses=problem_responses(422))
async def list_recent_transactions(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100, description="At most this many")] = 50,
    days: Annotated[int | None, Query(ge=1, le=3660, description="Of the last N days")] = None,
    category: Category | None = None,
    transaction_type: TransactionType | None = None,
) -> list[TransactionOut]:
    """The newest transactions first, optionally of one category or direction."""
    found = await transactions.recent(
        session,
        user.id,
        limit=limit,
        days=days,
        category=category,
        transaction_type=transaction_type,
    )
    return [transaction_out(r) for r in found]


@router.get(
    "/transactions/{transaction_id}",
    response_model=TransactionOut,
    responses=problem_responses(404, 422),
)
async def read_signed_transaction(
    transaction_id: TransactionId, user: CurrentUser, session: SessionDep
) -> TransactionOut:
    """One transaction (the path the original web client uses)."""
    return transaction_out(await transactions.get(session, user.id, transaction_id))


@router.delete(
    "/transactions/{transaction_id}",
    status_code=204,
    responses=problem_responses(404, 422),
)
async def delete_signed_transaction(
    transaction_id: TransactionId, ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> Response:
    """Delete a transaction; the wallet and the balances after it move back."""
    await transactions.delete(ctx, session, user.id, transaction_id)
    return Response(status_code=204)


@router.get(
    "/transaction/{transaction_id}",
    response_model=TransactionOut,
    responses=problem_responses(400, 404, 422),
)
async def read_transaction_by_id(
    transaction_id: Annotated[int | str, Path(description="A transaction id")],
    user: CurrentUser,
    session: SessionDep,
) -> TransactionOut:
    """One transaction by id (the original API's path; an id that is not one is a 400)."""
    text = str(transaction_id)
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= 18 and int(text) > 0):
        raise BadRequest("Invalid transaction ID format")
    return transaction_out(await transactions.get(session, user.id, int(text)))


@router.get(
    "/analytics/spending-by-category",
    response_model=list[SpendingAnalytics],
    responses=problem_responses(422),
)
async def read_spending_by_category(
    user: CurrentUser, session: SessionDep, days: Days = 30
) -> list[SpendingAnalytics]:
    """Debits of the last ``days`` days per category, largest first, with their share (%)."""
    found = await transactions.spending_by_category(session, user.id, days)
    return [SpendingAnalytics.model_validate(a) for a in found]


@router.get("/health-summary", response_model=FinancialHealthSummary)
async def read_health_summary(user: CurrentUser, session: SessionDep) -> FinancialHealthSummary:
    """Balance, the last 7 days' spending and income, savings rate, top categories."""
    return FinancialHealthSummary.model_validate(
        await transactions.health_summary(session, user.id)
    )


@router.get(
    "/balance-history", response_model=BalanceHistoryResponse, responses=problem_responses(422)
)
async def read_balance_history(
    user: CurrentUser, session: SessionDep, days: Days = 30
) -> BalanceHistoryResponse:
    """The balance after each transaction of the last ``days`` days, oldest first."""
    history = await transactions.balance_history(session, user.id, days)
    return BalanceHistoryResponse.model_validate({"balance_history": history})


@router.get("/monthly-summary", response_model=MonthlySummary, responses=problem_responses(422))
async def read_monthly_summary(
    user: CurrentUser,
    session: SessionDep,
    year: Annotated[int, Query(ge=1900, le=2200, description="Year")],
    month: Annotated[int, Query(ge=1, le=12, description="Month (1-12)")],
) -> MonthlySummary:
    """Income, spending and their difference in one calendar month (UTC)."""
    return MonthlySummary.model_validate(
        await transactions.monthly_summary(session, user.id, year, month)
    )


@router.get("/categories", response_model=CategoriesResponse)
async def read_categories() -> CategoriesResponse:
    """The transaction categories (no sign-in needed)."""
    return CategoriesResponse.model_validate({"categories": transactions.categories()})


@router.post(
    "/track-transaction-event",
    response_model=TrackedTransactionEvent,
    responses=problem_responses(422, 503),
)
async def track_transaction_event(
    request: Request,
    ctx: ContextDep,
    user: CurrentUser,
    session: SessionDep,
    transaction_id: Annotated[str, Query(min_length=1, max_length=64)],
    event_type: Annotated[
        str, Query(min_length=1, max_length=40, description="create, view or analyze")
    ],
) -> TrackedTransactionEvent:
    """Record an interaction with a transaction (a behavioral event, committed first)."""
    await events.record_interaction(
        ctx,
        user.id,
        "purchase" if event_type == "create" else "page_view",
        {
            "interaction": "transaction",
            "transaction_id": transaction_id,
            "interaction_type": event_type,
        },
        getattr(request.state, "session_id", None),
        session,
    )
    return TrackedTransactionEvent(
        message="Transaction event tracked successfully",
        transaction_id=transaction_id,
        event_type=event_type,
    )
