"""`fincoach db`: migrate and verify the schema."""

from __future__ import annotations

from typing import Annotated

import typer

from fincoach.cli.common import DatabaseUrl, database_url_of, fail

app = typer.Typer(help="Database schema: migrate and verify.", no_args_is_help=True)


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
    """Verify every table and the seven named indexes exist; exit 1 and name what is missing."""
    from fincoach.db.migrate import check

    report = check(database_url_of(database_url))
    typer.echo(f"revision: {report.revision or 'none'} (head: {report.head})")
    if report.revision != report.head:
        typer.echo("  not at head: run `fincoach db upgrade`")
    for table in report.missing_tables:
        typer.echo(f"  missing table: {table}")
    for index in report.missing_indexes:
        typer.echo(f"  missing index: {index}")
    if not report.ok:
        fail("schema check failed")
    typer.echo("schema ok: all tables and indexes present")
