"""The simulator's latent types as numbers: income, spending mix, volatility, impulse, timing,
engagement and debt per type, merchants and goal names, and how each type responds to each
coaching action. Rows follow ``LATENT_TYPES``; spending columns follow ``SPENDING_CATEGORIES``."""

from __future__ import annotations

from datetime import date

import numpy as np

from fincoach.features.vocab import ACTIONS, EVENT_TYPES, LATENT_TYPES, SPENDING_CATEGORIES

N_TYPES = len(LATENT_TYPES)

# --- Type profiles (rows follow LATENT_TYPES; columns follow SPENDING_CATEGORIES) -------------
# Median weekly income per type.
TYPE_INCOME = np.array([1150.0, 900.0, 1050.0, 750.0, 2100.0])
# Share of income consumed in an ordinary week.
TYPE_SPEND_RATIO = np.array([0.55, 0.92, 0.66, 0.70, 0.88])
# Share of income moved to savings.
TYPE_SAVINGS_RATE = np.array([0.25, 0.03, 0.20, 0.12, 0.06])
# Coefficient of variation of weekly spend (log-normal sigma).
TYPE_VOLATILITY = np.array([0.15, 0.45, 0.22, 0.14, 0.30])
# Probability of an impulse spree in a week (discretionary x2-4).
TYPE_IMPULSE = np.array([0.02, 0.22, 0.04, 0.02, 0.10])
# Weekend and evening shares of transactions.
TYPE_WEEKEND = np.array([0.25, 0.45, 0.30, 0.25, 0.45])
TYPE_EVENING = np.array([0.15, 0.45, 0.20, 0.15, 0.40])
# Behavioral events per week (app engagement).
TYPE_ENGAGEMENT = np.array([4.0, 9.0, 12.0, 7.0, 3.0])
# Probability of carrying consumer debt.
TYPE_DEBT = np.array([0.05, 0.55, 0.10, 0.25, 0.35])

#                     groc  dine  ent   bills trans shop  health fit  other
TYPE_CATEGORY_WEIGHTS = np.array(
    [
        [0.26, 0.06, 0.04, 0.40, 0.10, 0.05, 0.04, 0.02, 0.03],  # conservative_saver
        [0.14, 0.20, 0.15, 0.22, 0.06, 0.17, 0.02, 0.01, 0.03],  # impulse_buyer
        [0.22, 0.08, 0.05, 0.36, 0.10, 0.06, 0.04, 0.06, 0.03],  # goal_oriented
        [0.32, 0.04, 0.03, 0.42, 0.09, 0.04, 0.03, 0.01, 0.02],  # budget_conscious
        [0.12, 0.20, 0.14, 0.26, 0.08, 0.12, 0.03, 0.03, 0.02],  # high_spender
    ]
)
# Probability that a category has no spending in a given week (intermittency).
CATEGORY_ZERO_PROB = np.array([0.03, 0.25, 0.40, 0.0, 0.12, 0.35, 0.70, 0.60, 0.50])
# Mean extra transactions per week beyond the first (how a week's amount is split).
CATEGORY_SPLIT = np.array([1.2, 1.0, 0.4, 0.0, 1.0, 0.5, 0.1, 0.2, 0.2])
# Yearly seasonality amplitude and peak week per category.
CATEGORY_SEASON_AMP = np.array([0.05, 0.10, 0.20, 0.08, 0.05, 0.30, 0.05, 0.15, 0.05])
CATEGORY_SEASON_PEAK = np.array([51, 26, 28, 4, 30, 50, 6, 2, 0])
DISCRETIONARY_MASK = np.isin(
    np.array(SPENDING_CATEGORIES), ["dine_out", "entertainment", "shopping"]
)

MERCHANTS: dict[str, tuple[str, ...]] = {
    "groceries": ("FreshMart", "GreenGrocer", "SuperSaver", "Corner Market"),
    "dine_out": ("Pasta Place", "Burger Barn", "Sushi Go", "Cafe Aroma", "Pizza Hub"),
    "entertainment": ("CinemaMax", "StreamFlix", "Concert Hall", "GameZone"),
    "bills": ("City Power", "AquaWorks", "NetFiber", "Landlord LLC", "MobileOne"),
    "transport": ("MetroCard", "FuelStop", "RideShare", "ParkRight"),
    "shopping": ("MegaStore", "StyleHub", "GadgetWorld", "HomeGoods"),
    "health": ("PharmaPlus", "City Clinic", "DentalCare"),
    "fitness": ("IronGym", "YogaLoft", "SportShop"),
    "other": ("Misc Services", "Gift Shop", "Post Office"),
    "savings": ("Savings Account",),
    "income": ("Employer Payroll",),
}
GOAL_NAMES = ("Emergency fund", "Vacation", "New laptop", "Car down payment", "Wedding", "Course")

# --- Coaching responses ----------------------------------------------------------------------
# Per type (rows) and action (columns, ACTIONS order): the probability that the user follows the
# advice in a week, and what following it does: a relative cut of discretionary spending and an
# absolute rise of the savings rate. Advice a type ignores or resents has effect ~0; effects
# decay over the following weeks (RESPONSE_DECAY). The CQL environment builds on this.
#                  cont  alert budg  nudge posit dine  subs  emerg debt  goal
RESPONSE_ACCEPT = np.array(
    [
        [0.50, 0.10, 0.20, 0.25, 0.70, 0.15, 0.30, 0.45, 0.10, 0.40],  # conservative_saver
        [0.30, 0.55, 0.35, 0.15, 0.20, 0.60, 0.35, 0.15, 0.40, 0.15],  # impulse_buyer
        [0.40, 0.25, 0.40, 0.60, 0.45, 0.25, 0.30, 0.35, 0.25, 0.75],  # goal_oriented
        [0.40, 0.30, 0.70, 0.35, 0.35, 0.30, 0.65, 0.35, 0.30, 0.35],  # budget_conscious
        [0.30, 0.35, 0.25, 0.20, 0.20, 0.45, 0.55, 0.40, 0.30, 0.15],  # high_spender
    ]
)
RESPONSE_SPEND_CUT = np.array([0.0, 0.25, 0.15, 0.0, 0.0, 0.30, 0.12, 0.05, 0.05, 0.05])
RESPONSE_SAVINGS_UP = np.array([0.0, 0.0, 0.02, 0.05, 0.03, 0.0, 0.02, 0.08, 0.08, 0.10])
RESPONSE_DECAY = 0.6

assert RESPONSE_ACCEPT.shape == (N_TYPES, len(ACTIONS))

# How each type spreads its app events over EVENT_TYPES.
TYPE_EVENT_MIX = np.array(
    [
        [0.60, 0.15, 0.02, 0.08, 0.08, 0.07],
        [0.50, 0.10, 0.15, 0.01, 0.14, 0.10],
        [0.45, 0.20, 0.02, 0.20, 0.07, 0.06],
        [0.50, 0.20, 0.05, 0.05, 0.10, 0.10],
        [0.55, 0.10, 0.15, 0.02, 0.10, 0.08],
    ]
)


assert TYPE_EVENT_MIX.shape == (N_TYPES, len(EVENT_TYPES))


def seasonality(weeks: np.ndarray, start: date) -> np.ndarray:
    """(len(weeks), n_spending) multiplicative yearly seasonality."""
    week_of_year = (start.isocalendar().week - 1 + weeks) % 52
    phase = 2 * np.pi * (week_of_year[:, None] - CATEGORY_SEASON_PEAK[None, :]) / 52.0
    return 1.0 + CATEGORY_SEASON_AMP[None, :] * np.cos(phase)
