"""`fincoach db`: migrate and verify the schema, rebuild the feature store."""

from __future__ import annotations

from typing import Annotated

import typer

from fincoach.cli.common import DatabaseUrl, database_url_of, fail

app = typer.Typer(
    help="Database schema: migrate and verify; the feature store's aggregates.",
    no_args_is_help=True,
)


@app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
    database_url: DatabaseUrl = None,
) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from fincoach.db.migrate import upgrade

    url = database_url_of(database_url)
    upgrade(url, revision)
    typer.echo(f"upgraded to {revision}")


@app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision: 'base', '-1', or an id")],
    database_url: DatabaseUrl = None,
) -> None:
    """Revert migrations down to REVISION ('base' drops every table)."""
    from fincoach.db.migrate import downgrade

    downgrade(database_url_of(database_url), revision)
    typer.echo(f"downgraded to {revision}")


@app.command("check")
def db_check(database_url: DatabaseUrl = None) -> None:
    """Verify every table, the seven named indexes and the feature store's triggers exist; exit 1
    and name what is missing."""
    from fincoach.db.migrate import check

    report = check(database_url_of(database_url))
    typer.echo(f"revision: {report.revision or 'none'} (head: {report.head})")
    if report.revision != report.head:
        typer.echo("  not at head: run `fincoach db upgrade`")
    for table in report.missing_tables:
        typer.echo(f"  missing table: {table}")
    for index in report.missing_indexes:
        typer.echo(f"  missing index: {index}")
    for trigger in report.missing_triggers:
        typer.echo(f"  missing trigger: {trigger} (the feature store is not kept current)")
    if not report.ok:
        fail("schema check failed")
    typer.echo("schema ok: all tables, indexes and triggers present")


@app.command("backfill-features")
def db_backfill_features(
    check: Annotated[
        bool,
        typer.Option("--check", help="Only compare the aggregates with the rows; write nothing"),
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Rebuild the feature store's per-user aggregates (daily transactions and events, totals)
    from the rows, a chunk of users per transaction; writes of rows wait for each chunk. With
    --check, exit 1 when any user's aggregates differ from their rows."""
    import asyncio

    from tqdm import tqdm

    from fincoach.db.engine import make_engine
    from fincoach.db.feature_store import rebuild

    async def run() -> None:
        engine = make_engine(database_url_of(database_url))
        try:
            with tqdm(
                unit="user", disable=quiet, desc="checking" if check else "rebuilding"
            ) as bar:
                report = await rebuild(engine, check_only=check, progress=bar.update)
        finally:
            await engine.dispose()
        differing = report.differing_users
        shown = ", ".join(map(str, differing[:20])) + (" ..." if len(differing) > 20 else "")
        if check:
            typer.echo(f"checked {report.users} users: {len(differing)} differ from their rows")
            if differing:
                typer.echo(f"  users: {shown}")
                fail("aggregates differ: run `fincoach db backfill-features`")
            return
        rows = ", ".join(f"{n} {table}" for table, n in sorted(report.rows.items()))
        typer.echo(f"rebuilt {report.users} users ({rows}); {len(differing)} had differed")
        if differing:
            typer.echo(f"  users: {shown}")

    asyncio.run(run())
