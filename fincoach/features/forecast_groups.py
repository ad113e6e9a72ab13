"""Category groups of the spending forecast, as its evaluation and interval calibration use them:
recurring bills (rent, a mortgage, utilities, subscriptions), everyday spending and
discretionary spending. Columns follow ``SPENDING_CATEGORIES``."""

from __future__ import annotations

from typing import Final

from fincoach.features.vocab import DISCRETIONARY_CATEGORIES, SPENDING_CATEGORIES

RECURRING_BILLS: Final = ("bills",)
GROUP_NAMES: Final = ("recurring_bills", "everyday", "discretionary")
GROUPS: Final[dict[str, list[int]]] = {
    "recurring_bills": [SPENDING_CATEGORIES.index(c) for c in RECURRING_BILLS],
    "everyday": [
        i
        for i, c in enumerate(SPENDING_CATEGORIES)
        if c not in RECURRING_BILLS and c not in DISCRETIONARY_CATEGORIES
    ],
    "discretionary": [SPENDING_CATEGORIES.index(c) for c in DISCRETIONARY_CATEGORIES],
}
GROUP_OF_CATEGORY: Final = {c: g for g, members in GROUPS.items() for c in members}
# The forecaster's input: one user's spending rows (features.spending.SpendingHistory).
FORECAST_INPUT_NAMES: Final = ("occurred_at", "category", "amount", "payee")
