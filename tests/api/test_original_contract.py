"""The original FinCoach API as a contract: every route of its auth, financial and coaching
routers (continuous learning aside) is served here, takes the original's request, and answers
with at least the original's fields in the original's JSON types.

The original's request and response models are written out below from its routers and models
(``../shared/fincoach-original/backend/app``), strictly typed: a missing field, a renamed one or
a value of another JSON type fails. Extra fields are this backend's own and allowed. The route
list is read from the original routers themselves, so a route left out of the table fails too.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, TypeAdapter

from tests.conftest import load_recent_users

ORIGINAL = Path(__file__).resolve().parents[3] / "shared" / "fincoach-original" / "backend"
ROUTERS = ORIGINAL / "app" / "routers"


class Contract(BaseModel):
    """An original model: its fields, strictly typed; this backend's extra fields allowed."""

    model_config = ConfigDict(extra="allow", strict=True)


# --- the original's models (app/models/*.py and the routers' inline ones) ----------------------
class UserResponse(Contract):
    id: str
    email: str
    first_name: str
    last_name: str
    created_at: datetime
    is_active: bool


class TokenResponse(Contract):
    access_token: str
    token_type: str
    user: UserResponse


class Message(Contract):
    message: str


class TransactionResponse(Contract):
    id: str
    transaction_type: str
    amount: Decimal
    category: str
    description: str
    merchant_name: str | None
    location_city: str | None
    location_country: str
    balance_after: Decimal
    transaction_date: datetime


class WalletResponse(Contract):
    id: str
    balance: Decimal
    currency: str
    updated_at: datetime


class SpendingAnalytics(Contract):
    category: str
    total_amount: Decimal
    transaction_count: int
    percentage: float


class FinancialHealthSummary(Contract):
    current_balance: Decimal
    weekly_spending: Decimal
    weekly_income: Decimal
    transaction_count: int
    savings_rate: float
    daily_spending_avg: Decimal
    top_spending_categories: list[SpendingAnalytics]


class BalancePoint(Contract):
    date: str
    balance: float
    transaction_type: str
    amount: float


class BalanceHistory(Contract):
    balance_history: list[BalancePoint]


class MonthlySummary(Contract):
    month: int
    year: int
    total_income: float
    total_spending: float
    net_change: float
    transaction_count: int
    average_transaction: float


class Category(Contract):
    value: str
    label: str
    description: str


class Categories(Contract):
    categories: list[Category]


class SpendingPatterns(Contract):
    period_days: int
    behavioral_data: dict[str, Any]
    spending_analytics: list[SpendingAnalytics]
    engagement_score: float
    behavior_diversity: int
    generated_at: str | None


class CategoryInsight(Contract):
    category: str
    total_amount: Decimal
    transaction_count: int
    average_amount: Decimal
    percentage_of_spending: float
    behavioral_score: float


class CategoryPreferences(Contract):
    category_preferences: list[CategoryInsight]
    top_category: CategoryInsight | None
    behavioral_data: dict[str, Any]
    analysis_period_days: int


class UserSegmentInfo(Contract):
    segment_id: int
    segment_name: str
    confidence: float
    characteristics: dict[str, float]
    peer_comparison: dict[str, float] | None = None


class PersonalityTrait(Contract):
    trait: str
    description: str
    score: float


class FinancialPersonality(Contract):
    user_id: str
    segment_info: UserSegmentInfo
    personality_traits: list[PersonalityTrait]
    financial_metrics: dict[str, float]
    behavioral_summary: dict[str, Any]
    generated_at: str


class PeerComparison(Contract):
    segment_info: UserSegmentInfo
    comparison: dict[str, Any] | None


class TrackedEvent(Contract):
    message: str
    transaction_id: str
    event_type: str


class AIRecommendation(Contract):
    action_id: int
    action_type: str
    recommendation: str
    confidence: float
    state_summary: dict[str, Any]
    generated_at: datetime


class FinancialState(Contract):
    current_balance: float
    weekly_spending: float
    weekly_income: float
    transaction_count: int
    savings_rate: float
    daily_spending_avg: float
    category_spending: dict[str, float]


