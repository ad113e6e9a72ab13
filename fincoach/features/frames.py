"""Columnar views of one user's rows, the input of every feature function.

Serving builds them from database rows (``from_rows``), training from the simulator's columns
(``training/datasets.py``); both then call the same feature functions, so the two cannot drift.
Timestamps are ``datetime64[s]`` in UTC without a timezone attached.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np

from fincoach.features.vocab import CATEGORIES, CATEGORY_INDEX, EVENT_TYPES

CATEGORY_CODES = CATEGORY_INDEX
EVENT_CODES = {e: i for i, e in enumerate(EVENT_TYPES)}
OTHER = CATEGORY_CODES["other"]
INCOME = CATEGORY_CODES["income"]


def to_datetime64(value: datetime | date) -> np.datetime64:
    """A UTC ``datetime64[s]`` from an aware datetime (converted) or a date (midnight UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return np.datetime64(value, "s")
    return np.datetime64(datetime(value.year, value.month, value.day), "s")


@dataclass(frozen=True)
class TransactionFrame:
    """One user's transactions, sorted by time."""

    occurred_at: np.ndarray  # datetime64[s]
    amount: np.ndarray  # float64, > 0
    category: np.ndarray  # int, index into CATEGORIES
    merchant: np.ndarray  # object (str or None)

    def __post_init__(self) -> None:
        n = self.occurred_at.shape[0]
        if not (self.amount.shape[0] == self.category.shape[0] == self.merchant.shape[0] == n):
            raise ValueError("transaction columns differ in length")
        if n and not np.isfinite(self.amount).all():
            raise ValueError("transaction amounts must be finite")

    def __len__(self) -> int:
        return int(self.occurred_at.shape[0])

    @classmethod
    def empty(cls) -> TransactionFrame:
        return cls(
            occurred_at=np.array([], dtype="datetime64[s]"),
            amount=np.array([], dtype=float),
            category=np.array([], dtype=int),
            merchant=np.array([], dtype=object),
        )

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[datetime, float, str, str | None]]) -> TransactionFrame:
        """From (occurred_at, amount, category, merchant) tuples; unknown categories count as
        "other" so a new category never breaks a feature vector."""
        items = sorted(rows, key=lambda r: r[0])
        if not items:
            return cls.empty()
        return cls(
            occurred_at=np.array([to_datetime64(r[0]) for r in items], dtype="datetime64[s]"),
            amount=np.array([float(r[1]) for r in items], dtype=float),
            category=np.array([CATEGORY_CODES.get(r[2], OTHER) for r in items], dtype=int),
            merchant=np.array([r[3] for r in items], dtype=object),
        )

    def before(self, end: np.datetime64) -> TransactionFrame:
        """The rows strictly before ``end`` (what was known at that time)."""
        k = int(np.searchsorted(self.occurred_at, end, side="left"))
        return TransactionFrame(
            self.occurred_at[:k], self.amount[:k], self.category[:k], self.merchant[:k]
        )


@dataclass(frozen=True)
class EventFrame:
    """One user's behavioral events (timestamps and type codes).

    A row may stand for several events: ``count`` (None: one each). Serving reads the feature
    window's counts per type from the per-day aggregates (one row per type, stamped with the
    window's first day) and today's events grouped by type, because the features only count
    events per type in that window and a heavy user has thousands of them."""

    timestamp: np.ndarray  # datetime64[s]
    event_type: np.ndarray  # int, index into EVENT_TYPES
    count: np.ndarray | None = None  # int, events per row

    @property
    def counts(self) -> np.ndarray:
        return np.ones(len(self), dtype=int) if self.count is None else self.count

    @classmethod
    def empty(cls) -> EventFrame:
        return cls(np.array([], dtype="datetime64[s]"), np.array([], dtype=int))

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[datetime, str]]) -> EventFrame:
        items = sorted((to_datetime64(t), EVENT_CODES.get(e, 0)) for t, e in rows)
        if not items:
            return cls.empty()
        return cls(
            np.array([t for t, _ in items], dtype="datetime64[s]"),
            np.array([e for _, e in items], dtype=int),
        )

    def __len__(self) -> int:
        return int(self.timestamp.shape[0])


@dataclass(frozen=True)
class GoalRow:
    target_amount: float
    current_amount: float
    target_date: date
    status: str = "active"


@dataclass(frozen=True)
class Profile:
    opening_balance: float = 0.0
    monthly_income: float = 0.0
    monthly_budget: float | None = None


def _no_weeks() -> np.ndarray:
    return np.zeros((0, len(CATEGORIES)))


@dataclass(frozen=True)
class UserSnapshot:
    """Everything the features know about a user at ``as_of`` (exclusive).

    ``transactions`` holds every row before ``as_of`` (training), or (serving) only the rows of
    the last ``raw_weeks`` weekly windows, the older windows then summed per category in
    ``older_weeks`` (row 0: the window just before the raw rows) and the rows before all of
    them folded into ``profile.opening_balance``. The windows are whole UTC days
    (``features.state.day_end``), which is what lets serving sum them from daily aggregates."""

    as_of: np.datetime64
    transactions: TransactionFrame = field(default_factory=TransactionFrame.empty)
    raw_weeks: int | None = None
    older_weeks: np.ndarray = field(default_factory=_no_weeks)
    events: EventFrame = field(default_factory=EventFrame.empty)
    profile: Profile = field(default_factory=Profile)
    goals: Sequence[GoalRow] = ()
    # The coaching action recommended last (recommendation_history), if any: advice repeated
    # week after week is followed less, so the recommender needs to see it.
    last_action: int | None = None
