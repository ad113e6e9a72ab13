"""The financial state vectors (17-dim legacy, 54-dim enhanced) and the behavioral features of
segmentation, all computed from a ``UserSnapshot``.

Every function returns finite numbers for every input, including a brand-new user with no rows:
ratios with an empty denominator fall back to a neutral value documented beside them.
Windows are whole UTC days and end with the day of ``snapshot.as_of`` (rows before ``as_of``
only): "last week" is today so far and the 6 days before it. At midnight (the training
cut-offs) that is exactly the 7 days before ``as_of``; serving sums older windows from daily
aggregates, which a window starting mid-day could not use.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from fincoach.features.frames import UserSnapshot
from fincoach.features.vocab import (
    ACTIONS,
    CATEGORIES,
    CATEGORY_INDEX,
    DISCRETIONARY_CATEGORIES,
    EVENT_TYPES,
    SEGMENT_NAMES,
    SPENDING_CATEGORIES,
)

DAY = np.timedelta64(1, "D")
WEEK = np.timedelta64(7, "D")
CAT = CATEGORY_INDEX
SPEND_IDX: Final = np.array([CAT[c] for c in SPENDING_CATEGORIES])
DISC_IDX: Final = np.array([CAT[c] for c in DISCRETIONARY_CATEGORIES])
ESSENTIAL_IDX: Final = np.array([CAT["groceries"], CAT["bills"]])
INCOME, SAVINGS = CAT["income"], CAT["savings"]
TREND_WEEKS = 12  # how far back volatility and consistency look
RECENT_WEEKS = 4  # the "recent" window of ratios
EVENT_DAYS = 28  # app usage looks at the last 4 weeks

LEGACY_FEATURE_NAMES: Final = (
    "current_balance",
    "total_spending",
    "total_income",
    "transaction_count",
    *(f"weekly_{c}" for c in CATEGORIES),
    "savings_rate",
    "spending_velocity",
)
BEHAVIORAL_STATE_NAMES: Final = (
    "weekday_spending_ratio",
    "weekend_spending_ratio",
    "morning_spending_ratio",
    "evening_spending_ratio",
    "spending_volatility",
    "large_transaction_ratio",
    "impulse_buying_score",
    "category_diversity",
    "spending_consistency",
    "budget_adherence_score",
    "savings_consistency",
    "emergency_fund_ratio",
    "debt_indicator",
    "merchant_loyalty_score",
    "location_diversity",
    "seasonal_spending_factor",
    "balance_volatility",
    "financial_stress_indicator",
)
EXTRA_STATE_NAMES: Final = (
    "engagement_score",
    "events_per_week",
    "goal_progress",
    "weeks_to_goal",
    *(f"segment_{i}" for i in range(len(SEGMENT_NAMES))),
    *(f"last_action_{a}" for a in ACTIONS),
)
ENHANCED_FEATURE_NAMES: Final = LEGACY_FEATURE_NAMES + BEHAVIORAL_STATE_NAMES + EXTRA_STATE_NAMES
LEGACY_DIM: Final = len(LEGACY_FEATURE_NAMES)
ENHANCED_DIM: Final = len(ENHANCED_FEATURE_NAMES)

# Money only, and scale-free: the same finances in another currency unit, or with more app
# usage, give the same features. (Income level and events per week were features once: the
# first made the segment depend on the currency unit, the second on clicks and request timing.)
BEHAVIOR_FEATURE_NAMES: Final = (
    "spend_to_income",
    "savings_rate",
    "discretionary_share",
    "essential_share",
    "spending_volatility",
    "impulse_buying_score",
    "weekend_spending_ratio",
    "evening_spending_ratio",
    "savings_consistency",
)

assert LEGACY_DIM == 17 and len(BEHAVIORAL_STATE_NAMES) == 18


def _ratio(num: float, den: float, default: float = 0.0) -> float:
    return float(num / den) if den > 1e-9 else default


def day_end(as_of: np.datetime64) -> np.datetime64:
    """The end of the last day with time before ``as_of``: ``as_of`` itself at midnight, else
    the next midnight. Feature windows count whole days back from it."""
    last_day = (as_of.astype("datetime64[s]") - np.timedelta64(1, "s")).astype("datetime64[D]")
    return (last_day + 1).astype("datetime64[s]")


def weekly_matrix(snapshot: UserSnapshot, n_weeks: int) -> np.ndarray:
    """(n_weeks, len(CATEGORIES)) sums per window of 7 whole days, oldest first, the last one
    ending with the day of ``as_of`` (its rows before ``as_of``)."""
    out = np.zeros((n_weeks, len(CATEGORIES)))
    if n_weeks <= 0:
        return out
    raw = n_weeks if snapshot.raw_weeks is None else min(n_weeks, snapshot.raw_weeks)
    older = n_weeks - raw
    if older > len(snapshot.older_weeks):
        raise ValueError(
            f"{n_weeks} weekly windows asked of a snapshot holding "
            f"{raw + len(snapshot.older_weeks)}"
        )
    if older:
        out[:older] = snapshot.older_weeks[:older][::-1]
    tx = snapshot.transactions
    if len(tx):
        # Whole windows back from the day's end, from seconds (exact for datetime64[s]): a row
        # at a window's first second (midnight) is in it, as its day is.
        age = (day_end(snapshot.as_of) - tx.occurred_at).astype("timedelta64[s]").astype(int)
        back = (age - 1) // (7 * 86400)
        keep = (tx.occurred_at < snapshot.as_of) & (back < raw)
        np.add.at(out, (n_weeks - 1 - back[keep], tx.category[keep]), tx.amount[keep])
    return out


def _window(snapshot: UserSnapshot, days: int) -> np.ndarray:
    """The rows of the last ``days`` whole days (today's before ``as_of``)."""
    if snapshot.raw_weeks is not None and days > 7 * snapshot.raw_weeks:
        raise ValueError(f"a {days}-day window asked of {snapshot.raw_weeks} weeks of rows")
    tx = snapshot.transactions
    start = day_end(snapshot.as_of) - days * DAY
    return (tx.occurred_at >= start) & (tx.occurred_at < snapshot.as_of)


def _balance(snapshot: UserSnapshot, weekly: np.ndarray) -> tuple[float, np.ndarray]:
    """Current balance, and the balance at the end of each of the weekly windows. (The rows
    older than the snapshot's are in the opening balance.)"""
    tx = snapshot.transactions
    known = tx.occurred_at < snapshot.as_of
    sign = np.where(tx.category == INCOME, 1.0, -1.0)
    current = snapshot.profile.opening_balance + float(np.sum(sign[known] * tx.amount[known]))
    net = weekly[:, INCOME] - weekly[:, SPEND_IDX].sum(axis=1) - weekly[:, SAVINGS]
    # Walk back from today's balance: the balance after week k is today's minus later weeks' net.
    after = current - np.concatenate([np.cumsum(net[::-1])[::-1][1:], [0.0]])
    return current, after


def _cv(values: np.ndarray) -> float:
    mean = float(values.mean()) if values.size else 0.0
    return _ratio(float(values.std()), mean, 0.0)


def legacy_state(snapshot: UserSnapshot) -> np.ndarray:
    """The 17-dim state of the original FinCoach, in its order (LEGACY_FEATURE_NAMES)."""
    weekly = weekly_matrix(snapshot, 1 + RECENT_WEEKS)
    last = weekly[-1]
    spend_last = float(last[SPEND_IDX].sum())
    recent = weekly[-RECENT_WEEKS:]
    income_recent = float(recent[:, INCOME].sum())
    spend_recent = float(recent[:, SPEND_IDX].sum())
    before = weekly[:-1, SPEND_IDX].sum(axis=1)
    reference = float(before.mean()) if before.any() else 0.0
    current, _ = _balance(snapshot, weekly)
    return np.array(
        [
            current,
            spend_last,
            float(last[INCOME]),
            float(np.count_nonzero(_window(snapshot, 7))),
            *last.tolist(),
            # Share of income not spent over the last 4 weeks; 0 without income.
            float(np.clip(_ratio(income_recent - spend_recent, income_recent), -1.0, 1.0)),
            # Last week's spending against the 4 weeks before it; 1 (steady) without reference.
            _ratio(spend_last, reference, 1.0),
        ]
    )


def _timing_ratios(snapshot: UserSnapshot, mask: np.ndarray) -> tuple[float, float, float, float]:
    tx = snapshot.transactions
    spend = mask & np.isin(tx.category, SPEND_IDX)
    total = float(tx.amount[spend].sum())
    if total <= 0:
        return 0.0, 0.0, 0.0, 0.0
    ts = tx.occurred_at[spend]
    amount = tx.amount[spend]
    weekday = (ts.astype("datetime64[D]").view("int64") - 4) % 7  # 1970-01-01 was a Thursday
    hour = (ts - ts.astype("datetime64[D]")).astype("timedelta64[h]").astype(int)
    weekend = float(amount[weekday >= 5].sum()) / total
    morning = float(amount[(hour >= 5) & (hour < 12)].sum()) / total
    evening = float(amount[hour >= 18].sum()) / total
    return 1.0 - weekend, weekend, morning, evening


def _impulse(weekly: np.ndarray) -> float:
    """Share of discretionary spending that happened in spike weeks (> 1.5x the median week)."""
    disc = weekly[:, DISC_IDX].sum(axis=1)
    total = float(disc.sum())
    if total <= 0:
        return 0.0
    spikes = disc > 1.5 * max(float(np.median(disc)), 1e-9)
    return float(disc[spikes].sum()) / total


def _behavioral_state(snapshot: UserSnapshot) -> tuple[np.ndarray, dict[str, float]]:
    weekly = weekly_matrix(snapshot, TREND_WEEKS)
    spend_weeks = weekly[:, SPEND_IDX].sum(axis=1)
    recent = weekly[-RECENT_WEEKS:]
    spend_recent = float(recent[:, SPEND_IDX].sum())
    income_recent = float(recent[:, INCOME].sum())
    month_mask = _window(snapshot, 7 * RECENT_WEEKS)
    weekday, weekend, morning, evening = _timing_ratios(snapshot, month_mask)

    tx = snapshot.transactions
    spend_mask = month_mask & np.isin(tx.category, SPEND_IDX)
    amounts = tx.amount[spend_mask]
    large = 0.0
    if amounts.size:
        big = amounts > 3 * float(np.median(amounts))
        large = float(amounts[big].sum() / amounts.sum())
    shares = recent[:, SPEND_IDX].sum(axis=0)
    diversity = 0.0
    if shares.sum() > 0:
        p = shares[shares > 0] / shares.sum()
        diversity = float(-(p * np.log(p)).sum() / np.log(len(SPEND_IDX)))
    volatility = _cv(spend_weeks)
    monthly_spend = float(spend_weeks.mean()) * 52 / 12
    budget = snapshot.profile.monthly_budget or 0.8 * snapshot.profile.monthly_income
    adherence = (
        1.0 - float(np.clip(_ratio(monthly_spend - budget, budget), 0.0, 1.0)) if budget else 0.5
    )
    current, balances = _balance(snapshot, weekly)
    emergency = float(np.clip(_ratio(current, monthly_spend, 0.0), 0.0, 24.0))
    overspend = float(np.clip(_ratio(spend_recent - income_recent, income_recent, 0.0), 0.0, 1.0))
    debt = 1.0 if current < 0 else overspend
    merchants = tx.merchant[spend_mask]
    loyalty = location = 0.0
    if merchants.size:
        _, counts = np.unique(merchants.astype(str), return_counts=True)
        loyalty = float(np.sort(counts)[::-1][:3].sum() / merchants.size)
        # No location data is kept: distinct merchants per transaction stands in for it.
        location = float(counts.size / merchants.size)
    seasonal = _ratio(
        float(recent[:, SPEND_IDX].sum(axis=1).mean()), float(spend_weeks.mean()), 1.0
    )
    savings_rate = _ratio(float(recent[:, SAVINGS].sum()), income_recent, 0.0)
    stress = float(np.mean([overspend > 0.0, emergency < 1.0, savings_rate < 0.05]))
    values = np.array(
        [
            weekday,
            weekend,
            morning,
            evening,
            volatility,
            large,
            _impulse(weekly),
            diversity,
            1.0 / (1.0 + volatility),
            adherence,
            float(np.mean(weekly[:, SAVINGS] > 0)),
            emergency,
            debt,
            loyalty,
            location,
            seasonal,
            _cv(np.abs(balances)),
            stress,
        ]
    )
    extras = {
        "spend_12w": float(spend_weeks.sum()),
        "income_12w": float(weekly[:, INCOME].sum()),
        "savings_12w": float(weekly[:, SAVINGS].sum()),
        "discretionary_12w": float(weekly[:, DISC_IDX].sum()),
        "essential_12w": float(weekly[:, ESSENTIAL_IDX].sum()),
        "weeks_with_income": float(np.count_nonzero(weekly[:, INCOME])),
    }
    return values, extras


def _recent_events(snapshot: UserSnapshot) -> np.ndarray:
    """The events of the last 28 whole days (today's before ``as_of``)."""
    ev = snapshot.events
    start = day_end(snapshot.as_of) - EVENT_DAYS * DAY
    return (ev.timestamp >= start) & (ev.timestamp < snapshot.as_of)


def _events_per_week(snapshot: UserSnapshot) -> float:
    return float(snapshot.events.counts[_recent_events(snapshot)].sum()) / 4.0


def events_per_week(snapshot: UserSnapshot) -> float:
    """App events per week over the last 28 days (usage, not money: no segment feature)."""
    return _events_per_week(snapshot)


def engagement_score(snapshot: UserSnapshot) -> float:
    """0-100: app activity over the last 28 days (events per week, saturating at ~20/week,
    weighted up for interactions with recommendations and goals)."""
    ev = snapshot.events
    recent = _recent_events(snapshot)
    weights = np.ones(len(EVENT_TYPES))
    weights[EVENT_TYPES.index("recommendation_interaction")] = 2.0
    weights[EVENT_TYPES.index("goal_modification")] = 2.0
    weighted = float((weights[ev.event_type[recent]] * ev.counts[recent]).sum()) / 4.0
    return float(100.0 * (1.0 - np.exp(-weighted / 10.0)))


def enhanced_state(snapshot: UserSnapshot, segment_id: int | None = None) -> np.ndarray:
    """The enhanced state: legacy (17) + behavioral (18) + engagement and goals (4) + segment
    one-hot (5) + last recommended action one-hot (10)."""
    behavioral, _ = _behavioral_state(snapshot)
    today = snapshot.as_of.astype("datetime64[D]")
    active = [g for g in snapshot.goals if g.status == "active"]
    progress = (
        float(np.mean([min(g.current_amount / g.target_amount, 1.0) for g in active]))
        if active
        else 0.0
    )
    weeks_left = (
        min(float((np.datetime64(g.target_date, "D") - today) / WEEK) for g in active)
        if active
        else 52.0
    )
    segment = np.zeros(len(SEGMENT_NAMES))
    if segment_id is not None:
        if not 0 <= segment_id < len(SEGMENT_NAMES):
            raise ValueError(f"segment_id must be in 0..{len(SEGMENT_NAMES) - 1}, got {segment_id}")
        segment[segment_id] = 1.0
    extra = np.array(
        [
            engagement_score(snapshot) / 100.0,
            _events_per_week(snapshot),
            progress,
            float(np.clip(weeks_left, 0.0, 104.0)) / 52.0,
        ]
    )
    last = np.zeros(len(ACTIONS))
    if snapshot.last_action is not None:
        if not 0 <= snapshot.last_action < len(ACTIONS):
            raise ValueError(f"last_action must be in 0..{len(ACTIONS) - 1}")
        last[snapshot.last_action] = 1.0
    return np.concatenate([legacy_state(snapshot), behavioral, extra, segment, last])


def behavior_features(snapshot: UserSnapshot) -> np.ndarray:
    """Scale-free behavioral features of money for segmentation (BEHAVIOR_FEATURE_NAMES)."""
    behavioral, totals = _behavioral_state(snapshot)
    names = BEHAVIORAL_STATE_NAMES
    income = totals["income_12w"]
    spend = totals["spend_12w"]
    return np.array(
        [
            float(np.clip(_ratio(spend, income, 1.0), 0.0, 3.0)),
            float(np.clip(_ratio(totals["savings_12w"], income, 0.0), 0.0, 1.0)),
            _ratio(totals["discretionary_12w"], spend, 0.0),
            _ratio(totals["essential_12w"], spend, 0.0),
            behavioral[names.index("spending_volatility")],
            behavioral[names.index("impulse_buying_score")],
            behavioral[names.index("weekend_spending_ratio")],
            behavioral[names.index("evening_spending_ratio")],
            behavioral[names.index("savings_consistency")],
        ]
    )