class CoachingAction(Contract):
    id: int
    type: str
    name: str
    description: str
    priority: str
    category: str


class Actions(Contract):
    actions: list[CoachingAction]


class HistoryItem(Contract):
    id: str
    recommendation_text: str
    action_type: str
    confidence_score: float
    created_at: str
    feedback_status: str


class History(Contract):
    recommendations: list[HistoryItem]
    total: int
    page: int
    limit: int


class FeedbackAnswer(Contract):
    message: str
    feedback_id: str


class Insights(Contract):
    insights: list[dict[str, Any]]
    generated_at: Any


class RecommendationStrategy(Contract):
    strategy_id: int
    strategy_name: str
    parameters: dict[str, float]
    performance_metrics: dict[str, float]
    selection_count: int
    last_updated: datetime


class EnhancedAIRecommendation(AIRecommendation):
    segment_context: UserSegmentInfo | None = None
    strategy_used: RecommendationStrategy | None = None
    behavioral_triggers: list[str] | None = None
    personalization_score: float | None = None


class SegmentInsights(Contract):
    segment_info: UserSegmentInfo
    characteristics: dict[str, Any]
    peer_comparison: list[dict[str, Any]]
    generated_at: datetime


class SegmentComparison(Contract):
    peers: list[dict[str, Any]]


class RefreshSegment(Contract):
    message: str
    segment_info: UserSegmentInfo


class SpendingPrediction(Contract):
    user_id: str
    prediction_date: datetime
    total_predicted: float
    category_predictions: dict[str, float]
    confidence_intervals: dict[str, list[float]]
    previous_accuracy: float | None = None


class GoalAchievementProbability(Contract):
    goal_id: str
    probability: float
    expected_completion_date: datetime | None = None
    risk_factors: list[dict[str, str]]
    improvement_suggestions: list[str]


class FinancialForecast(Contract):
    current_balance: float
    projected_balance: float
    projection_days: int
    weekly_predicted_spending: float
    weekly_income: float
    weekly_net: float
    spending_prediction: SpendingPrediction
    generated_at: datetime


class BehaviorSummary(Contract):
    user_id: str
    behavior_data: dict[str, Any]
    behavior_changes: list[dict[str, Any]]
    segment_info: dict[str, Any] | None
    summary_generated_at: str


class BehaviorAggregate(Contract):
    user_id: str
    period_days: int
    total_events: int
    event_counts: dict[str, int]
    interaction_patterns: dict[str, dict[str, int]]
    behavior_diversity: int
    engagement_score: float
    generated_at: str


class BehaviorChanges(Contract):
    user_id: str
    behavior_changes: list[dict[str, Any]]
    change_count: int
    analysis_date: str


