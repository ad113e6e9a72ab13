"""What the command groups share: the database, model-directory and config options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy async URL (default: FINCOACH_DATABASE_URL or the embedded SQLite file)",
        show_default=False,
    ),
]
# The repository root when running from a checkout: its serve_config.yaml is the default.
# The repository root when running from a checkout: its serve_config.yaml is the default.
CHECKOUT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = CHECKOUT / "serve_config.yaml"
ModelDir = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Model registry root (default: FINCOACH_MODEL_DIR)"),
]
ConfigFile = Annotated[
    Path,
    typer.Option(
        "--config",
        envvar="FINCOACH_SERVE_CONFIG",
        help="Serve config file (default: the checkout's serve_config.yaml)",
    ),
]


def database_url_of(override: str | None) -> str:
    """The --database-url given, else the configured one (async-driver form)."""
    from fincoach.config import Settings, get_settings

    if override:
        return Settings(database_url=override).database_url
    return get_settings().database_url


def fail(message: str) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def model_dir_of(override: Path | None) -> Path:
    """The --model-dir given, else the configured one, absolute."""
    from fincoach.config import get_settings

    return (override or get_settings().model_dir).resolve()


def existing_config(config: Path) -> Path:
    """The Serve config file, or a clear failure naming the option and the variable."""
    if not config.is_file():
        fail(f"no Serve config at {config}: pass --config PATH or set FINCOACH_SERVE_CONFIG")
    return config
