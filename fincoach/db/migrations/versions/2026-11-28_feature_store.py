"""The online feature store: per-user aggregates of transactions (per UTC day, category and
direction, and the signed total) and of app events (per UTC day and type), kept current by
triggers in the same transaction as every insert, update or delete, and filled here from the
rows already stored.

A later SQLite batch migration that rebuilds ``transactions`` or ``behavioral_events`` drops
their triggers: it must create them again (``fincoach db verify`` reports them missing).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AggregateMoney = sa.Numeric(18, 2)
LEDGER_KEY = ("user_id", "day", "category", "transaction_type")

# SQLite stores UTC datetimes as naive "YYYY-MM-DD HH:MM:SS.ffffff" text.
SQLITE_TRIGGERS = (
    """
CREATE TRIGGER ledger_days_insert AFTER INSERT ON transactions BEGIN
  INSERT INTO ledger_days (user_id, day, category, transaction_type, amount, n)
  VALUES (NEW.user_id, date(NEW.occurred_at), NEW.category, NEW.transaction_type, NEW.amount, 1)
  ON CONFLICT (user_id, day, category, transaction_type)
  DO UPDATE SET amount = round(amount + excluded.amount, 2), n = n + 1;
  INSERT INTO ledger_totals (user_id, signed_total, n)
  VALUES (NEW.user_id,
          CASE WHEN NEW.transaction_type = 'credit' THEN NEW.amount ELSE -NEW.amount END, 1)
  ON CONFLICT (user_id)
  DO UPDATE SET signed_total = round(signed_total + excluded.signed_total, 2), n = n + 1;
END;
""",
    """
CREATE TRIGGER ledger_days_delete AFTER DELETE ON transactions BEGIN
  UPDATE ledger_days SET amount = round(amount - OLD.amount, 2), n = n - 1
  WHERE user_id = OLD.user_id AND day = date(OLD.occurred_at) AND category = OLD.category
    AND transaction_type = OLD.transaction_type;
  DELETE FROM ledger_days
  WHERE user_id = OLD.user_id AND day = date(OLD.occurred_at) AND category = OLD.category
    AND transaction_type = OLD.transaction_type AND n <= 0;
  UPDATE ledger_totals
  SET signed_total = round(signed_total
        - CASE WHEN OLD.transaction_type = 'credit' THEN OLD.amount ELSE -OLD.amount END, 2),
      n = n - 1
  WHERE user_id = OLD.user_id;
END;
""",
    """
CREATE TRIGGER ledger_days_update
AFTER UPDATE OF user_id, amount, category, transaction_type, occurred_at ON transactions BEGIN
  UPDATE ledger_days SET amount = round(amount - OLD.amount, 2), n = n - 1
  WHERE user_id = OLD.user_id AND day = date(OLD.occurred_at) AND category = OLD.category
    AND transaction_type = OLD.transaction_type;
  DELETE FROM ledger_days
  WHERE user_id = OLD.user_id AND day = date(OLD.occurred_at) AND category = OLD.category
    AND transaction_type = OLD.transaction_type AND n <= 0;
  UPDATE ledger_totals
  SET signed_total = round(signed_total
        - CASE WHEN OLD.transaction_type = 'credit' THEN OLD.amount ELSE -OLD.amount END, 2),
      n = n - 1
  WHERE user_id = OLD.user_id;
  INSERT INTO ledger_days (user_id, day, category, transaction_type, amount, n)
  VALUES (NEW.user_id, date(NEW.occurred_at), NEW.category, NEW.transaction_type, NEW.amount, 1)
  ON CONFLICT (user_id, day, category, transaction_type)
  DO UPDATE SET amount = round(amount + excluded.amount, 2), n = n + 1;
  INSERT INTO ledger_totals (user_id, signed_total, n)
  VALUES (NEW.user_id,
          CASE WHEN NEW.transaction_type = 'credit' THEN NEW.amount ELSE -NEW.amount END, 1)
  ON CONFLICT (user_id)
  DO UPDATE SET signed_total = round(signed_total + excluded.signed_total, 2), n = n + 1;
END;
""",
    """
CREATE TRIGGER event_days_insert AFTER INSERT ON behavioral_events BEGIN
  INSERT INTO event_days (user_id, day, event_type, n)
  VALUES (NEW.user_id, date(NEW.timestamp), NEW.event_type, 1)
  ON CONFLICT (user_id, day, event_type) DO UPDATE SET n = n + 1;
END;
""",
    """
CREATE TRIGGER event_days_delete AFTER DELETE ON behavioral_events BEGIN
  UPDATE event_days SET n = n - 1
  WHERE user_id = OLD.user_id AND day = date(OLD.timestamp) AND event_type = OLD.event_type;
  DELETE FROM event_days
  WHERE user_id = OLD.user_id AND day = date(OLD.timestamp) AND event_type = OLD.event_type
    AND n <= 0;
END;
""",
)

POSTGRESQL_TRIGGERS = (
    """
