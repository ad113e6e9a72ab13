"""Settings read from the environment (prefix ``FINCOACH_``).

Read them inside a process that serves (a replica's ``__init__``, the CLI command), never at
import time: ``get_settings()`` is cached per process.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The secret earlier versions shipped as their default. It is public (it is in this file and in
# the repository's history), so every environment refuses it: a token signed with it is worth
# nothing here.
DEV_JWT_SECRET = "fincoach-dev-secret-change-me-0123456789abcdef"
MIN_SECRET_LENGTH = 32


def default_secret_file() -> Path:
    """Where a development installation keeps its generated token secret."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fincoach" / "jwt_secret"


def load_or_create_secret(path: Path) -> str:
    """The secret stored at ``path``, made (random, mode 0600) on first use.

    Made under a temporary name and published with a hard link, which fails when another
    process got there first: replicas starting together all read the same secret."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48) + "\n")
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    if path.stat().st_mode & 0o077:
        raise ValueError(f"{path} holds the token secret but others may read it: chmod 600 {path}")
    secret = path.read_text().strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"{path} holds a secret shorter than {MIN_SECRET_LENGTH} characters")
    return secret


# The original FinCoach web client's development servers (Vite on 5173/5174, CRA on 3000).
DEV_ORIGINS = tuple(
    f"http://{host}:{port}" for host in ("localhost", "127.0.0.1") for port in (5173, 5174, 3000)
)


def normalize_database_url(url: str) -> str:
    """The async-driver form of a database URL (``postgresql://`` becomes asyncpg's)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.split(":///", 1)[1]
    if not (url.startswith("postgresql+asyncpg://") or url.startswith("sqlite+aiosqlite://")):
        raise ValueError("database_url must be postgresql+asyncpg://... or sqlite+aiosqlite:///...")
    return url


class Settings(BaseSettings):
    """Infrastructure and secrets. Sizing and model versions live in serve_config.yaml."""

    model_config = SettingsConfigDict(
        env_prefix="FINCOACH_", env_file=None, extra="ignore", frozen=True
    )

    env: Literal["development", "test", "production"] = "development"
    database_url: str = Field(
        default="sqlite+aiosqlite:///./fincoach.db",
        validation_alias=AliasChoices("FINCOACH_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy async URL: sqlite+aiosqlite:///... or postgresql+asyncpg://...",
    )
    database_pool_size: int = Field(default=5, ge=1, le=100)
    model_dir: Path = Path("./artifacts")

    # Unset: production refuses to start; development and tests use a secret generated once
    # per installation and kept in ``jwt_secret_file`` (mode 0600).
    jwt_secret: SecretStr = SecretStr("")
    jwt_secret_file: Path = Field(default_factory=default_secret_file)
    # The operations token: /health details, /models and /jobs answer only a caller sending it
    # (X-Ops-Token, or Authorization: Bearer); anyone else learns liveness only. Unset: nobody.
    ops_token: SecretStr = SecretStr("")
    jwt_issuer: str = "fincoach"
    jwt_audience: str = "fincoach-api"
    token_ttl_minutes: int = Field(default=60, ge=1, le=60 * 24 * 30)
    # How long a user found active is trusted without reading the row again: an account
    # deactivated or deleted elsewhere is refused within this time (0: read on every request).
    active_user_ttl_s: float = Field(default=2.0, ge=0, le=60)
    # argon2id cost; tests lower the memory so that they run fast, production keeps the default.
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65536, ge=1024)
    # CPU-heavy work (argon2, scrubbing event batches) runs in threads, this many at once per
    # process: a burst of logins queues there instead of holding the event loop (and each
    # argon2 hash holds password_hash_memory_kib while it runs).
    cpu_offload_concurrency: int = Field(default=1, ge=1, le=64)

    # Browser origins allowed to call the API. Unset: the original FinCoach web client's
    # development servers in development, none otherwise (production sets its own).
    cors_origins: Annotated[list[str] | None, NoDecode] = None
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    # Rate limits and login throttling (api/ratelimit.py), in memory per process: each ingress
    # replica counts on its own. 0 turns a limit off.
    rate_limit_per_minute: int = Field(default=600, ge=0)
    rate_limit_burst: int = Field(default=100, ge=0)
    login_max_failures: int = Field(default=5, ge=0)
    login_max_failures_per_client: int = Field(default=20, ge=0)
    login_failure_window_minutes: int = Field(default=15, ge=1)
    # Logins from one address checked at once (each costs an argon2 hash); more in parallel
    # are answered 429 at once, so that a burst from one client cannot take every core.
    login_max_concurrent_per_client: int = Field(default=4, ge=0)
    # Failed logins are throttled per (e-mail, client address) pair: after login_max_failures
    # the pair waits 1 s, then 2, 4, ... up to this many seconds before each new try, so a
    # guesser slows down while the owner, elsewhere, still signs in.
    login_backoff_max_s: float = Field(default=900.0, ge=1)
    # Addresses that stand for many clients: a proxy in front of the app that does not say whose
    # request it forwards (Serve's HAProxy reaches the replicas from 127.0.0.1 and sends no
    # X-Forwarded-For). Per-address limits skip them, or one client's failed logins would lock
    # every client out; per-user and per-e-mail limits still apply. Add a remote proxy's address
    # (a multi-node cluster's head node) here; empty: every address is limited.
    proxy_addresses: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"]
    )
    # Peers whose X-Forwarded-For is believed: from them, the client is the rightmost address
    # in the header that is not itself one of them. From anyone else the header is ignored
    # (a client could name any address). Only list a proxy that replaces the header with the
    # address it saw (``fincoach serve`` makes its HAProxy do so and sets this to loopback).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Per-user quotas (0: off) and the cap on what one user teaches the shared bandit: at most
    # this many feedbacks per user and segment in 24 hours count, all strategies together (the
    # rest are stored and answered, and teach nothing).
    quota_goals_per_user: int = Field(default=100, ge=0)
    quota_events_per_day: int = Field(default=10_000, ge=0)
    quota_transactions_per_day: int = Field(default=1_000, ge=0)
    bandit_feedback_per_user_per_day: int = Field(default=3, ge=0)

    # Prediction cache: "db" (the prediction_cache table, default), "off", or redis://...
    cache_url: str = Field(default="db", description="db, off, or a redis:// URL")
    cache_redis_prefix: str = Field(default="fincoach:pc", pattern=r"^[A-Za-z0-9:_.-]{1,64}$")
    cache_ttl_spending_s: float = Field(default=24 * 3600, gt=0)
    cache_ttl_goal_s: float = Field(default=6 * 3600, gt=0)
    cache_ttl_segment_s: float = Field(default=24 * 3600, gt=0)
    cache_ttl_recommendation_s: float = Field(default=3600, gt=0)

    # Move the start-up heap out of the garbage collector's full scans once the app has started
    # (fincoach/observability/heap.py): no 100+ ms collection pauses in the middle of requests.
    gc_freeze_on_start: bool = True

    # Background jobs (segments, evaluation, cache cleanup and warming) run by the serving app.
    jobs_enabled: bool = True
    jobs_tick_s: float = Field(default=30.0, gt=0)

    # Behavioral events: group commit per ingress replica (1 = commit per event).
    event_batch_size: int = Field(default=10, ge=1, le=1000)
    event_batch_delay_ms: float = Field(default=5.0, gt=0, le=1000)
    # Page views (nobody waits for them) may wait this long for others to share their commit;
    # queued ones are flushed on graceful shutdown, lost on a crash (as before, for less time).
    event_tracking_delay_ms: float = Field(default=100.0, gt=0, le=1000)

    # Logs of the in-process app (under Serve, serve_config.yaml's logging_config applies).
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("cors_origins", "proxy_addresses", "trusted_proxies", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # Accept "a,b" as well as a JSON list: the comma form is what people type in a shell.
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                import json

                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        return normalize_database_url(url)

    @model_validator(mode="before")
    @classmethod
    def _a_private_secret(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        raw = data.get("jwt_secret")
        secret = raw.get_secret_value() if isinstance(raw, SecretStr) else str(raw or "")
        if secret == DEV_JWT_SECRET:
            raise ValueError(
                "FINCOACH_JWT_SECRET is the public default of earlier versions; unset it "
                "(development makes its own) or set a private value"
            )
        if secret:
            if data.get("env") == "production" and len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(
                    "FINCOACH_JWT_SECRET must be set to a private value of at least "
                    f"{MIN_SECRET_LENGTH} characters when FINCOACH_ENV=production"
                )
            return data
        if data.get("env") == "production":
            raise ValueError(
                "FINCOACH_JWT_SECRET must be set when FINCOACH_ENV=production (at least "
                f"{MIN_SECRET_LENGTH} characters; e.g. python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))')"
            )
        path = Path(data.get("jwt_secret_file") or default_secret_file()).expanduser()
        return {**data, "jwt_secret": load_or_create_secret(path)}

    @property
    def allowed_origins(self) -> list[str]:
        """The CORS origins: as set, else the web client's dev servers in development."""
        if self.cors_origins is not None:
            return self.cors_origins
        return list(DEV_ORIGINS) if self.env == "development" else []

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
