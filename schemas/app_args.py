"""Arguments of the Serve application (`args:` in serve_config.yaml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AppArgs(BaseModel):
    """What the application graph is built from. Secrets and the database URL come from the
    environment (Settings), so the same config file serves every environment."""

    model_config = ConfigDict(extra="forbid")

    model_dir: str | None = None
