"""The original FinCoach API's data: first and last names, wallets, and transactions with a
direction (debit/credit), location and the balance after each one. Existing rows (demo data
included) move without loss: names are split from full_name, each transaction's direction comes
from its category (income is a credit), balance_after is the running balance of the user's
opening balance plus their transactions in time order, and each user gets a wallet holding it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MAX_AMOUNT = 1_000_000_000
CHUNK = 5000
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _split(full_name: str | None) -> tuple[str, str]:
    parts = (full_name or "").strip().split(maxsplit=1)
    return (parts[0] if parts else "")[:100], (parts[1] if len(parts) > 1 else "")[:100]


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("first_name", sa.String(100), server_default="", nullable=False))
        batch.add_column(sa.Column("last_name", sa.String(100), server_default="", nullable=False))
        batch.add_column(sa.Column("date_of_birth", sa.Date(), nullable=True))
    users = sa.table(
        "users",
        sa.column("id", sa.Integer),
        sa.column("full_name", sa.String),
        sa.column("first_name", sa.String),
        sa.column("last_name", sa.String),
    )
    named = bind.execute(sa.select(users.c.id, users.c.full_name)).all()
    for start in range(0, len(named), CHUNK):
        rows = [
            {"uid": uid, "first": first, "last": last}
            for uid, full in named[start : start + CHUNK]
            for first, last in [_split(full)]
        ]
        bind.execute(
            users.update()
            .where(users.c.id == sa.bindparam("uid"))
            .values(first_name=sa.bindparam("first"), last_name=sa.bindparam("last")),
            rows,
        )
    # SQLite rebuilds the table here: with AUTOINCREMENT, so that a deleted user's id is never
    # given to a new account.
    with op.batch_alter_table("users", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("full_name")

    with op.batch_alter_table("user_profiles") as batch:
        batch.add_column(
            sa.Column("savings_goal", sa.Numeric(14, 2), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("financial_goals", JSON, nullable=True))

    with op.batch_alter_table("transactions") as batch:
        batch.add_column(
            sa.Column("transaction_type", sa.String(6), server_default="debit", nullable=False)
        )
        batch.add_column(sa.Column("location_city", sa.String(100), nullable=True))
        batch.add_column(
            sa.Column("location_country", sa.String(100), server_default="US", nullable=False)
        )
        batch.add_column(
            sa.Column("balance_after", sa.Numeric(14, 2), server_default="0", nullable=False)
        )
        batch.create_check_constraint(
            op.f("ck_transactions_type_known"), "transaction_type IN ('debit', 'credit')"
        )
        batch.create_check_constraint(
            op.f("ck_transactions_balance_after_range"),
            f"balance_after > -{MAX_AMOUNT} AND balance_after < {MAX_AMOUNT}",
        )
    tx = sa.table(
        "transactions",
        sa.column("id", sa.BigInteger),
        sa.column("user_id", sa.Integer),
        sa.column("amount", sa.Numeric),
        sa.column("category", sa.String),
        sa.column("transaction_type", sa.String),
        sa.column("balance_after", sa.Numeric),
        sa.column("occurred_at", sa.DateTime),
    )
    bind.execute(tx.update().where(tx.c.category == "income").values(transaction_type="credit"))

    op.create_table(
        "wallets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("balance", sa.Numeric(14, 2), server_default="0", nullable=False),
        sa.Column("currency", sa.String(3), server_default="USD", nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            f"balance > -{MAX_AMOUNT} AND balance < {MAX_AMOUNT}",
            name=op.f("ck_wallets_balance_range"),
        ),
        sa.CheckConstraint("length(currency) = 3", name=op.f("ck_wallets_currency_iso")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_wallets_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallets")),
        sa.UniqueConstraint("user_id", name=op.f("uq_wallets_user_id")),
    )
    _backfill_balances(bind, tx)


def _backfill_balances(bind: sa.Connection, tx: sa.TableClause) -> None:
    """balance_after of every transaction, and a wallet per user with the final balance."""
    profiles = sa.table(
        "user_profiles",
        sa.column("user_id", sa.Integer),
        sa.column("opening_balance", sa.Numeric),
        sa.column("currency", sa.String),
    )
    users = sa.table("users", sa.column("id", sa.Integer))
    opening = {
        uid: (float(balance or 0), currency or "USD")
        for uid, balance, currency in bind.execute(
            sa.select(profiles.c.user_id, profiles.c.opening_balance, profiles.c.currency)
        ).all()
    }
    balances = {
        uid: opening.get(uid, (0.0, "USD"))[0] for (uid,) in bind.execute(sa.select(users.c.id))
    }
    rows = bind.execute(
        sa.select(tx.c.id, tx.c.user_id, tx.c.amount, tx.c.transaction_type).order_by(
            tx.c.user_id, tx.c.occurred_at, tx.c.id
        )
    ).all()
    updates: list[dict[str, object]] = []
    for uid, group in groupby(rows, key=lambda r: r.user_id):
        balance = balances.get(uid, 0.0)
        for row in group:
            amount = float(row.amount)
            balance = round(balance + (amount if row.transaction_type == "credit" else -amount), 2)
            updates.append({"tid": row.id, "after": balance})
        balances[uid] = balance
    for start in range(0, len(updates), CHUNK):
        bind.execute(
            tx.update()
            .where(tx.c.id == sa.bindparam("tid"))
            .values(balance_after=sa.bindparam("after")),
            updates[start : start + CHUNK],
        )
    wallets = sa.table(
        "wallets",
        sa.column("user_id", sa.Integer),
        sa.column("balance", sa.Numeric),
        sa.column("currency", sa.String),
    )
    if balances:
        bind.execute(
            wallets.insert(),
            [
                {"user_id": uid, "balance": balance, "currency": opening.get(uid, (0, "USD"))[1]}
                for uid, balance in balances.items()
            ],
        )


def downgrade() -> None:
    op.drop_table("wallets")
    with op.batch_alter_table("transactions") as batch:
        batch.drop_constraint(op.f("ck_transactions_balance_after_range"), type_="check")
        batch.drop_constraint(op.f("ck_transactions_type_known"), type_="check")
        batch.drop_column("balance_after")
        batch.drop_column("location_country")
        batch.drop_column("location_city")
        batch.drop_column("transaction_type")
    with op.batch_alter_table("user_profiles") as batch:
        batch.drop_column("financial_goals")
        batch.drop_column("savings_goal")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("full_name", sa.String(200), nullable=True))
    users = sa.table(
        "users",
        sa.column("full_name", sa.String),
        sa.column("first_name", sa.String),
        sa.column("last_name", sa.String),
    )
    bind = op.get_bind()
    bind.execute(
        users.update().values(
            full_name=sa.func.nullif(sa.func.trim(users.c.first_name + " " + users.c.last_name), "")
        )
    )
    with op.batch_alter_table("users") as batch:
        batch.drop_column("date_of_birth")
        batch.drop_column("last_name")
        batch.drop_column("first_name")
