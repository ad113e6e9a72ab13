"""Settings: defaults, URL normalisation, and production refusing the development secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fincoach.config import DEV_JWT_SECRET, Settings


def test_defaults_are_the_embedded_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FINCOACH_DATABASE_URL", "DATABASE_URL", "FINCOACH_ENV"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.database_url == "sqlite+aiosqlite:///./fincoach.db" and s.is_sqlite
    assert s.jwt_secret.get_secret_value() == DEV_JWT_SECRET


def test_plain_urls_get_async_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    assert Settings().database_url == "postgresql+asyncpg://u@h/db"
    with pytest.raises(ValidationError, match="database_url"):
        Settings(database_url="mysql://u@h/db")


def test_production_refuses_the_dev_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINCOACH_ENV", "production")
    monkeypatch.delenv("FINCOACH_JWT_SECRET", raising=False)
    with pytest.raises(ValidationError, match="FINCOACH_JWT_SECRET"):
        Settings()
    monkeypatch.setenv("FINCOACH_JWT_SECRET", "short")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("FINCOACH_JWT_SECRET", "p" * 40)
    assert Settings().env == "production"


def test_cors_origins_accept_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINCOACH_CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]
