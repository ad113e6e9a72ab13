"""The shared vocabulary: categories, latent types, segment names, coaching actions.

Training, serving, the simulator and the API validation all read these tuples, so their order
is part of the model contract (feature positions, action ids). Append; never reorder.
"""

from __future__ import annotations

from typing import Final

# The legacy state's 11 weekly category slots, in the original FinCoach order.
CATEGORIES: Final = (
    "groceries",
    "dine_out",
    "entertainment",
    "bills",
    "transport",
    "shopping",
    "health",
    "fitness",
    "savings",
    "income",
    "other",
)
# Position of each category in CATEGORIES (the column of weekly matrices, the frame's code).
CATEGORY_INDEX: Final = {c: i for i, c in enumerate(CATEGORIES)}
# Categories that are consumption (spending); "savings" is a transfer and "income" is inflow.
SPENDING_CATEGORIES: Final = tuple(c for c in CATEGORIES if c not in ("savings", "income"))
# Discretionary spending: what impulse and lifestyle behavior shows up in.
DISCRETIONARY_CATEGORIES: Final = ("dine_out", "entertainment", "shopping")

TRANSACTION_KINDS: Final = ("expense", "income", "transfer")
# The original FinCoach API's direction of a transaction: credit adds to the wallet, debit takes.
TRANSACTION_TYPES: Final = ("debit", "credit")
GOAL_STATUSES: Final = ("active", "achieved", "abandoned")
RISK_TOLERANCES: Final = ("low", "medium", "high")

# The simulator's latent behavioral types, index-aligned with the original segment names.
LATENT_TYPES: Final = (
    "conservative_saver",
    "impulse_buyer",
    "goal_oriented",
    "budget_conscious",
    "high_spender",
)
SEGMENT_NAMES: Final = (
    "Conservative Savers",
    "Impulse Buyers",
    "Goal-Oriented",
    "Budget Conscious",
    "High Spenders",
)

# Coaching actions. Ids 0-4 are the legacy ones and keep their ids; new ones follow.
ACTIONS: Final = (
    "continue_current_behavior",
    "spending_alert",
    "budget_suggestion",
    "savings_nudge",
    "positive_reinforcement",
    "reduce_dining_out",
    "review_subscriptions",
    "build_emergency_fund",
    "pay_down_debt",
    "goal_focus",
)
LEGACY_ACTION_COUNT: Final = 5

EVENT_TYPES: Final = (
    "page_view",
    "recommendation_interaction",
    "purchase",
    "goal_modification",
    "search",
    "filter",
)
PREDICTION_TYPES: Final = ("spending", "goal", "recommendation", "segment")

# Recommendation strategies the bandit chooses between.
STRATEGIES: Final = (
    "cql_greedy",
    "cql_softmax",
    "segment_popular",
    "goal_focused",
    "rule_based",
)
