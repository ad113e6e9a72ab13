"""Password hashing (argon2id, memory-hard) and JWT access tokens (HS256 with iss/aud/exp)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fincoach.config import Settings
from fincoach.errors import InvalidToken

ALGORITHM = "HS256"
CLOCK_LEEWAY_S = 30


@lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)


def hash_password(password: str, settings: Settings) -> str:
    return _hasher(settings.password_hash_time_cost, settings.password_hash_memory_kib).hash(
        password
    )


def verify_password(password: str, hashed: str, settings: Settings) -> bool:
    hasher = _hasher(settings.password_hash_time_cost, settings.password_hash_memory_kib)
    try:
        return hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


# A hash to verify against when the e-mail is unknown, so that a wrong e-mail and a wrong
# password take the same time and an attacker cannot enumerate accounts.
def dummy_hash(settings: Settings) -> str:
    return _dummy(settings.password_hash_time_cost, settings.password_hash_memory_kib)


@lru_cache(maxsize=8)
def _dummy(time_cost: int, memory_kib: int) -> str:
    return _hasher(time_cost, memory_kib).hash(uuid.uuid4().hex)


def create_access_token(user_id: int, settings: Settings, *, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=settings.token_ttl_minutes)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    issued_at: int  # Unix seconds


def decode_access_token(token: str, settings: Settings) -> TokenClaims:
    """The user id and issue time of a valid token; anything else (alg none, wrong key,
    expired) is refused."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            # Replicas on other machines disagree on the time by a little: a token issued by
            # one a second "in the future" of another is still valid there.
            leeway=CLOCK_LEEWAY_S,
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("Token has expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("Token is invalid") from exc
    try:
        return TokenClaims(user_id=int(claims["sub"]), issued_at=int(claims["iat"]))
    except (TypeError, ValueError) as exc:
        raise InvalidToken("Token subject is invalid") from exc
