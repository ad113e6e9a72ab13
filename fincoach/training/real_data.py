"""Real transaction histories from a CSV file, in this app's vocabulary.

Two layouts are read:

* bank exports with separate debit and credit columns (the MoneyVis open bank data that the
  original FinCoach shipped: ``Transaction Date`` dd/mm/yyyy, ``Debit Amount``, ``Credit
  Amount``, ``Category``, ``Transaction Description``);
* a plain ledger: ``date`` (ISO or dd/mm/yyyy), ``amount`` (negative = money out, unless a
  ``type``/``transaction_type`` column says debit/credit or expense/income), ``category`` and
  optionally ``description`` or ``merchant``.

Categories are mapped to ``features.vocab.CATEGORIES`` by name (``CATEGORY_SYNONYMS``, then
keywords), so another bank's or a household's categories land in the same place: money in is
income whatever its category, transfers to savings or investments are ``savings`` (not spending),
and anything unknown is ``other``. Dates without a time of day are stamped at noon UTC.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final

import numpy as np

from fincoach.features.frames import TransactionFrame
from fincoach.features.vocab import CATEGORIES

# Exact names (lowercased, stripped) first; then the first keyword contained in the name.
CATEGORY_SYNONYMS: Final[dict[str, str]] = {
    "groceries": "groceries",
    "grocery": "groceries",
    "food shopping": "groceries",
    "supermarket": "groceries",
    "food": "groceries",
    "dine out": "dine_out",
    "dining": "dine_out",
    "restaurants": "dine_out",
    "restaurant": "dine_out",
    "takeaway": "dine_out",
    "eating out": "dine_out",
    "entertainment": "entertainment",
    "hotels": "entertainment",
    "holiday": "entertainment",
    "bills": "bills",
    "utilities": "bills",
    "mortgage": "bills",
    "rent": "bills",
    "insurance": "bills",
    "council tax": "bills",
    "subscriptions": "bills",
    "phone": "bills",
    "internet": "bills",
    "travel": "transport",
    "transport": "transport",
    "transportation": "transport",
    "fuel": "transport",
    "amazon": "shopping",
    "clothes": "shopping",
    "clothing": "shopping",
    "other shopping": "shopping",
    "shopping": "shopping",
    "home improvement": "shopping",
    "services/home improvement": "shopping",
    "household": "shopping",
    "health": "health",
    "medical": "health",
    "fitness": "fitness",
    "gym": "fitness",
    "sport": "fitness",
    "savings": "savings",
    "saving": "savings",
    "investment": "savings",
    "investments": "savings",
    "account transfer": "savings",
    "paycheck": "income",
    "salary": "income",
    "income": "income",
    "supplementary income": "income",
    "interest": "income",
}
_KEYWORDS: Final = (
    ("grocer", "groceries"),
    ("supermarket", "groceries"),
    ("restaurant", "dine_out"),
    ("dine", "dine_out"),
    ("cafe", "dine_out"),
    ("movie", "entertainment"),
    ("cinema", "entertainment"),
    ("mortgage", "bills"),
    ("rent", "bills"),
    ("bill", "bills"),
    ("utilit", "bills"),
    ("insur", "bills"),
    ("electric", "bills"),
    ("water", "bills"),
    ("travel", "transport"),
    ("taxi", "transport"),
    ("train", "transport"),
    ("bus", "transport"),
    ("shop", "shopping"),
    ("cloth", "shopping"),
    ("health", "health"),
    ("pharm", "health"),
    ("doctor", "health"),
    ("gym", "fitness"),
    ("fitness", "fitness"),
    ("saving", "savings"),
    ("invest", "savings"),
    ("salary", "income"),
    ("wage", "income"),
    ("pay", "income"),
)
INCOME_NAMES: Final = frozenset({"income"})
NOON: Final = np.timedelta64(12, "h")


def map_category(name: str | None, *, inflow: bool) -> str:
    """Our category for a source category name; money in is always ``income``."""
    if inflow:
        return "income"
    key = re.sub(r"\s+", " ", (name or "").strip().lower())
    mapped = CATEGORY_SYNONYMS.get(key)
    if mapped is None:
        mapped = next((ours for word, ours in _KEYWORDS if word in key), "other")
    # Money out under an income-like name (a repayment, a reversed credit) is not income.
    return "other" if mapped == "income" else mapped


@dataclass(frozen=True)
class RealHistory:
    """One account's transactions, oldest first, amounts > 0, categories ours."""

    name: str
    occurred_at: np.ndarray  # datetime64[s], UTC
    amount: np.ndarray  # float64 > 0
    category: np.ndarray  # object: names in CATEGORIES
    merchant: np.ndarray  # object: str or None
    source_category: np.ndarray  # object: the file's own category name

    def __len__(self) -> int:
        return int(self.amount.shape[0])

    @property
    def first_day(self) -> date:
        return self.occurred_at[0].astype("datetime64[D]").astype(date)

    @property
    def last_day(self) -> date:
        return self.occurred_at[-1].astype("datetime64[D]").astype(date)

    def frame(self) -> TransactionFrame:
        """All rows as the feature functions' frame (category codes of CATEGORIES)."""
        codes = np.array([CATEGORIES.index(c) for c in self.category], dtype=int)
        return TransactionFrame(self.occurred_at, self.amount, codes, self.merchant)

    def scaled(self, factor: float) -> RealHistory:
        """The same history with every amount times ``factor`` (another currency unit)."""
        return RealHistory(
            self.name,
            self.occurred_at,
            self.amount * factor,
            self.category,
            self.merchant,
            self.source_category,
        )


