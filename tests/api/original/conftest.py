"""The original FinCoach backend's own API tests (backend/tests of the original app), ported to
run over HTTP against this backend, on SQLite and PostgreSQL. Each test keeps the original's
requests and assertions; where one had to change, a comment starting ``ADAPTED:`` says why (a
test that contradicts the original routers, or a setup that wrote the original's own tables)."""

from __future__ import annotations

import uuid

import httpx
import pytest


@pytest.fixture
async def authenticated_user(client: httpx.AsyncClient) -> str:
    """Create and return authenticated user token (the original fixture)."""
    unique_email = f"financial-{uuid.uuid4().hex[:8]}@example.com"
    response = await client.post(
        "/auth/register",
        json={
            "email": unique_email,
            "password": "TestPass123",
            "first_name": "Financial",
            "last_name": "User",
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["access_token"])
