"""The original backend's tests/test_financial.py."""

from __future__ import annotations


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_get_wallet(client, authenticated_user) -> None:
    response = await client.get("/financial/wallet", headers=_auth(authenticated_user))
    assert response.status_code == 200
    data = response.json()
    assert "balance" in data
    assert "currency" in data
    assert data["currency"] == "USD"
    assert float(data["balance"]) == 1000.0  # Default starting balance


async def test_create_transaction(client, authenticated_user) -> None:
    transaction_data = {
        "amount": -50.0,
        "category": "groceries",
        "description": "Weekly grocery shopping",
        "merchant_name": "Local Grocery Store",
    }
    response = await client.post(
        "/financial/transactions", json=transaction_data, headers=_auth(authenticated_user)
    )
    assert response.status_code == 201
    data = response.json()
    assert float(data["amount"]) == 50.0  # Amount is stored as positive
    assert data["transaction_type"] == "debit"
    assert data["category"] == "groceries"
    assert float(data["balance_after"]) == 950.0  # 1000 - 50


async def test_insufficient_funds(client, authenticated_user) -> None:
    transaction_data = {
        "amount": -2000.0,  # More than the 1000 starting balance
        "category": "shopping",
        "description": "Expensive purchase",
    }
    response = await client.post(
        "/financial/transactions", json=transaction_data, headers=_auth(authenticated_user)
    )
    assert response.status_code == 400


async def test_get_transactions(client, authenticated_user) -> None:
    transactions = [
        {"amount": -25.0, "category": "groceries", "description": "Groceries 1"},
        {"amount": -15.0, "category": "dine_out", "description": "Lunch"},
        {"amount": 100.0, "category": "income", "description": "Freelance work"},
    ]
    for transaction in transactions:
        await client.post(
            "/financial/transactions", json=transaction, headers=_auth(authenticated_user)
        )
    response = await client.get("/financial/transactions", headers=_auth(authenticated_user))
    assert response.status_code == 200
    data = response.json()
    assert len(data) == 3
    assert data[0]["description"] == "Freelance work"  # Most recent first


async def test_spending_analytics(client, authenticated_user) -> None:
    transactions = [
        {"amount": -30.0, "category": "groceries", "description": "Groceries 1"},
        {"amount": -20.0, "category": "groceries", "description": "Groceries 2"},
        {"amount": -15.0, "category": "dine_out", "description": "Restaurant"},
    ]
    for transaction in transactions:
        await client.post(
            "/financial/transactions", json=transaction, headers=_auth(authenticated_user)
        )
    response = await client.get(
        "/financial/analytics/spending-by-category", headers=_auth(authenticated_user)
    )
    assert response.status_code == 200
    data = response.json()
    assert len(data) >= 2  # At least groceries and dine_out
    groceries_data = next((item for item in data if item["category"] == "groceries"), None)
    assert groceries_data is not None
    assert float(groceries_data["total_amount"]) == 50.0  # 30 + 20
    assert groceries_data["transaction_count"] == 2


async def test_financial_health_summary(client, authenticated_user) -> None:
    response = await client.get("/financial/health-summary", headers=_auth(authenticated_user))
    assert response.status_code == 200
    data = response.json()
    assert "current_balance" in data
    assert "weekly_spending" in data
    assert "weekly_income" in data
    assert "savings_rate" in data
    assert "daily_spending_avg" in data


async def test_transaction_categories(client) -> None:
    response = await client.get("/financial/categories")
    assert response.status_code == 200
    data = response.json()
    assert "categories" in data
    assert len(data["categories"]) > 0
    category_values = [cat["value"] for cat in data["categories"]]
    assert "groceries" in category_values