def _parse_date(text: str) -> date:
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%Y/%m/%d", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            return datetime.strptime(text[:10], fmt).date()
        except ValueError:
            continue
    raise ValueError(f"unreadable date {text!r}")


def _number(text: str | None) -> float:
    cleaned = re.sub(r"[^0-9.\-]", "", text or "")
    return float(cleaned) if cleaned not in ("", "-", ".") else 0.0


def _column(fields: list[str], *names: str) -> str | None:
    lowered = {f.strip().lower(): f for f in fields}
    return next((lowered[n] for n in names if n in lowered), None)


def load_history(path: str | Path) -> RealHistory:
    """Read a CSV of transactions (see the module docstring); ValueError if unusable."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    date_col = _column(fields, "transaction date", "date", "occurred_at", "day")
    debit_col = _column(fields, "debit amount", "debit", "money out", "paid out")
    credit_col = _column(fields, "credit amount", "credit", "money in", "paid in")
    amount_col = _column(fields, "amount", "value")
    type_col = _column(fields, "transaction_type", "type", "kind", "direction")
    cat_col = _column(fields, "category", "categories")
    text_col = _column(fields, "transaction description", "description", "merchant", "payee")
    if date_col is None or (amount_col is None and debit_col is None and credit_col is None):
        raise ValueError(f"{path}: needs a date column and amount (or debit/credit) columns")
    items: list[tuple[date, int, float, str, str | None, str]] = []
    for order, row in enumerate(rows):
        day_text = row.get(date_col) or ""
        if not day_text.strip():
            continue
        day = _parse_date(day_text)
        flows: list[tuple[float, bool]] = []
        if debit_col is not None or credit_col is not None:
            out = _number(row.get(debit_col)) if debit_col else 0.0
            inn = _number(row.get(credit_col)) if credit_col else 0.0
            flows = [(abs(out), False), (abs(inn), True)]
        else:
            value = _number(row.get(amount_col)) if amount_col else 0.0
            kind = (row.get(type_col) or "").strip().lower() if type_col else ""
            if kind in ("credit", "income", "in", "deposit"):
                flows = [(abs(value), True)]
            elif kind in ("debit", "expense", "out", "withdrawal"):
                flows = [(abs(value), False)]
            else:
                flows = [(abs(value), value > 0 and _looks_like_income(row.get(cat_col)))]
        source = (row.get(cat_col) or "").strip() if cat_col else ""
        text = (row.get(text_col) or "").strip() or None if text_col else None
        for value, inflow in flows:
            if value > 0:
                items.append((day, order, value, map_category(source, inflow=inflow), text, source))
    if not items:
        raise ValueError(f"{path}: no transactions")
    # Bank exports list the newest first; within a day keep the file's order, oldest first.
    newest_first = len(items) > 1 and items[0][0] > items[-1][0]
    items.sort(key=lambda r: (r[0], -r[1] if newest_first else r[1]))
    days = np.array([np.datetime64(r[0], "D") for r in items]).astype("datetime64[s]") + NOON
    return RealHistory(
        name=path.stem,
        occurred_at=days,
        amount=np.array([r[2] for r in items], dtype=float),
        category=np.array([r[3] for r in items], dtype=object),
        merchant=np.array([r[4] for r in items], dtype=object),
        source_category=np.array([r[5] for r in items], dtype=object),
    )


def _looks_like_income(name: str | None) -> bool:
    """A positive amount without a direction column: income only under an income-like name
    (a ledger of expenses lists them as positive numbers)."""
    key = (name or "").strip().lower()
    return CATEGORY_SYNONYMS.get(key) == "income" or any(
        w in key for w in ("salary", "income", "wage", "paycheck", "interest")
    )


def to_datetime(value: np.datetime64) -> datetime:
    """An aware UTC datetime of a ``datetime64`` (the database stores aware datetimes)."""
    seconds = int(value.astype("datetime64[s]").astype("int64"))
    return datetime.fromtimestamp(seconds, tz=UTC)
