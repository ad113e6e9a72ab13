"""Initial schema: the FinCoach domain plus the behavioral extensions and their seven indexes.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "model_performance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(length=60), nullable=False),
        sa.Column("model_version", sa.String(length=60), nullable=True),
        sa.Column("accuracy_metric", sa.Float(), nullable=True),
        sa.Column(
            "metrics",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("sample_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "feature_importance",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_performance")),
    )
    with op.batch_alter_table("model_performance", schema=None) as batch_op:
        batch_op.create_index(
            "idx_model_performance_name_created", ["model_name", "created_at"], unique=False
        )

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("hashed_password", sa.String(length=255), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default="1", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "behavioral_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column(
            "event_data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "event_type IN ('page_view', 'recommendation_interaction', 'purchase', "
            "'goal_modification', 'search', 'filter')",
            name=op.f("ck_behavioral_events_event_type_known"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_behavioral_events_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_behavioral_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_behavioral_events_event_id")),
    )
    with op.batch_alter_table("behavioral_events", schema=None) as batch_op:
        batch_op.create_index("idx_behavioral_events_event_type", ["event_type"], unique=False)
        batch_op.create_index("idx_behavioral_events_timestamp", ["timestamp"], unique=False)
        batch_op.create_index("idx_behavioral_events_user_id", ["user_id"], unique=False)
        batch_op.create_index(
            "idx_behavioral_events_user_type_time",
            ["user_id", "event_type", "timestamp"],
            unique=False,
        )

    op.create_table(
        "goals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "target_amount", sa.Numeric(precision=14, scale=2, asdecimal=False), nullable=False
        ),
        sa.Column(
            "current_amount",
            sa.Numeric(precision=14, scale=2, asdecimal=False),
            server_default="0",
            nullable=False,
        ),
        sa.Column("target_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "status IN ('active', 'achieved', 'abandoned')", name=op.f("ck_goals_status_known")
        ),
        sa.CheckConstraint(
            "current_amount >= 0 AND current_amount < 1000000000",
            name=op.f("ck_goals_current_range"),
        ),
        sa.CheckConstraint(
            "target_amount > 0 AND target_amount < 1000000000",
            name=op.f("ck_goals_target_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_goals_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_goals")),
    )
    with op.batch_alter_table("goals", schema=None) as batch_op:
        batch_op.create_index("ix_goals_user_id_status", ["user_id", "status"], unique=False)

    op.create_table(
        "prediction_cache",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("prediction_type", sa.String(length=20), nullable=False),
        sa.Column("cache_key", sa.String(length=200), nullable=False),
        sa.Column(
            "prediction_data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "prediction_type IN ('spending', 'goal', 'recommendation', 'segment')",
            name=op.f("ck_prediction_cache_prediction_type_known"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_prediction_cache_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction_cache")),
        sa.UniqueConstraint(
            "user_id", "prediction_type", "cache_key", name="uq_prediction_cache_key"
        ),
    )
    with op.batch_alter_table("prediction_cache", schema=None) as batch_op:
        batch_op.create_index("idx_prediction_cache_expires_at", ["expires_at"], unique=False)
        batch_op.create_index(
            "idx_prediction_cache_user_type", ["user_id", "prediction_type"], unique=False
        )

    op.create_table(
        "recommendation_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "state_vector",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("action_name", sa.String(length=60), nullable=False),
        sa.Column("strategy", sa.String(length=40), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=True),
        sa.Column("model_version", sa.String(length=60), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("recommendation_text", sa.Text(), nullable=False),
        sa.Column("fallback", sa.Boolean(), server_default="0", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "confidence >= 0 AND confidence <= 1",
            name=op.f("ck_recommendation_history_confidence_unit"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_recommendation_history_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendation_history")),
    )
    with op.batch_alter_table("recommendation_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_recommendation_history_user_id_created_at", ["user_id", "created_at"], unique=False
        )

    op.create_table(
        "transactions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2, asdecimal=False), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("merchant", sa.String(length=200), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("kind", sa.String(length=10), server_default="expense", nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "kind IN ('expense', 'income', 'transfer')", name=op.f("ck_transactions_kind_known")
        ),
        sa.CheckConstraint(
            "amount > 0 AND amount < 1000000000", name=op.f("ck_transactions_amount_range")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_transactions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transactions")),
    )
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_transactions_user_id_occurred_at", ["user_id", "occurred_at"], unique=False
        )

    op.create_table(
        "user_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "monthly_income",
            sa.Numeric(precision=14, scale=2, asdecimal=False),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "opening_balance",
            sa.Numeric(precision=14, scale=2, asdecimal=False),
            server_default="0",
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), server_default="USD", nullable=False),
        sa.Column("risk_tolerance", sa.String(length=10), server_default="medium", nullable=False),
        sa.Column(
            "monthly_budget", sa.Numeric(precision=14, scale=2, asdecimal=False), nullable=True
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "risk_tolerance IN ('low', 'medium', 'high')",
            name=op.f("ck_user_profiles_risk_tolerance_known"),
        ),
        sa.CheckConstraint("length(currency) = 3", name=op.f("ck_user_profiles_currency_iso")),
        sa.CheckConstraint(
            "monthly_income >= 0 AND monthly_income < 1000000000",
            name=op.f("ck_user_profiles_monthly_income_range"),
        ),
        sa.CheckConstraint(
            "opening_balance > -1000000000 AND opening_balance < 1000000000",
            name=op.f("ck_user_profiles_opening_balance_range"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_profiles_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_profiles")),
        sa.UniqueConstraint("user_id", name=op.f("uq_user_profiles_user_id")),
    )
    op.create_table(
        "user_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("segment_name", sa.String(length=60), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column(
            "features",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("model_version", sa.String(length=60), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "confidence >= 0 AND confidence <= 1", name=op.f("ck_user_segments_confidence_unit")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_segments_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_segments")),
        sa.UniqueConstraint("user_id", name=op.f("uq_user_segments_user_id")),
    )
    op.create_table(
        "recommendation_feedback",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "recommendation_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("feedback_type", sa.String(length=30), nullable=False),
        sa.Column("helpful", sa.Boolean(), nullable=False),
        sa.Column("reward", sa.Float(), nullable=False),
        sa.Column("feedback_text", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "reward >= 0 AND reward <= 1", name=op.f("ck_recommendation_feedback_reward_unit")
        ),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["recommendation_history.id"],
            name=op.f("fk_recommendation_feedback_recommendation_id_recommendation_history"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_recommendation_feedback_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendation_feedback")),
        sa.UniqueConstraint(
            "recommendation_id", name=op.f("uq_recommendation_feedback_recommendation_id")
        ),
    )
    with op.batch_alter_table("recommendation_feedback", schema=None) as batch_op:
        batch_op.create_index("ix_recommendation_feedback_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recommendation_feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_recommendation_feedback_user_id")

    op.drop_table("recommendation_feedback")
    op.drop_table("user_segments")
    op.drop_table("user_profiles")
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_transactions_user_id_occurred_at")

    op.drop_table("transactions")
    with op.batch_alter_table("recommendation_history", schema=None) as batch_op:
        batch_op.drop_index("ix_recommendation_history_user_id_created_at")

    op.drop_table("recommendation_history")
    with op.batch_alter_table("prediction_cache", schema=None) as batch_op:
        batch_op.drop_index("idx_prediction_cache_user_type")
        batch_op.drop_index("idx_prediction_cache_expires_at")

    op.drop_table("prediction_cache")
    with op.batch_alter_table("goals", schema=None) as batch_op:
        batch_op.drop_index("ix_goals_user_id_status")

    op.drop_table("goals")
    with op.batch_alter_table("behavioral_events", schema=None) as batch_op:
        batch_op.drop_index("idx_behavioral_events_user_type_time")
        batch_op.drop_index("idx_behavioral_events_user_id")
        batch_op.drop_index("idx_behavioral_events_timestamp")
        batch_op.drop_index("idx_behavioral_events_event_type")

    op.drop_table("behavioral_events")
    op.drop_table("users")
    with op.batch_alter_table("model_performance", schema=None) as batch_op:
        batch_op.drop_index("idx_model_performance_name_created")

    op.drop_table("model_performance")
