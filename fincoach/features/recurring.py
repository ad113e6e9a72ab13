"""Recurring payments in a spending history: rent, a mortgage, bills, subscriptions.

A payment recurs when the same payee in the same category (or, without a payee, the same amount
to the cent) is paid on a regular schedule: monthly (on about the same day of the month), every
two weeks or weekly, with a steady amount, and has not stopped (its last payment is recent
enough for the schedule). Each one found gives its amount, its schedule, how many days its
past payments strayed from that schedule (weekends, bank holidays) and the history rows it
explains, so the forecaster can take them out of the week-to-week residual and add them back as
lumps in the weeks they fall in.

Every test is relative (amount spread as a share of the amount), so the result is the same in
any currency unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from fincoach.features.spending import SpendingHistory, as_unit

# (name, typical interval in days, accepted interval range, fewest payments, grace in days
# after the expected date before the payment counts as stopped)
SCHEDULES: Final = (
    ("weekly", 7, (5, 9), 4, 5),
    ("fortnightly", 14, (11, 17), 3, 7),
    ("monthly", 30, (24, 38), 3, 10),
)
MAX_AMOUNT_SPREAD: Final = 0.15  # median |amount - median| / median over the recent payments
MIN_ON_SCHEDULE: Final = 0.75  # share of intervals within the schedule's range
RECENT_PAYMENTS: Final = 6
DAY = np.timedelta64(1, "D")


@dataclass(frozen=True)
class Recurring:
    """One recurring payment found in a history."""

    category: int  # column in SPENDING_CATEGORIES
    payee: str
    period: str  # "weekly", "fortnightly" or "monthly"
    amounts: np.ndarray  # the last payments' amounts (the forecast draws among them)
    day_of_month: int  # monthly: the usual day (1-31); else 0
    last: np.datetime64  # datetime64[D] of the last payment
    jitter_days: np.ndarray  # int: how far past payments fell from the schedule
    rows: np.ndarray  # indices of the history rows it explains

    @property
    def amount(self) -> float:
        return float(np.median(self.amounts))

    def due_dates(self, start: np.datetime64, stop: np.datetime64) -> np.ndarray:
        """Scheduled dates (datetime64[D]) in ``[start, stop)``, after the last payment.

        A payment already due but not seen yet (late) is expected on ``start``.
        """
        start, stop = as_unit(start, "D"), as_unit(stop, "D")
        if self.period == "monthly":
            month = self.last.astype("datetime64[M]")
            dates = []
            for k in range(1, 4 + (stop - start).astype(int) // 28 + 2):
                m = month + np.timedelta64(k, "M")
                length = int(((m + np.timedelta64(1, "M")).astype("datetime64[D]") - m).astype(int))
                dates.append(m.astype("datetime64[D]") + (min(self.day_of_month, length) - 1) * DAY)
            due = np.array(dates, dtype="datetime64[D]")
            # Paid early for next month's slot (e.g. on the 29th for the 1st): that slot is done.
            due = due[due > self.last + 15 * DAY]
        else:
            step = 7 if self.period == "weekly" else 14
            count = (stop - self.last).astype(int) // step + 1
            due = self.last + np.arange(1, max(count, 1) + 1) * step * DAY
        due = np.where(due < start, start, due)
        return np.unique(due[(due >= start) & (due < stop)])


def _days(history: SpendingHistory, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct payment days of ``rows`` and the amount paid on each (same-day rows summed)."""
    day = history.at[rows].astype("datetime64[D]")
    days, inverse = np.unique(day, return_inverse=True)
    amounts = np.zeros(days.shape[0])
    np.add.at(amounts, inverse, history.amount[rows])
    return days, amounts


def _monthly_jitter(days: np.ndarray, dom: int) -> np.ndarray:
    """Days between each payment and the usual day of its nearest month."""
    out = []
    for d in days:
        month = d.astype("datetime64[M]")
        best = None
        for m in (month - np.timedelta64(1, "M"), month, month + np.timedelta64(1, "M")):
            length = int(((m + np.timedelta64(1, "M")).astype("datetime64[D]") - m).astype(int))
            slot = m.astype("datetime64[D]") + (min(dom, length) - 1) * DAY
            gap = int((d - slot).astype(int))
            if best is None or abs(gap) < abs(best):
                best = gap
        out.append(best)
    return np.array(out, dtype=int)


def _match(
    history: SpendingHistory, rows: np.ndarray, category: int, payee: str
) -> Recurring | None:
    days, amounts = _days(history, rows)
    if days.shape[0] < 3:
        return None
    intervals = np.diff(days).astype(int)
    end_day = as_unit(history.end, "D")
    for name, typical, (low, high), fewest, grace in SCHEDULES:
        recent = intervals[-(RECENT_PAYMENTS - 1) :]
        if days.shape[0] < fewest or not low <= np.median(recent) <= high:
            continue
        if np.mean((recent >= low) & (recent <= high)) < MIN_ON_SCHEDULE:
            continue
        last_amounts = amounts[-RECENT_PAYMENTS:]
        middle = float(np.median(last_amounts))
        if middle <= 0 or np.median(np.abs(last_amounts - middle)) > MAX_AMOUNT_SPREAD * middle:
            continue
        if (end_day - days[-1]).astype(int) > typical + grace:
            return None  # stopped
        recent_days = days[-RECENT_PAYMENTS:]
        if name == "monthly":
            dom = int(np.median((recent_days - recent_days.astype("datetime64[M]")).astype(int)))
            dom += 1
            jitter = _monthly_jitter(recent_days, dom)
        else:
            dom = 0
            jitter = (
                np.diff(recent_days).astype(int) - typical
                if len(recent_days) > 1
                else np.zeros(0, dtype=int)
            )
        return Recurring(
            category=category,
            payee=payee,
            period=name,
            amounts=last_amounts[-3:],
            day_of_month=dom,
            last=days[-1],
            jitter_days=np.clip(np.asarray(jitter, dtype=int), -7, 7),
            rows=rows,
        )
    return None


def find_recurring(history: SpendingHistory) -> list[Recurring]:
    """The recurring payments of ``history`` that are still going (see the module)."""
    if len(history) < 3:
        return []
    keys = np.array(
        [
            f"{c}|{p}" if p else f"{c}|={a:.6g}"
            for c, p, a in zip(history.category, history.payee, history.amount, strict=True)
        ],
        dtype=object,
    )
    found = []
    unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    for g in np.flatnonzero(counts >= 3):
        rows = np.flatnonzero(inverse == g)
        category = int(history.category[rows[0]])
        payee = str(history.payee[rows[0]])
        match = _match(history, rows, category, payee)
        if match is not None:
            found.append(match)
    return found