# --- every original route: (method, path) -> (request, status, response model) -----------------
REGISTRATION = {
    "email": "contract@example.com",
    "password": "TestPass123",
    "first_name": "Con",
    "last_name": "Tract",
    "date_of_birth": "1990-05-17",
}
ROUTES: dict[tuple[str, str], tuple[dict[str, Any], int, Any]] = {
    ("POST", "/auth/register"): ({"json": REGISTRATION}, 201, TokenResponse),
    ("POST", "/auth/login"): (
        {"json": {"email": REGISTRATION["email"], "password": REGISTRATION["password"]}},
        200,
        TokenResponse,
    ),
    ("GET", "/auth/me"): ({}, 200, UserResponse),
    ("PUT", "/auth/profile"): (
        {
            "json": {
                "monthly_income": 4200.0,
                "savings_goal": 500.0,
                "risk_tolerance": "low",
                "financial_goals": ["emergency fund", "house"],
            }
        },
        200,
        Message,
    ),
    ("POST", "/auth/refresh"): ({}, 200, TokenResponse),
    ("GET", "/financial/wallet"): ({}, 200, WalletResponse),
    ("POST", "/financial/transactions"): (
        {
            "json": {
                "amount": -12.5,
                "category": "groceries",
                "description": "Bread and milk",
                "merchant_name": "Corner Market",
                "location_city": "Leeds",
                "location_country": "UK",
            }
        },
        201,
        TransactionResponse,
    ),
    ("GET", "/financial/transactions"): (
        {"params": {"limit": 10, "days": 30, "category": "groceries", "transaction_type": "debit"}},
        200,
        list[TransactionResponse],
    ),
    ("GET", "/financial/analytics/spending-by-category"): (
        {"params": {"days": 30}},
        200,
        list[SpendingAnalytics],
    ),
    ("GET", "/financial/health-summary"): ({}, 200, FinancialHealthSummary),
    ("GET", "/financial/balance-history"): ({"params": {"days": 30}}, 200, BalanceHistory),
    ("GET", "/financial/monthly-summary"): (
        {"params": {"year": 2026, "month": 11}},
        200,
        MonthlySummary,
    ),
    ("GET", "/financial/transaction/{transaction_id}"): ({}, 200, TransactionResponse),
    ("GET", "/financial/categories"): ({}, 200, Categories),
    ("GET", "/financial/spending-patterns"): ({"params": {"days": 30}}, 200, SpendingPatterns),
    ("GET", "/financial/category-preferences"): ({}, 200, CategoryPreferences),
    ("GET", "/financial/financial-personality"): ({}, 200, FinancialPersonality),
    ("GET", "/financial/peer-comparison"): ({}, 200, PeerComparison),
    ("POST", "/financial/track-transaction-event"): (
        {"params": {"transaction_id": "{transaction_id}", "event_type": "view"}},
        200,
        TrackedEvent,
    ),
    ("GET", "/coaching/recommendation"): ({}, 200, AIRecommendation),
    ("GET", "/coaching/financial-state"): ({}, 200, FinancialState),
    ("GET", "/coaching/model-info"): ({}, 200, dict[str, Any]),
    ("GET", "/coaching/health"): ({}, 200, dict[str, Any]),
    ("GET", "/coaching/actions"): ({}, 200, Actions),
    ("GET", "/coaching/history"): ({"params": {"limit": 20, "offset": 0}}, 200, History),
    ("POST", "/coaching/feedback"): (
        {
            "json": {
                "recommendation_id": "{recommendation_id}",
                "helpful": True,
                "feedback_text": "Useful",
            }
        },
        200,
        FeedbackAnswer,
    ),
    ("GET", "/coaching/insights"): ({}, 200, Insights),
    ("GET", "/coaching/enhanced-recommendation"): ({}, 200, EnhancedAIRecommendation),
    ("GET", "/coaching/user-segment"): ({}, 200, UserSegmentInfo),
    ("GET", "/coaching/segment-insights"): ({}, 200, SegmentInsights),
    ("GET", "/coaching/segment-comparison"): ({}, 200, SegmentComparison),
    ("POST", "/coaching/refresh-segment"): ({}, 200, RefreshSegment),
    ("GET", "/coaching/spending-prediction"): ({}, 200, SpendingPrediction),
    ("POST", "/coaching/goal-probability"): (
        {"json": {"goal_amount": 1500.0, "timeline_days": 180}},
        200,
        GoalAchievementProbability,
    ),
    ("GET", "/coaching/financial-forecast"): ({"params": {"days": 30}}, 200, FinancialForecast),
    ("GET", "/coaching/behavioral-insights"): ({}, 200, BehaviorSummary),
    ("GET", "/coaching/behavioral-events"): (
        {"params": {"days": 7, "event_type": "page_view"}},
        200,
        BehaviorAggregate,
    ),
    ("GET", "/coaching/behavior-changes"): ({}, 200, BehaviorChanges),
    ("GET", "/coaching/enhanced-health"): ({}, 200, dict[str, Any]),
    ("POST", "/auth/logout"): ({}, 200, Message),
    ("DELETE", "/auth/account"): ({}, 200, Message),
}
_DECORATOR = re.compile(r'@router\.(get|post|put|delete|patch)\("([^"]+)"')


