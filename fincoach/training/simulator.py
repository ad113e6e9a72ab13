"""A seeded simulator of users' finances: the ground truth every model is trained and scored on.

Each user has one of five latent behavioral types (``features.vocab.LATENT_TYPES``). A type sets
the income level, how much of it is spent and on what, how noisy and how intermittent spending
is (real categories have zero weeks), how often impulse sprees happen, how much is saved, and
how the user responds to each coaching action. Spending has a yearly seasonality (December
shopping, summer entertainment) and a persistent per-user mood (AR(1)), so history carries
signal that a forecaster can use beyond the last value.

The simulation runs ``n_weeks`` of history plus ``future_weeks`` beyond it. Only the history is
written as transactions; the future is kept for evaluation (forecast hold-out, whether a goal is
reached by its date). Same config, same data: every draw comes from one seeded Generator.

Pure numpy: no database, Ray or web imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np

from fincoach.features.vocab import (
    CATEGORIES,
    CATEGORY_INDEX,
    RISK_TOLERANCES,
    SPENDING_CATEGORIES,
)
from fincoach.training.sim_profiles import (
    CATEGORY_SPLIT,
    CATEGORY_ZERO_PROB,
    DISCRETIONARY_MASK,
    GOAL_NAMES,
    MERCHANTS,
    N_TYPES,
    TYPE_CATEGORY_WEIGHTS,
    TYPE_DEBT,
    TYPE_ENGAGEMENT,
    TYPE_EVENING,
    TYPE_EVENT_MIX,
    TYPE_IMPULSE,
    TYPE_INCOME,
    TYPE_SAVINGS_RATE,
    TYPE_SPEND_RATIO,
    TYPE_VOLATILITY,
    TYPE_WEEKEND,
    seasonality,
)

CAT_INDEX = CATEGORY_INDEX
SPEND_IDX = np.array([CAT_INDEX[c] for c in SPENDING_CATEGORIES])
SAVINGS_IDX = CAT_INDEX["savings"]
INCOME_IDX = CAT_INDEX["income"]


@dataclass(frozen=True)
class SimConfig:
    """What to simulate; the same config always gives the same population."""

    n_users: int = 200
    n_weeks: int = 52
    seed: int = 0
    start: date = date(2025, 1, 6)  # a Monday
    future_weeks: int = 26
    type_probs: tuple[float, ...] = (0.2, 0.2, 0.2, 0.2, 0.2)

    def __post_init__(self) -> None:
        if self.n_users < 1 or self.n_weeks < 1 or self.future_weeks < 0:
            raise ValueError("n_users and n_weeks must be >= 1 and future_weeks >= 0")
        if self.start.weekday() != 0:
            raise ValueError(f"start must be a Monday, got {self.start:%A %Y-%m-%d}")
        if len(self.type_probs) != N_TYPES or abs(sum(self.type_probs) - 1) > 1e-9:
            raise ValueError(f"type_probs must be {N_TYPES} probabilities summing to 1")


@dataclass(frozen=True)
class SimUser:
    index: int
    latent_type: int
    full_name: str
    weekly_income: float
    opening_balance: float
    risk_tolerance: str
    monthly_budget: float
    has_debt: bool
    engagement: float  # behavioral events per week


@dataclass(frozen=True)
class SimGoal:
    user: int
    name: str
    target_amount: float
    created_week: int
    target_week: int  # relative to the simulation start; may lie in the future
    current_amount: float  # saved toward it by the end of the history
    reached: bool  # ground truth: saved >= target by target_week
    status: str  # as the app would show it at the end of the history


@dataclass
class Transactions:
    """Columnar transaction rows (one array per column, same length)."""

    user: np.ndarray
    occurred_at: np.ndarray  # datetime64[s], UTC
    amount: np.ndarray
    category: np.ndarray  # index into CATEGORIES
    merchant: np.ndarray  # object array of str
    kind: np.ndarray  # object array: expense / income / transfer

    def __len__(self) -> int:
        return int(self.user.shape[0])


@dataclass
class Events:
    """Columnar behavioral events (app usage) over the history."""

    user: np.ndarray
    timestamp: np.ndarray  # datetime64[s], UTC
    event_type: np.ndarray  # index into EVENT_TYPES

    def __len__(self) -> int:
        return int(self.user.shape[0])


@dataclass
class Population:
    config: SimConfig
    users: list[SimUser]
    latent: np.ndarray  # (n_users,) latent type index
    weekly: np.ndarray  # (n_users, n_weeks, len(CATEGORIES)) amounts, equal to the transactions
    future: np.ndarray  # (n_users, future_weeks, len(CATEGORIES)) held-out truth
    transactions: Transactions
    goals: list[SimGoal] = field(default_factory=list)
    events: Events | None = None
    params: UserParams | None = None

    def week_start(self, week: int) -> date:
        return self.config.start + timedelta(weeks=week)

    @property
    def end(self) -> date:
        """First day after the history."""
        return self.week_start(self.config.n_weeks)


@dataclass
class UserParams:
    """The latent parameters of each user (arrays over users), drawn once per population."""

    latent: np.ndarray
    income: np.ndarray  # median weekly income
    spend_ratio: np.ndarray
    savings_rate: np.ndarray
    weights: np.ndarray  # (n, n_spending) category weights
    volatility: np.ndarray
    engagement: np.ndarray
    has_debt: np.ndarray

    def __len__(self) -> int:
        return int(self.latent.shape[0])


def draw_params(n: int, type_probs: tuple[float, ...], rng: np.random.Generator) -> UserParams:
    latent = rng.choice(N_TYPES, size=n, p=np.asarray(type_probs))
    weights = TYPE_CATEGORY_WEIGHTS[latent] * rng.lognormal(0.0, 0.2, size=(n, len(SPEND_IDX)))
    return UserParams(
        latent=latent,
        income=TYPE_INCOME[latent] * rng.lognormal(0.0, 0.25, size=n),
        spend_ratio=np.clip(TYPE_SPEND_RATIO[latent] + rng.normal(0, 0.04, size=n), 0.3, 1.1),
        savings_rate=np.clip(TYPE_SAVINGS_RATE[latent] + rng.normal(0, 0.02, size=n), 0.0, 0.5),
        weights=weights / weights.sum(axis=1, keepdims=True),
        volatility=TYPE_VOLATILITY[latent] * rng.uniform(0.8, 1.2, size=n),
        engagement=TYPE_ENGAGEMENT[latent] * rng.lognormal(0.0, 0.3, size=n),
        has_debt=rng.random(n) < TYPE_DEBT[latent],
    )


@dataclass
class WeekDraw:
    """One simulated week before any coaching: the amounts and the random draws behind them."""

    amounts: np.ndarray  # (n, len(CATEGORIES))
    mood: np.ndarray  # the AR(1) state after this week


def simulate_week(
    params: UserParams,
    mood: np.ndarray,
    season: np.ndarray,
    rng: np.random.Generator,
    *,
    discretionary_cut: np.ndarray | None = None,
    savings_up: np.ndarray | None = None,
) -> WeekDraw:
    """One week of every user's money. Coaching effects (from accepted advice) cut
    discretionary spending by a fraction and move a share of income from spending to savings."""
    n = len(params)
    n_spend = len(SPEND_IDX)
    mood = 0.6 * mood + rng.normal(0.0, 0.15, size=n)  # spending streaks last a few weeks
    base = (params.income * params.spend_ratio)[:, None] * params.weights * season[None, :]
    sigma = params.volatility[:, None]
    spend = base * rng.lognormal(-0.5 * sigma**2, sigma, (n, n_spend)) * np.exp(mood)[:, None]
    impulse = rng.random(n) < TYPE_IMPULSE[params.latent]
    spree = rng.uniform(2.0, 4.0, size=n)
    spend[:, DISCRETIONARY_MASK] *= np.where(impulse, spree, 1.0)[:, None]
    spend[rng.random((n, n_spend)) < CATEGORY_ZERO_PROB[None, :]] = 0.0
    paid = params.income * rng.lognormal(0.0, 0.03, size=n)
    saved = paid * params.savings_rate * rng.lognormal(0.0, 0.15, size=n)
    saved = np.where(rng.random(n) < 0.9, saved, 0.0)
    if discretionary_cut is not None:
        spend[:, DISCRETIONARY_MASK] *= (1.0 - np.clip(discretionary_cut, 0.0, 0.9))[:, None]
    if savings_up is not None:
        # Money moved to savings comes out of spending, pro rata, never below zero.
        moved = np.minimum(np.clip(savings_up, 0.0, 0.5) * paid, spend.sum(axis=1))
        total = np.maximum(spend.sum(axis=1), 1e-9)
        spend *= (1.0 - moved / total)[:, None]
        saved = saved + moved
    amounts = np.zeros((n, len(CATEGORIES)))
    amounts[:, SPEND_IDX] = spend
    amounts[:, INCOME_IDX] = paid
    amounts[:, SAVINGS_IDX] = saved
    return WeekDraw(amounts=amounts, mood=mood)


def simulate(config: SimConfig) -> Population:
    """Simulate a population: users, weekly amounts per category, transactions and goals."""
    rng = np.random.default_rng(config.seed)
    n, total_weeks = config.n_users, config.n_weeks + config.future_weeks
    params = draw_params(n, config.type_probs, rng)
    latent, income, spend_ratio = params.latent, params.income, params.spend_ratio

    season = seasonality(np.arange(total_weeks), config.start)
    amounts = np.zeros((n, total_weeks, len(CATEGORIES)))
    mood = np.zeros(n)
    for w in range(total_weeks):
        draw = simulate_week(params, mood, season[w], rng)
        amounts[:, w], mood = draw.amounts, draw.mood
    amounts = np.round(amounts, 2)

    users = [
        SimUser(
            index=i,
            latent_type=int(latent[i]),
            full_name=f"Demo User {i + 1}",
            weekly_income=round(float(income[i]), 2),
            opening_balance=round(float(income[i] * rng.uniform(0.5, 6.0)), 2),
            risk_tolerance=RISK_TOLERANCES[int(rng.integers(len(RISK_TOLERANCES)))],
            monthly_budget=round(float(income[i] * spend_ratio[i] * 52 / 12), 2),
            has_debt=bool(params.has_debt[i]),
            engagement=float(params.engagement[i]),
        )
        for i in range(n)
    ]
    history = amounts[:, : config.n_weeks]
    transactions, weekly = to_transactions(history, latent, config.start, rng)
    goals = _goals(amounts[:, :, SAVINGS_IDX], latent, config, rng)
    events = _events(params.engagement, latent, config, rng)
    return Population(
        config=config,
        users=users,
        latent=latent,
        weekly=weekly,
        future=amounts[:, config.n_weeks :],
        transactions=transactions,
        goals=goals,
        events=events,
        params=params,
    )


# Event mix per latent type (columns follow EVENT_TYPES): goal-oriented users edit goals more,
# impulse buyers browse and search more.
def _events(
    engagement: np.ndarray, latent: np.ndarray, config: SimConfig, rng: np.random.Generator
) -> Events:
    """App usage over the history: Poisson(engagement) events per user-week."""
    counts = rng.poisson(np.repeat(engagement[:, None], config.n_weeks, axis=1))
    users = np.repeat(np.repeat(np.arange(config.n_users), config.n_weeks), counts.ravel())
    weeks = np.repeat(np.tile(np.arange(config.n_weeks), config.n_users), counts.ravel())
    seconds = rng.integers(0, 7 * 24 * 3600, size=users.shape[0])
    origin = np.datetime64(datetime(config.start.year, config.start.month, config.start.day), "s")
    timestamp = origin + (weeks * 7 * 24 * 3600 + seconds).astype("timedelta64[s]")
    cumulative = TYPE_EVENT_MIX.cumsum(axis=1)[latent[users]]
    kind = (rng.random(users.shape[0])[:, None] > cumulative).sum(axis=1)
    order = np.lexsort((timestamp, users))
    return Events(user=users[order], timestamp=timestamp[order], event_type=kind[order])


def to_transactions(
    history: np.ndarray, latent: np.ndarray, start: date, rng: np.random.Generator
) -> tuple[Transactions, np.ndarray]:
    """Split weekly amounts into dated transactions; return them and the weekly sums they make."""
    n, n_weeks, _ = history.shape
    u, w, c = np.nonzero(history > 0)
    split = np.zeros(len(CATEGORIES))
    split[SPEND_IDX] = CATEGORY_SPLIT
    pieces = 1 + np.minimum(rng.poisson(split[c]), 4)
    row_u, row_w, row_c = (np.repeat(a, pieces) for a in (u, w, c))
    share = rng.gamma(2.0, size=row_u.shape[0])
    starts = np.concatenate([[0], np.cumsum(pieces)[:-1]])
    share /= np.repeat(np.add.reduceat(share, starts), pieces)
    amount = np.maximum(np.round(np.repeat(history[u, w, c], pieces) * share, 2), 0.01)

    # Day of week: weekend-heavy types spend more on Saturday and Sunday; income lands on Friday,
    # savings on Monday. Hour: evening-heavy types buy more after 18:00.
    weekend = rng.random(row_u.shape[0]) < TYPE_WEEKEND[latent[row_u]]
    day = np.where(weekend, rng.integers(5, 7, row_u.shape[0]), rng.integers(0, 5, row_u.shape[0]))
    day = np.where(row_c == INCOME_IDX, 4, np.where(row_c == SAVINGS_IDX, 0, day))
    evening = rng.random(row_u.shape[0]) < TYPE_EVENING[latent[row_u]]
    hour = np.where(
        evening, rng.integers(18, 24, row_u.shape[0]), rng.integers(7, 18, row_u.shape[0])
    )
    minute = rng.integers(0, 60, row_u.shape[0])
    origin = np.datetime64(datetime(start.year, start.month, start.day), "s")
    occurred = (
        origin
        + (row_w * 7 + day).astype("timedelta64[D]")
        + hour.astype("timedelta64[h]")
        + minute.astype("timedelta64[m]")
    )

    names = np.array(CATEGORIES, dtype=object)[row_c]
    merchant = np.empty(row_u.shape[0], dtype=object)
    pick = rng.random(row_u.shape[0])
    for cat, options in MERCHANTS.items():
        mask = names == cat
        merchant[mask] = np.array(options, dtype=object)[(pick[mask] * len(options)).astype(int)]
    kind = np.where(
        row_c == INCOME_IDX, "income", np.where(row_c == SAVINGS_IDX, "transfer", "expense")
    ).astype(object)

    order = np.lexsort((occurred, row_u))
    weekly = np.zeros_like(history)
    np.add.at(weekly, (row_u, row_w, row_c), amount)
    txs = Transactions(
        user=row_u[order],
        occurred_at=occurred[order],
        amount=amount[order],
        category=row_c[order],
        merchant=merchant[order],
        kind=kind[order],
    )
    return txs, np.round(weekly, 2)


def _goals(
    savings: np.ndarray, latent: np.ndarray, config: SimConfig, rng: np.random.Generator
) -> list[SimGoal]:
    """1-3 goals per user funded by their savings; targets sized so about half are reached."""
    n, total_weeks = savings.shape
    goals: list[SimGoal] = []
    for i in range(n):
        k = int(rng.integers(1, 4))
        names = rng.choice(len(GOAL_NAMES), size=k, replace=False)
        for j in range(k):
            created = int(rng.integers(0, max(1, config.n_weeks - 4)))
            duration = int(rng.integers(8, 53))
            target_week = min(created + duration, total_weeks - 1)
            # Each goal gets an equal share of the savings stream while it is open.
            share = savings[i, created : target_week + 1] / k
            expected = float(np.mean(savings[i, : max(1, created + 1)])) / k * (duration + 1)
            ambition = rng.lognormal(-0.1 if latent[i] == 2 else 0.0, 0.35)
            target = round(max(50.0, expected * ambition), 2)
            cumulative = np.cumsum(share)
            reached = bool(cumulative[-1] >= target)
            seen = min(config.n_weeks, target_week + 1) - created
            current = round(float(min(target, cumulative[seen - 1] if seen > 0 else 0.0)), 2)
            if target_week < config.n_weeks:
                status = "achieved" if reached else "abandoned"
            else:
                status = "achieved" if current >= target else "active"
            goals.append(
                SimGoal(
                    user=i,
                    name=GOAL_NAMES[int(names[j])],
                    target_amount=target,
                    created_week=created,
                    target_week=target_week,
                    current_amount=current,
                    reached=reached,
                    status=status,
                )
            )
    return goals
