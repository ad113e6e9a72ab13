"""Arguments of the Serve application (`args:` in serve_config.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class AppArgs(BaseModel):
    """What the application graph is built from. Secrets and the database URL come from the
    environment (Settings), so the same config file serves every environment."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_dir: str | None = Field(
        default=None, description="Registry root (default: FINCOACH_MODEL_DIR, ./artifacts)"
    )
    bandit_algorithm: Literal["thompson", "ucb1", "epsilon_greedy"] = "thompson"
    model_timeout_s: float = Field(default=2.0, gt=0, le=30)
    recommender_batching: bool = Field(
        default=False,
        description="Send Q-value requests through the recommender's @serve.batch method "
        "(bench/RESULTS.md has the measurement behind the default)",
    )
    q_value_coalescing: bool = Field(
        default=True,
        description="Send the Q-values that concurrent requests of an ingress replica ask while "
        "a call is out in one call to the recommender (no wait when idle)",
    )
    bandit_refresh_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="Each ingress replica chooses strategies from a local copy of the bandit's "
        "posterior at most this old (0: ask the actor on every request)",
    )
    database_url: str | None = Field(
        default=None,
        description="Override of FINCOACH_DATABASE_URL for this application (for two apps on one "
        "cluster, e.g. the test suite's SQLite and PostgreSQL runs); keep passwords in the env",
    )
    bandit_actor: str = Field(
        default="bandit-stats",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Name of the detached bandit actor; one per database",
    )

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str | None) -> str | None:
        from fincoach.config import normalize_database_url

        return normalize_database_url(url) if url else None

    def resolved_model_dir(self) -> str:
        from pathlib import Path

        from fincoach.config import get_settings

        return str(Path(self.model_dir or get_settings().model_dir).resolve())
