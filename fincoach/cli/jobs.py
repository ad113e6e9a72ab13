"""`fincoach jobs`: run a background job now, list the job table."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from fincoach.cli.common import DatabaseUrl, ModelDir, database_url_of, model_dir_of
from fincoach.usecases.context import Context

app = typer.Typer(help="Periodic jobs, run now.", no_args_is_help=True)
T = TypeVar("T")


async def in_context(
    database_url: str | None, model_dir: Path | None, fn: Callable[[Context], Awaitable[T]]
) -> T:
    """Run ``fn(ctx)`` in a use-case context of this process (the same engine, cache and
    in-process models the API would use)."""
    from fincoach.config import Settings
    from fincoach.usecases.context import open_context

    settings = Settings(
        database_url=database_url_of(database_url),
        model_dir=model_dir_of(model_dir),
        jobs_enabled=False,
    )
    async with open_context(settings) as ctx:
        return await fn(ctx)


@app.command("run")
def jobs_run(
    name: Annotated[
        str, typer.Argument(help="Job to run: segments, evaluation, cache_cleanup, cache_warm")
    ],
    model_dir: ModelDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run a background job now, in this process, recorded in the job table like a scheduled
    run (GET /jobs shows it). segments: recompute the segment of users active in 30 days;
    evaluation: score the models on last week, write model_performance; cache_cleanup: delete
    expired cache rows; cache_warm: precompute forecasts of users active in 7 days."""
    from fincoach.jobs.runner import JOBS
    from fincoach.jobs.scheduler import run_now

    if name not in JOBS:
        raise typer.BadParameter(
            f"unknown job {name!r}; jobs: {', '.join(JOBS)}", param_hint="NAME"
        )
    result: dict[str, Any] = asyncio.run(
        in_context(database_url, model_dir, lambda ctx: run_now(ctx, name))
    )
    typer.echo(f"{name}: {result['status']} in {result['seconds']:.2f} s: {result['detail']}")
    if result["status"] != "ok":
        raise typer.Exit(1)


@app.command("list")
def jobs_list(model_dir: ModelDir = None, database_url: DatabaseUrl = None) -> None:
    """Each job's schedule, last run and result, and next run."""
    from fincoach.jobs.scheduler import job_statuses

    for row in asyncio.run(in_context(database_url, model_dir, job_statuses)):
        typer.echo(
            f"{row.name:14} every {row.period_s / 3600:g} h  last: {row.last_status or 'never'}"
            f" {row.last_finished_at or ''}  next: {row.next_run_at}  runs: {row.runs}"
        )
