"""The original backend's tests/test_coaching.py (class TestCoachingEndpoints)."""

from __future__ import annotations

import uuid

import httpx
import pytest

EMAIL, PASSWORD = "test@coaching.com", "Password123"


@pytest.fixture
async def coach(client: httpx.AsyncClient) -> dict[str, object]:
    """The original setup_method: a test user and one stored recommendation.

    ADAPTED: the original inserted the user (with an unusable password hash, so its login
    failed and every test ran without a token) and a recommendation row into its own tables.
    Here the user registers through the API and the recommendation is one the API made."""
    r = await client.post(
        "/auth/register",
        json={"email": EMAIL, "password": PASSWORD, "first_name": "Test", "last_name": "User"},
    )
    assert r.status_code == 201, r.text
    headers = await _auth_headers(client)
    recommendation = await client.get("/coaching/recommendation", headers=headers)
    assert recommendation.status_code == 200, recommendation.text
    return {"headers": headers, "recommendation_id": recommendation.json()["id"]}


async def _auth_headers(client: httpx.AsyncClient) -> dict[str, str]:
    login_response = await client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert login_response.status_code == 200, login_response.text
    return {"Authorization": f"Bearer {login_response.json()['access_token']}"}


async def test_get_recommendation(client, coach) -> None:
    response = await client.get("/coaching/recommendation", headers=coach["headers"])
    assert response.status_code == 200
    data = response.json()
    assert "id" in data
    assert "recommendation_text" in data
    assert "action_type" in data
    assert "confidence_score" in data
    assert "created_at" in data
    assert isinstance(data["confidence_score"], float)
    assert 0 <= data["confidence_score"] <= 1


async def test_get_financial_state(client, coach) -> None:
    response = await client.get("/coaching/financial-state", headers=coach["headers"])
    assert response.status_code == 200
    data = response.json()
    assert "current_balance" in data
    assert "weekly_spending" in data
    assert "savings_rate" in data
    assert "financial_health_score" in data
    assert isinstance(data["current_balance"], int | float)
    assert isinstance(data["financial_health_score"], int | float)
    assert 0 <= data["financial_health_score"] <= 100


async def test_get_recommendation_history_empty(client, coach) -> None:
    response = await client.get("/coaching/history", headers=coach["headers"])
    assert response.status_code == 200
    data = response.json()
    assert "recommendations" in data
    assert "total" in data
    assert "page" in data
    assert "limit" in data
    assert isinstance(data["recommendations"], list)
    assert data["total"] >= 0
    assert data["page"] == 1
    assert data["limit"] == 20


async def test_get_recommendation_history_with_pagination(client, coach) -> None:
    response = await client.get("/coaching/history?limit=5&offset=0", headers=coach["headers"])
    assert response.status_code == 200
    data = response.json()
    assert data["limit"] == 5
    assert data["page"] == 1
    assert len(data["recommendations"]) <= 5


async def test_submit_feedback_helpful(client, coach) -> None:
    feedback_data = {
        "recommendation_id": str(coach["recommendation_id"]),
        "helpful": True,
        "feedback_text": "This recommendation was very helpful!",
    }
    response = await client.post("/coaching/feedback", json=feedback_data, headers=coach["headers"])
    assert response.status_code == 200
    data = response.json()
    assert "message" in data
    assert "feedback_id" in data
    assert data["message"] == "Feedback submitted successfully"


async def test_submit_feedback_not_helpful(client, coach) -> None:
    feedback_data = {
        "recommendation_id": str(coach["recommendation_id"]),
        "helpful": False,
        "feedback_text": "This recommendation was not relevant to me.",
    }
    response = await client.post("/coaching/feedback", json=feedback_data, headers=coach["headers"])
    assert response.status_code == 200
    data = response.json()
    assert data["message"] == "Feedback submitted successfully"


async def test_submit_feedback_legacy_recommendation(client, coach) -> None:
    feedback_data = {
        "recommendation_id": str(uuid.uuid4()),  # Random UUID
        "helpful": True,
        "feedback_text": "Legacy recommendation feedback",
    }
    response = await client.post("/coaching/feedback", json=feedback_data, headers=coach["headers"])
    assert response.status_code == 200
    data = response.json()
    assert data["message"] == "Feedback submitted successfully"


async def test_get_available_actions(client) -> None:
    response = await client.get("/coaching/actions")
    assert response.status_code == 200
    data = response.json()
    assert "actions" in data
    assert isinstance(data["actions"], list)
    assert len(data["actions"]) > 0
    action = data["actions"][0]
    assert "id" in action
    assert "type" in action
    assert "name" in action
    assert "description" in action
    assert "priority" in action
    assert "category" in action


async def test_get_model_info(client) -> None:
    response = await client.get("/coaching/model-info")
    assert response.status_code == 200
    assert isinstance(response.json(), dict)


async def test_check_model_health(client) -> None:
    response = await client.get("/coaching/health")
    assert response.status_code == 200
    assert isinstance(response.json(), dict)


async def test_get_financial_insights(client, coach) -> None:
    response = await client.get("/coaching/insights", headers=coach["headers"])
    assert response.status_code == 200
    data = response.json()
    assert "insights" in data
    assert "generated_at" in data
    assert isinstance(data["insights"], list)


async def test_unauthorized_access(client) -> None:
    response = await client.get("/coaching/recommendation")
    assert response.status_code == 401
    response = await client.get("/coaching/financial-state")
    assert response.status_code == 401
    response = await client.get("/coaching/history")
    assert response.status_code == 401
    response = await client.post(
        "/coaching/feedback", json={"recommendation_id": "test-id", "helpful": True}
    )
    assert response.status_code == 401
