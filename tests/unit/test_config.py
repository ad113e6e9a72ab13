"""Settings: defaults, URL normalisation, and production refusing the development secret."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import jwt
import pytest
from pydantic import ValidationError

from fincoach.config import DEV_JWT_SECRET, MIN_SECRET_LENGTH, Settings
from fincoach.errors import InvalidToken
from fincoach.usecases.passwords import create_access_token, decode_access_token


@pytest.fixture(autouse=True)
def _own_secret_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "cfg" / "jwt_secret"
    monkeypatch.setenv("FINCOACH_JWT_SECRET_FILE", str(path))
    monkeypatch.delenv("FINCOACH_JWT_SECRET", raising=False)
    return path


def test_defaults_are_the_embedded_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FINCOACH_DATABASE_URL", "DATABASE_URL", "FINCOACH_ENV"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.database_url == "sqlite+aiosqlite:///./fincoach.db" and s.is_sqlite
    assert s.jwt_secret.get_secret_value() != DEV_JWT_SECRET


def test_dev_secret_is_generated_once_private_and_reused(
    monkeypatch: pytest.MonkeyPatch, _own_secret_file: Path
) -> None:
    monkeypatch.delenv("FINCOACH_ENV", raising=False)
    first = Settings().jwt_secret.get_secret_value()
    assert len(first) >= MIN_SECRET_LENGTH and first != DEV_JWT_SECRET
    assert stat.S_IMODE(_own_secret_file.stat().st_mode) == 0o600
    assert Settings().jwt_secret.get_secret_value() == first  # the next start reuses it
    # Another installation (another file) gets another secret.
    monkeypatch.setenv("FINCOACH_JWT_SECRET_FILE", str(_own_secret_file.parent / "other"))
    assert Settings().jwt_secret.get_secret_value() != first


def test_a_secret_file_others_can_read_is_refused(
    monkeypatch: pytest.MonkeyPatch, _own_secret_file: Path
) -> None:
    Settings()
    _own_secret_file.chmod(0o644)
    with pytest.raises(ValidationError, match="chmod 600"):
        Settings()


def test_the_old_public_default_is_refused_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("development", "test", "production"):
        monkeypatch.setenv("FINCOACH_ENV", env)
        monkeypatch.setenv("FINCOACH_JWT_SECRET", DEV_JWT_SECRET)
        with pytest.raises(ValidationError, match="public default"):
            Settings()


def test_tokens_signed_with_the_old_default_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINCOACH_ENV", raising=False)
    settings = Settings()
    forged = jwt.encode(
        {
            "sub": "1",
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
            "iat": int(time.time()),
            "exp": int(time.time()) + 600,
        },
        DEV_JWT_SECRET,
        algorithm="HS256",
    )
    with pytest.raises(InvalidToken):
        decode_access_token(forged, settings)
    assert decode_access_token(create_access_token(1, settings), settings).user_id == 1


def test_plain_urls_get_async_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    assert Settings().database_url == "postgresql+asyncpg://u@h/db"
    with pytest.raises(ValidationError, match="database_url"):
        Settings(database_url="mysql://u@h/db")


def test_production_refuses_the_dev_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINCOACH_ENV", "production")
    monkeypatch.delenv("FINCOACH_JWT_SECRET", raising=False)
    with pytest.raises(ValidationError, match="FINCOACH_JWT_SECRET must be set"):
        Settings()
    monkeypatch.setenv("FINCOACH_JWT_SECRET", "short")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("FINCOACH_JWT_SECRET", "p" * 40)
    assert Settings().env == "production"


def test_cors_origins_accept_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINCOACH_CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]
