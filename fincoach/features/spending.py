"""What the spending forecaster reads: one user's spending transactions up to a moment.

``SpendingHistory`` holds the spending rows (time, category among ``SPENDING_CATEGORIES``,
amount, payee) of the history window and its end. Week ``k`` of the history is the 7-day window
ending ``7 * k`` days before ``end`` (the last week ends at ``end``, as ``state.weekly_matrix``
counts), so the first forecast week starts at ``end``. Rows keep their dates so that payments
that recur on a day of the month (rent, a mortgage, bills, subscriptions) can be found and
placed in the weeks they fall in; the weekly sums alone cannot tell a lump from a spree.

Serving builds it from the snapshot (``from_snapshot``), training from simulated or real rows
(``from_frame``), the evaluation from the snapshot the API builds at each cut-off: the same
function, so the model sees the same thing everywhere. Pure numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from fincoach.features.frames import TransactionFrame, UserSnapshot
from fincoach.features.vocab import CATEGORY_INDEX, SPENDING_CATEGORIES

N_SPENDING: Final = len(SPENDING_CATEGORIES)
HISTORY_WEEKS: Final = 52
WEEK_SECONDS: Final = 7 * 86400
_SPEND_CODES = np.array([CATEGORY_INDEX[c] for c in SPENDING_CATEGORIES])
# Column of each CATEGORIES code among the spending categories (-1: not spending).
_SPEND_COLUMN = np.full(len(CATEGORY_INDEX), -1)
_SPEND_COLUMN[_SPEND_CODES] = np.arange(N_SPENDING)
_DIGITS = re.compile(r"[^A-Z ]+")


def payee_key(merchant: Any) -> str:
    """A payee name without card numbers, dates and references: upper case letters, the first
    three words. ``""`` when unknown."""
    if merchant is None:
        return ""
    words = _DIGITS.sub(" ", str(merchant).upper()).split()
    return " ".join(words[:3])


def as_unit(t: Any, unit: Literal["s", "D"]) -> np.datetime64:
    """``t`` (a datetime64, a datetime or an ISO string) as a datetime64 in ``unit`` ("s", "D")."""
    return np.datetime64(t, unit)


@dataclass(frozen=True)
class SpendingHistory:
    """One user's spending rows before ``end`` over ``n_weeks`` whole weeks (see the module)."""

    end: np.datetime64  # datetime64[s]
    n_weeks: int
    at: np.ndarray  # datetime64[s], sorted, within the n_weeks before end
    category: np.ndarray  # int: column in SPENDING_CATEGORIES
    amount: np.ndarray  # float > 0
    payee: np.ndarray  # object: payee_key of the merchant

    def __post_init__(self) -> None:
        n = self.at.shape[0]
        if not (self.category.shape[0] == self.amount.shape[0] == self.payee.shape[0] == n):
            raise ValueError("spending history columns differ in length")
        if self.n_weeks < 0:
            raise ValueError("n_weeks must be >= 0")
        if n and (not np.isfinite(self.amount).all() or (self.amount < 0).any()):
            raise ValueError("spending amounts must be finite and >= 0")
        if n and ((self.category < 0) | (self.category >= N_SPENDING)).any():
            raise ValueError(f"categories must be columns 0..{N_SPENDING - 1}")

    def __len__(self) -> int:
        return int(self.at.shape[0])

    @property
    def week_index(self) -> np.ndarray:
        """Week of each row, 0 = oldest, n_weeks - 1 = the week ending at ``end``."""
        age = (self.end - self.at).astype("timedelta64[s]").astype(np.int64)
        return self.n_weeks - 1 - age // WEEK_SECONDS

    def weekly(self, mask: np.ndarray | None = None) -> np.ndarray:
        """(n_weeks, N_SPENDING) spend per week and category (only ``mask`` rows if given)."""
        out = np.zeros((self.n_weeks, N_SPENDING))
        keep = np.ones(len(self), dtype=bool) if mask is None else mask
        if self.n_weeks and keep.any():
            np.add.at(out, (self.week_index[keep], self.category[keep]), self.amount[keep])
        return out

    def scaled(self, factor: float) -> SpendingHistory:
        """The same history with amounts times ``factor`` (another currency unit)."""
        return SpendingHistory(
            self.end, self.n_weeks, self.at, self.category, self.amount * factor, self.payee
        )

    @classmethod
    def empty(cls, end: np.datetime64) -> SpendingHistory:
        return cls(
            as_unit(end, "s"),
            0,
            np.array([], dtype="datetime64[s]"),
            np.array([], dtype=int),
            np.array([], dtype=float),
            np.array([], dtype=object),
        )

    @classmethod
    def from_frame(
        cls, frame: TransactionFrame, end: np.datetime64, max_weeks: int = HISTORY_WEEKS
    ) -> SpendingHistory:
        """The spending rows of ``frame`` before ``end``: the last ``max_weeks`` weeks, from
        the first week with any transaction (a new user has only the weeks since joining)."""
        end = as_unit(end, "s")
        start = end - np.timedelta64(max_weeks * WEEK_SECONDS, "s")
        known = (frame.occurred_at < end) & (frame.occurred_at > start)
        if not known.any():
            return cls.empty(end)
        age = (end - frame.occurred_at[known]).astype("timedelta64[s]").astype(np.int64)
        n_weeks = int(min(max_weeks, age.max() // WEEK_SECONDS + 1))
        column = _SPEND_COLUMN[frame.category]
        rows = known & (column >= 0) & (frame.amount > 0)
        return cls(
            end,
            n_weeks,
            frame.occurred_at[rows],
            column[rows],
            frame.amount[rows].astype(float),
            np.array([payee_key(m) for m in frame.merchant[rows]], dtype=object),
        )

    @classmethod
    def from_snapshot(cls, snapshot: UserSnapshot) -> SpendingHistory:
        """What the served forecaster reads for this user (the API's snapshot, which must hold
        the rows of the whole history window)."""
        if snapshot.raw_weeks is not None and snapshot.raw_weeks < HISTORY_WEEKS:
            raise ValueError(
                f"the forecaster reads {HISTORY_WEEKS} weeks of rows; "
                f"the snapshot holds {snapshot.raw_weeks}"
            )
        return cls.from_frame(snapshot.transactions, snapshot.as_of)

    @classmethod
    def from_weekly(cls, weekly: Any, end: np.datetime64) -> SpendingHistory:
        """A history known only as weekly sums ``(n_weeks, N_SPENDING)``: one row per week and
        category, in the middle of its week (no dates, so no recurring payments are found)."""
        arr = np.asarray(weekly, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != N_SPENDING:
            raise ValueError(f"weekly must be (n_weeks, {N_SPENDING}), got {arr.shape}")
        if not np.isfinite(arr).all() or (arr < 0).any():
            raise ValueError("weekly spend must be finite and >= 0")
        end = as_unit(end, "s")
        week, cat = np.nonzero(arr > 0)
        back = arr.shape[0] - 1 - week
        at = end - ((back * WEEK_SECONDS + WEEK_SECONDS // 2).astype("timedelta64[s]"))
        order = np.argsort(at, kind="stable")
        return cls(
            end,
            int(arr.shape[0]),
            at[order],
            cat[order],
            arr[week, cat][order],
            np.full(order.size, "", dtype=object),
        )