def original_routes() -> set[tuple[str, str]]:
    """(method, path) of every route in the original routers, continuous learning aside."""
    routes = set()
    for name, prefix in (("auth", "/auth"), ("financial", "/financial"), ("coaching", "/coaching")):
        for method, path in _DECORATOR.findall((ROUTERS / f"{name}.py").read_text()):
            if not path.startswith("/continuous-learning"):
                routes.add((method.upper(), prefix + path))
    return routes


def test_the_contract_table_covers_every_original_route() -> None:
    assert ROUTERS.is_dir(), f"the original app is expected at {ROUTERS}"
    assert set(ROUTES) == original_routes()


def test_every_original_route_is_in_the_openapi_document(client_app_spec: dict[str, Any]) -> None:
    served = {(m.upper(), p) for p, item in client_app_spec["paths"].items() for m in item}
    assert set(ROUTES) <= served, sorted(set(ROUTES) - served)


@pytest.fixture
def client_app_spec() -> dict[str, Any]:
    from fincoach.http.app import create_app
    from tests.conftest import test_settings

    return create_app(test_settings("sqlite+aiosqlite:///:memory:")).openapi()


async def test_every_original_route_answers_the_original_shape(client, clean_engine, settings):
    """Each route called as the original's clients call it (a user with history and segment
    peers, so that every answer is a full one), in an order where each has what it needs."""
    await load_recent_users(clean_engine, settings, users=12, weeks=12, seed=41)
    for i in range(12):  # segment peers for the comparisons
        token = await client.post(
            "/auth/token",
            data={"username": f"demo{i + 1}@demo.fincoach.example", "password": "demo-password"},
        )
        peer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        assert (await client.get("/coaching/user-segment", headers=peer)).status_code == 200
    ids: dict[str, str] = {}
    headers: dict[str, str] = {}
    checked = []
    for (method, path), (request, status, model) in ROUTES.items():
        url = path.format(**ids) if "{" in path else path
        kwargs = _fill(request, ids)
        r = await client.request(method, url, headers=headers, **kwargs)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text[:300]}"
        body = TypeAdapter(model).validate_json(r.text)
        checked.append((method, path))
        if path == "/auth/register":
            headers = {"Authorization": f"Bearer {body.access_token}"}
        elif path == "/financial/transactions" and method == "POST":
            ids["transaction_id"] = body.id
        elif path == "/coaching/recommendation":
            ids["recommendation_id"] = str(r.json()["id"])
    assert checked == list(ROUTES)
    # The account is gone with everything it owned: its token names nobody any more.
    assert (await client.get("/auth/me", headers=headers)).status_code == 401


def _fill(request: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    def fill(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
            return ids[value[1:-1]]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    return {k: fill(v) for k, v in request.items()}


@pytest.mark.parametrize(
    ("model", "answer"),
    [
        (
            UserResponse,
            {
                "id": 7,
                "email": "a@b.c",
                "first_name": "A",
                "last_name": "B",
                "created_at": "2026-01-01T00:00:00Z",
                "is_active": True,
            },
        ),
        (
            UserResponse,
            {
                "id": "7",
                "email": "a@b.c",
                "firstName": "A",
                "last_name": "B",
                "created_at": "2026-01-01T00:00:00Z",
                "is_active": True,
            },
        ),
        (
            SpendingAnalytics,
            {"category": "x", "total_amount": "5.00", "transaction_count": "2", "percentage": 10.0},
        ),
        (
            AIRecommendation,
            {
                "action_id": 1,
                "action_type": "spending_alert",
                "recommendation": "r",
                "confidence": "0.5",
                "state_summary": {},
                "generated_at": "2026-01-01T00:00:00Z",
            },
        ),
    ],
    ids=["id as a number", "renamed field", "count as a string", "confidence as a string"],
)
def test_the_contract_refuses_wrong_types_and_renamed_fields(model: Any, answer: Any) -> None:
    """The checker itself: what the contract must catch, it catches."""
    import json

    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        TypeAdapter(model).validate_json(json.dumps(answer))
