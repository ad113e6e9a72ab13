"""Programmatic Alembic: upgrade, downgrade, and the schema check behind `fincoach db check`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from fincoach.db.engine import make_engine
from fincoach.db.feature_store import missing_triggers
from fincoach.db.tables import REQUIRED_INDEXES, Base

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("file_template", "%%(year)d-%%(month).2d-%%(day).2d_%%(slug)s")
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


@dataclass
class SchemaReport:
    """What `db check` found: missing tables and indexes, and the applied revision."""

    revision: str | None
    head: str
    missing_tables: list[str] = field(default_factory=list)
    missing_indexes: list[str] = field(default_factory=list)
    missing_triggers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.missing_tables
            and not self.missing_indexes
            and not self.missing_triggers
            and self.revision == self.head
        )


async def check_schema(database_url: str) -> SchemaReport:
    """Compare the live database with the tables, the seven named indexes of the design and the
    feature store's triggers."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head() or ""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:

            def inspect_sync(sync_conn):
                insp = inspect(sync_conn)
                tables = set(insp.get_table_names())
                indexes = {
                    ix["name"]
                    for table in tables
                    for ix in insp.get_indexes(table)
                    if ix.get("name")
                }
                revision = None
                if "alembic_version" in tables:
                    row = sync_conn.exec_driver_sql("SELECT version_num FROM alembic_version")
                    first = row.first()
                    revision = first[0] if first else None
                return tables, indexes, revision

            tables, indexes, revision = await conn.run_sync(inspect_sync)
            triggers = await missing_triggers(conn) if revision is not None else []
    finally:
        await engine.dispose()
    report = SchemaReport(revision=revision, head=head)
    report.missing_tables = sorted(set(Base.metadata.tables) - tables)
    report.missing_indexes = sorted(set(REQUIRED_INDEXES) - indexes)
    report.missing_triggers = triggers
    return report


def check(database_url: str) -> SchemaReport:
    return asyncio.run(check_schema(database_url))
