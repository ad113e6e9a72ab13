"""`fincoach demo-data`, `train` and `evaluate`: simulated users, models and their scores."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from fincoach.cli.common import DatabaseUrl, ModelDir, database_url_of, fail, model_dir_of


def last_monday(today: date | None = None) -> date:
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=today.weekday())


async def load_demo(
    url: str, users: int, weeks: int, seed: int, start: date, reset: bool, quiet: bool
) -> None:
    from tqdm import tqdm

    from fincoach.config import get_settings
    from fincoach.db.engine import make_engine
    from fincoach.training.demo_data import (
        DEMO_PASSWORD,
        count_demo_users,
        delete_demo_users,
        load_population,
        total_rows,
    )
    from fincoach.training.simulator import SimConfig, simulate
    from fincoach.usecases.passwords import hash_password

    engine = make_engine(url)
    try:
        existing = await count_demo_users(engine)
        if existing and not reset:
            fail(f"{existing} demo users already exist; pass --reset to replace them")
        if existing:
            removed = await delete_demo_users(engine)
            typer.echo(f"removed {removed} demo users and their data")
        population = simulate(SimConfig(n_users=users, n_weeks=weeks, seed=seed, start=start))
        expected = total_rows(population) + int(sum(u.engagement * 4 for u in population.users))
        with tqdm(total=expected, unit="row", disable=quiet, desc="loading") as bar:
            report = await load_population(
                engine,
                population,
                hashed_password=hash_password(DEMO_PASSWORD, get_settings()),
                progress=bar.update,
            )
    finally:
        await engine.dispose()
    typer.echo(
        f"loaded {report.users} users, {report.goals} goals, {report.transactions} transactions, "
        f"{report.events} events in {report.seconds:.1f} s "
        f"({report.rows / max(report.seconds, 1e-9):,.0f} rows/s)"
    )
    typer.echo(f"log in as demo1@demo.fincoach.example with password '{DEMO_PASSWORD}'")


def demo_data(
    users: Annotated[int, typer.Option(min=1, max=100_000, help="Number of users")] = 200,
    weeks: Annotated[int, typer.Option(min=1, max=520, help="Weeks of history")] = 26,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same data")] = 7,
    start: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="First Monday (default: history ends today)"),
    ] = None,
    reset: Annotated[bool, typer.Option(help="Replace existing demo users")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Simulate users' finances and write them into the database (migrating it first)."""
    from fincoach.db.migrate import upgrade

    first = start.date() if start else last_monday() - timedelta(weeks=weeks)
    if first.weekday() != 0:
        raise typer.BadParameter(f"{first} is a {first:%A}; --start must be a Monday")
    url = database_url_of(database_url)
    upgrade(url)
    asyncio.run(load_demo(url, users, weeks, seed, first, reset, quiet))


def train_cmd(
    users: Annotated[int | None, typer.Option(min=50, help="Simulated training users")] = None,
    weeks: Annotated[int | None, typer.Option(min=20, max=520, help="Weeks of history")] = None,
    seed: Annotated[int, typer.Option(help="Simulation seed (held-out users use seed+1)")] = 42,
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Train only these (repeatable): segmentation, forecast, "
            "goal_probability, recommender, bandit"
        ),
    ] = None,
    quick: Annotated[
        bool, typer.Option(help="Small, fast run (< 60 s) for demos and tests")
    ] = False,
    model_dir: ModelDir = None,
    database_url: DatabaseUrl = None,
    no_db: Annotated[bool, typer.Option("--no-db", help="Do not write model_performance")] = False,
) -> None:
    """Simulate users, train every model, score each on held-out data beside its peers, and
    write a new registry version of each (plus a model_performance row per model)."""
    import time

    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    from fincoach.db.migrate import upgrade
    from fincoach.training import pipeline
    from fincoach.training.report import markdown, rows_for
    from models.registry import ModelRegistry

    config = pipeline.TrainConfig.quick_config(seed) if quick else pipeline.TrainConfig(seed=seed)
    if users or weeks:
        config = pipeline.TrainConfig(
            users=users or config.users, weeks=weeks or config.weeks, seed=seed, quick=quick
        )
    try:
        selected = pipeline.resolve_selection(only)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--only") from exc
    registry = ModelRegistry(model_dir_of(model_dir))
    started = time.perf_counter()
    with tqdm(total=None, bar_format="{desc} [{elapsed}]", desc="training") as bar:

        def progress(message: str) -> None:
            bar.set_description_str(message)
            bar.update(1)

        # One BLAS thread: on a 2-core machine shared with Serve, oversubscription costs 10x.
        with threadpool_limits(1):
            results = pipeline.run(config, registry, only=selected, progress=progress)
    seconds = time.perf_counter() - started
    rows = [row for result in results for row in rows_for(result.name, result.evaluation)]
    typer.echo(markdown(rows))
    for result in results:
        for artifact, version in result.versions.items():
            typer.echo(f"saved {artifact} {version} (step took {result.seconds:.1f} s)")
    typer.echo(f"trained in {seconds:.1f} s into {registry.root}")
    if not no_db:
        url = database_url_of(database_url)
        upgrade(url)
        asyncio.run(pipeline.record_performance(url, results, config.users))
        typer.echo("model_performance rows written")


def evaluate_cmd(
    model_dir: ModelDir = None,
    markdown_file: Annotated[
        Path | None, typer.Option("--markdown", help="Also write the table to this file")
    ] = None,
    real: Annotated[
        Path | None,
        typer.Option(
            "--real",
            help="A real transaction history (CSV): score the served models on it at rolling "
            "cut-offs, through the snapshot the API builds",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    step: Annotated[int, typer.Option(min=1, max=13, help="Weeks between cut-offs (--real)")] = 2,
) -> None:
    """Print the held-out metrics of the newest version of each model beside its peers, or
    (``--real PATH``) the served models' scores on a real history."""
    from fincoach.training.pipeline import stored_evaluations
    from fincoach.training.report import markdown, rows_for
    from models.registry import ModelRegistry

    registry = ModelRegistry(model_dir_of(model_dir))
    if real is not None:
        from threadpoolctl import threadpool_limits

        from fincoach.training.real_eval import evaluate_real
        from fincoach.training.real_report import markdown as real_markdown

        with threadpool_limits(1):
            result = evaluate_real(real, registry, step_weeks=step)
        table = real_markdown(result)
    else:
        stored = stored_evaluations(registry)
        if not stored:
            fail(f"no trained models in {registry.root}; run `fincoach train` first")
        rows = []
        for step_name, manifest in stored:
            typer.echo(
                f"{step_name}: {manifest.name} {manifest.version} (trained {manifest.created_at})"
            )
            rows += rows_for(step_name, manifest.extra["evaluation"])
        table = markdown(rows)
    typer.echo(table)
    if markdown_file is not None:
        markdown_file.write_text(table + "\n")
        typer.echo(f"written to {markdown_file}")