CREATE FUNCTION fincoach_ledger_aggregates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    UPDATE ledger_days SET amount = amount - OLD.amount, n = n - 1
    WHERE user_id = OLD.user_id AND day = (OLD.occurred_at AT TIME ZONE 'UTC')::date
      AND category = OLD.category AND transaction_type = OLD.transaction_type;
    DELETE FROM ledger_days
    WHERE user_id = OLD.user_id AND day = (OLD.occurred_at AT TIME ZONE 'UTC')::date
      AND category = OLD.category AND transaction_type = OLD.transaction_type AND n <= 0;
    UPDATE ledger_totals
    SET signed_total = signed_total
          - CASE WHEN OLD.transaction_type = 'credit' THEN OLD.amount ELSE -OLD.amount END,
        n = n - 1
    WHERE user_id = OLD.user_id;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO ledger_days (user_id, day, category, transaction_type, amount, n)
    VALUES (NEW.user_id, (NEW.occurred_at AT TIME ZONE 'UTC')::date, NEW.category,
            NEW.transaction_type, NEW.amount, 1)
    ON CONFLICT (user_id, day, category, transaction_type)
    DO UPDATE SET amount = ledger_days.amount + EXCLUDED.amount, n = ledger_days.n + 1;
    INSERT INTO ledger_totals (user_id, signed_total, n)
    VALUES (NEW.user_id,
            CASE WHEN NEW.transaction_type = 'credit' THEN NEW.amount ELSE -NEW.amount END, 1)
    ON CONFLICT (user_id)
    DO UPDATE SET signed_total = ledger_totals.signed_total + EXCLUDED.signed_total,
                  n = ledger_totals.n + 1;
  END IF;
  RETURN NULL;
END $$;
""",
    """
CREATE TRIGGER ledger_aggregates
AFTER INSERT OR DELETE OR UPDATE OF user_id, amount, category, transaction_type, occurred_at
ON transactions FOR EACH ROW EXECUTE FUNCTION fincoach_ledger_aggregates();
""",
    """
CREATE FUNCTION fincoach_event_aggregates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    UPDATE event_days SET n = n - 1
    WHERE user_id = OLD.user_id AND day = (OLD.timestamp AT TIME ZONE 'UTC')::date
      AND event_type = OLD.event_type;
    DELETE FROM event_days
    WHERE user_id = OLD.user_id AND day = (OLD.timestamp AT TIME ZONE 'UTC')::date
      AND event_type = OLD.event_type AND n <= 0;
  ELSE
    INSERT INTO event_days (user_id, day, event_type, n)
    VALUES (NEW.user_id, (NEW.timestamp AT TIME ZONE 'UTC')::date, NEW.event_type, 1)
    ON CONFLICT (user_id, day, event_type) DO UPDATE SET n = event_days.n + 1;
  END IF;
  RETURN NULL;
END $$;
""",
    """
CREATE TRIGGER event_aggregates AFTER INSERT OR DELETE ON behavioral_events
FOR EACH ROW EXECUTE FUNCTION fincoach_event_aggregates();
""",
)

SQLITE_DROP = (
    "DROP TRIGGER IF EXISTS ledger_days_insert",
    "DROP TRIGGER IF EXISTS ledger_days_delete",
    "DROP TRIGGER IF EXISTS ledger_days_update",
    "DROP TRIGGER IF EXISTS event_days_insert",
    "DROP TRIGGER IF EXISTS event_days_delete",
)

POSTGRESQL_DROP = (
    "DROP TRIGGER IF EXISTS ledger_aggregates ON transactions",
    "DROP TRIGGER IF EXISTS event_aggregates ON behavioral_events",
    "DROP FUNCTION IF EXISTS fincoach_ledger_aggregates()",
    "DROP FUNCTION IF EXISTS fincoach_event_aggregates()",
)


def _day(column: str, dialect: str) -> str:
    return f"date({column})" if dialect == "sqlite" else f"({column} AT TIME ZONE 'UTC')::date"


def upgrade() -> None:
    op.create_table(
        "ledger_days",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("transaction_type", sa.String(length=6), nullable=False),
        sa.Column("amount", AggregateMoney, nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_ledger_days_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(*LEDGER_KEY, name=op.f("pk_ledger_days")),
    )
    op.create_table(
        "ledger_totals",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("signed_total", AggregateMoney, nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_ledger_totals_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_ledger_totals")),
    )
    op.create_table(
        "event_days",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_event_days_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "day", "event_type", name=op.f("pk_event_days")),
    )
    dialect = op.get_bind().dialect.name
    tx_day, ev_day = _day("occurred_at", dialect), _day("timestamp", dialect)
    # The rows already stored (before the triggers exist, so nothing is counted twice).
    op.execute(
        "INSERT INTO ledger_days (user_id, day, category, transaction_type, amount, n) "
        f"SELECT user_id, {tx_day}, category, transaction_type, round(sum(amount), 2), count(*) "
        f"FROM transactions GROUP BY user_id, {tx_day}, category, transaction_type"
    )
    op.execute(
        "INSERT INTO ledger_totals (user_id, signed_total, n) SELECT user_id, "
        "round(sum(CASE WHEN transaction_type = 'credit' THEN amount ELSE -amount END), 2), "
        "count(*) "
        "FROM transactions GROUP BY user_id"
    )
    op.execute(
        "INSERT INTO event_days (user_id, day, event_type, n) "
        f"SELECT user_id, {ev_day}, event_type, count(*) FROM behavioral_events "
        f"GROUP BY user_id, {ev_day}, event_type"
    )
    for statement in SQLITE_TRIGGERS if dialect == "sqlite" else POSTGRESQL_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_DROP if dialect == "sqlite" else POSTGRESQL_DROP:
        op.execute(statement)
    op.drop_table("event_days")
    op.drop_table("ledger_totals")
    op.drop_table("ledger_days")
