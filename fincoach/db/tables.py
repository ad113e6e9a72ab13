"""ORM tables (SQLAlchemy 2). "Model" in this codebase means an ML model; these are tables.

The same definitions serve SQLite and PostgreSQL: JSON is JSONB on PostgreSQL, datetimes are
stored in UTC and always come back timezone-aware, and the CHECK constraints are portable.
The Alembic migrations in ``db/migrations`` must stay equal to this metadata (a test compares).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from fincoach.db.columns import (
    NAMING_CONVENTION,
    BigId,
    JSONType,
    Money,
    UTCDateTime,
    finite_money,
    one_of,
    signed_money,
    utcnow,
)
from fincoach.features.vocab import (
    EVENT_TYPES,
    GOAL_STATUSES,
    PREDICTION_TYPES,
    RISK_TOLERANCES,
    TRANSACTION_KINDS,
    TRANSACTION_TYPES,
)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


class User(TimestampMixin, Base):
    __tablename__ = "users"
    # SQLite would otherwise give a deleted user's id to the next account.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    hashed_password: Mapped[str] = mapped_column(String(255))
    first_name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    last_name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")

    @property
    def full_name(self) -> str | None:
        """First and last name together (None when neither is known)."""
        return " ".join(n for n in (self.first_name, self.last_name) if n) or None

    profile: Mapped[UserProfile | None] = relationship(
        back_populates="user", uselist=False, lazy="raise", cascade="all, delete-orphan"
    )


class UserProfile(TimestampMixin, Base):
    __tablename__ = "user_profiles"
    __table_args__ = (
        CheckConstraint(finite_money("monthly_income"), name="monthly_income_range"),
        CheckConstraint(
            signed_money("opening_balance"),
            name="opening_balance_range",
        ),
        CheckConstraint(one_of("risk_tolerance", RISK_TOLERANCES), name="risk_tolerance_known"),
        CheckConstraint("length(currency) = 3", name="currency_iso"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    monthly_income: Mapped[float] = mapped_column(Money, default=0, server_default="0")
    opening_balance: Mapped[float] = mapped_column(Money, default=0, server_default="0")
    currency: Mapped[str] = mapped_column(String(3), default="USD", server_default="USD")
    risk_tolerance: Mapped[str] = mapped_column(
        String(10), default="medium", server_default="medium"
    )
    monthly_budget: Mapped[float | None] = mapped_column(Money)
    savings_goal: Mapped[float] = mapped_column(Money, default=0, server_default="0")
    financial_goals: Mapped[list[str] | None] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    user: Mapped[User] = relationship(back_populates="profile", lazy="raise")


class Wallet(TimestampMixin, Base):
    """The user's balance: the opening balance plus every transaction (credits in, debits
    out), kept in the same transaction as each write."""

    __tablename__ = "wallets"
    __table_args__ = (
        CheckConstraint(signed_money("balance"), name="balance_range"),
        CheckConstraint("length(currency) = 3", name="currency_iso"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    balance: Mapped[float] = mapped_column(Money, default=0, server_default="0")
    currency: Mapped[str] = mapped_column(String(3), default="USD", server_default="USD")
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class Goal(TimestampMixin, Base):
    __tablename__ = "goals"
    __table_args__ = (
        CheckConstraint(finite_money("target_amount", positive=True), name="target_positive"),
        CheckConstraint(finite_money("current_amount"), name="current_range"),
        CheckConstraint(one_of("status", GOAL_STATUSES), name="status_known"),
        Index("ix_goals_user_id_status", "user_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    target_amount: Mapped[float] = mapped_column(Money)
    current_amount: Mapped[float] = mapped_column(Money, default=0, server_default="0")
    target_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class Transaction(TimestampMixin, Base):
    __tablename__ = "transactions"
    __table_args__ = (
        CheckConstraint(finite_money("amount", positive=True), name="amount_range"),
        CheckConstraint(one_of("kind", TRANSACTION_KINDS), name="kind_known"),
        CheckConstraint(one_of("transaction_type", TRANSACTION_TYPES), name="type_known"),
        CheckConstraint(
            signed_money("balance_after"),
            name="balance_after_range",
        ),
        Index("ix_transactions_user_id_occurred_at", "user_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Positive; the direction is transaction_type: credit (money in) or debit (money out).
    amount: Mapped[float] = mapped_column(Money)
    transaction_type: Mapped[str] = mapped_column(
        String(6), default="debit", server_default="debit"
    )
    category: Mapped[str] = mapped_column(String(40))
    merchant: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(500))
    location_city: Mapped[str | None] = mapped_column(String(100))
    location_country: Mapped[str] = mapped_column(String(100), default="US", server_default="US")
    kind: Mapped[str] = mapped_column(String(10), default="expense", server_default="expense")
    # The wallet's balance right after this transaction, in (occurred_at, id) order.
    balance_after: Mapped[float] = mapped_column(Money, default=0, server_default="0")
    occurred_at: Mapped[datetime]


class RecommendationHistory(TimestampMixin, Base):
    __tablename__ = "recommendation_history"
    __table_args__ = (
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence_unit"),
        Index("ix_recommendation_history_user_id_created_at", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    state_vector: Mapped[list[float]] = mapped_column(JSONType)
    action_id: Mapped[int] = mapped_column(Integer)
    action_name: Mapped[str] = mapped_column(String(60))
    strategy: Mapped[str] = mapped_column(String(40))
    segment_id: Mapped[int | None] = mapped_column(Integer)
    model_version: Mapped[str] = mapped_column(String(60))
    confidence: Mapped[float] = mapped_column(Float)
    recommendation_text: Mapped[str] = mapped_column(Text)
    fallback: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class RecommendationFeedback(TimestampMixin, Base):
    __tablename__ = "recommendation_feedback"
    __table_args__ = (
        CheckConstraint("reward >= 0 AND reward <= 1", name="reward_unit"),
        Index("ix_recommendation_feedback_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # One feedback per recommendation, so a retried POST cannot teach the bandit twice.
    recommendation_id: Mapped[int] = mapped_column(
        ForeignKey("recommendation_history.id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    feedback_type: Mapped[str] = mapped_column(String(30))
    helpful: Mapped[bool] = mapped_column(Boolean)
    reward: Mapped[float] = mapped_column(Float)
    feedback_text: Mapped[str | None] = mapped_column(Text)
    # Whether this feedback teaches the shared bandit: one user's feedbacks count only up to a
    # daily cap per segment (usecases/quotas.py); the rebuild counts these only.
    teaches: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class BehavioralEvent(TimestampMixin, Base):
    __tablename__ = "behavioral_events"
    __table_args__ = (
        CheckConstraint(one_of("event_type", EVENT_TYPES), name="event_type_known"),
        Index("idx_behavioral_events_user_id", "user_id"),
        Index("idx_behavioral_events_event_type", "event_type"),
        Index("idx_behavioral_events_timestamp", "timestamp"),
        Index("idx_behavioral_events_user_type_time", "user_id", "event_type", "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The client's idempotency key: a retried event is stored once.
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(40))
    event_data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    session_id: Mapped[str | None] = mapped_column(String(64))
    timestamp: Mapped[datetime]


# The online feature store: per-user aggregates that database triggers keep current in the
# same transaction as every write to transactions and behavioral_events (whoever writes: the
# API, the demo loader, a migration), so that a snapshot reads a bounded number of rows
# whatever the length of the history. ``fincoach db backfill-features`` rebuilds them.
# The triggers are in the migration ``2026-11-28_feature_store``; a table rebuilt by a later
# SQLite batch migration loses its triggers, which ``fincoach db verify`` reports.
AggregateMoney = Numeric(18, 2, asdecimal=False)


class LedgerDay(Base):
    """Transactions per user, UTC day, category and direction: their sum and count."""

    __tablename__ = "ledger_days"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    category: Mapped[str] = mapped_column(String(40), primary_key=True)
    transaction_type: Mapped[str] = mapped_column(String(6), primary_key=True)
    amount: Mapped[float] = mapped_column(AggregateMoney)
    n: Mapped[int] = mapped_column(Integer)


class LedgerTotal(Base):
    """Every transaction of the user, signed (credits in, debits out), summed."""

    __tablename__ = "ledger_totals"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    signed_total: Mapped[float] = mapped_column(AggregateMoney)
    n: Mapped[int] = mapped_column(Integer)


class EventDay(Base):
    """App events per user, UTC day and type."""

    __tablename__ = "event_days"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    event_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class UserSegment(Base):
    __tablename__ = "user_segments"
    __table_args__ = (
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence_unit"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    segment_id: Mapped[int] = mapped_column(Integer)
    segment_name: Mapped[str] = mapped_column(String(60))
    confidence: Mapped[float] = mapped_column(Float)
    features: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model_version: Mapped[str | None] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class SegmentPeerSnapshot(Base):
    """Per segment, the aggregates peer comparisons answer from: computed by the segments job,
    republished only when at least the minimum group of members changed (so the difference of
    two published snapshots never isolates one user), rounded, with a coarse member count."""

    __tablename__ = "segment_peer_snapshot"

    segment_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    member_count: Mapped[int] = mapped_column(Integer)
    # The members' ids when published (never answered): what "changed since" is measured by.
    members: Mapped[dict[str, Any]]
    # Rounded feature averages, balance average and balance deciles.
    stats: Mapped[dict[str, Any]]
    refreshed_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


class PredictionCache(Base):
    __tablename__ = "prediction_cache"
    __table_args__ = (
        CheckConstraint(one_of("prediction_type", PREDICTION_TYPES), name="prediction_type_known"),
        UniqueConstraint("user_id", "prediction_type", "cache_key", name="uq_prediction_cache_key"),
        Index("idx_prediction_cache_user_type", "user_id", "prediction_type"),
        Index("idx_prediction_cache_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    prediction_type: Mapped[str] = mapped_column(String(20))
    # What else the entry depends on (goal id, horizon, model version), so a swap never hits.
    cache_key: Mapped[str] = mapped_column(String(200))
    prediction_data: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    expires_at: Mapped[datetime]


class ModelPerformance(Base):
    __tablename__ = "model_performance"
    __table_args__ = (Index("idx_model_performance_name_created", "model_name", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(60))
    model_version: Mapped[str | None] = mapped_column(String(60))
    accuracy_metric: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sample_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    feature_importance: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


class JobRun(Base):
    """One row per background job: its schedule, its last run, and who runs it now (a lease,
    so that of several ingress replicas exactly one runs a due job)."""

    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    period_s: Mapped[float] = mapped_column(Float)
    next_run_at: Mapped[datetime]
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_status: Mapped[str | None] = mapped_column(String(20))
    last_detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    last_duration_s: Mapped[float | None] = mapped_column(Float)
    runs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None]


# The seven named indexes of the design, which `fincoach db check` verifies.
REQUIRED_INDEXES: dict[str, str] = {
    "idx_behavioral_events_user_id": "behavioral_events",
    "idx_behavioral_events_event_type": "behavioral_events",
    "idx_behavioral_events_timestamp": "behavioral_events",
    "idx_behavioral_events_user_type_time": "behavioral_events",
    "idx_prediction_cache_user_type": "prediction_cache",
    "idx_prediction_cache_expires_at": "prediction_cache",
    "idx_model_performance_name_created": "model_performance",
}
