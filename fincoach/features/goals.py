"""Features of one savings goal for the goal-probability model, from what the app knows when it
predicts: the goal (target, amount saved, weeks elapsed and left), the user's weekly history of
saving and income (most recent week last; may be short or empty), the number of the user's goals
and, optionally, the monthly income of the profile.

The saving stream is what funds goals: in the app, the user's net saving per week (income
minus spending, recurring bills included; ``net_saving_weeks``), which can be negative; in the
simulator, whose goals are funded by savings transfers, those transfers.

Savings are assumed to be split evenly over the user's goals, so the "saving per goal" is the
user's weekly savings divided by ``n_goals``. The level of saving enters only through the
``PLANNED_SAVING_FEATURES``: by default they use the recent saving per goal (the mean over the
window and the mean of the weeks with a transfer), and passing ``planned_saving`` asks "what if
the user saved this much per goal every week from now on" (both levels become the plan; the
history's regularity features stay as they are).

Every output is finite, including a brand-new user with no history: ratios with an empty or
zero denominator fall back to the neutral value documented beside them.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import ArrayLike

# A year of history: the simulator's savings have no trend, so a longer window gives a more
# precise level; longer windows would mostly add stale behaviour on real data.
WINDOW_WEEKS: Final = 52
TREND_WEEKS: Final = 8  # the "recent" part of the trend ratio
LOG_COVERAGE_CLIP: Final = 5.0
MAX_RATIO: Final = 10.0  # cap of ratios whose denominator can be tiny
CV_PRIOR: Final = 0.5  # prior weekly coefficient of variation of savings ...
CV_PRIOR_WEEKS: Final = 13.0  # ... worth this many weeks of history
CV_FLOOR: Final = 0.05  # keeps margin_z finite for perfectly regular savers
MAX_Z: Final = 10.0
BLOCK_WEEKS: Final = 4  # net_z measures noise on 4-week sums (monthly pay and bills cancel)
DRIFT: Final = 0.05  # sd of the change of the weekly saving's mean, per week ahead, / income

GOAL_FEATURE_NAMES: Final[tuple[str, ...]] = (
    "gap_to_target",  # (target - current) / target, 0 once reached
    "weeks_left",  # weeks until the target date (0 when due or overdue)
    "elapsed_share",  # weeks elapsed / (elapsed + left): how much of the goal's time is used
    "log_coverage",  # log(planned saving x transfers left / gap): > 0 means on track
    "log_coverage_typical",  # the same with the mean of the weeks that had a transfer
    "margin_z",  # (projected - gap) / its standard error from savings noise (normal approx.)
    "required_to_income",  # weekly saving all goals would need at this pace / weekly income
    "planned_savings_rate",  # planned saving x n_goals / weekly income
    "savings_cv",  # std / mean of weekly savings (0 without savings)
    "zero_saving_share",  # share of weeks without a savings transfer (1 without history)
    "savings_trend",  # mean of the last TREND_WEEKS weeks / mean of the window (1 if undefined)
    "n_goals",
    "history_weeks",  # weeks of history used (at most WINDOW_WEEKS)
    "net_z",  # (expected saved by the date - target) / its standard deviation (see _net_z)
)
N_GOAL_FEATURES: Final = len(GOAL_FEATURE_NAMES)
GOAL_FEATURE_INDEX: Final = {name: i for i, name in enumerate(GOAL_FEATURE_NAMES)}
# The features that change when the user commits to a different weekly saving per goal.
PLANNED_SAVING_FEATURES: Final = (
    "log_coverage",
    "log_coverage_typical",
    "margin_z",
    "planned_savings_rate",
    "net_z",
)
# Direction in which each feature moves the chance of reaching the goal when everything else
# is fixed (+1 helps, -1 hurts, 0 either way): the model's monotonic constraints. Together they
# make the probability non-decreasing in current_amount and in the planned saving.
GOAL_FEATURE_MONOTONIC: Final = (-1, 0, 0, 1, 1, 1, -1, 1, 0, 0, 0, 0, 0, 1)
assert len(GOAL_FEATURE_MONOTONIC) == N_GOAL_FEATURES


def _column(name: str, value: ArrayLike, n: int) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != n):
        raise ValueError(f"{name} must be a scalar or a vector of length {n}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return np.broadcast_to(arr, (n,))


def _history(name: str, value: ArrayLike) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (goals, weeks), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _log_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """log(num / den) clipped to +-LOG_COVERAGE_CLIP; den = 0 (nothing left to save) is the top."""
    out = np.full(num.shape, LOG_COVERAGE_CLIP)
    both = (den > 0) & (num > 0)
    out[both] = np.log(num[both]) - np.log(den[both])  # no overflow for a tiny den
    out[(den > 0) & (num <= 0)] = -LOG_COVERAGE_CLIP
    return np.clip(out, -LOG_COVERAGE_CLIP, LOG_COVERAGE_CLIP)


def goal_features_batch(
    *,
    target_amount: ArrayLike,
    current_amount: ArrayLike,
    weeks_left: ArrayLike,
    weeks_elapsed: ArrayLike,
    weekly_savings: ArrayLike,
    weekly_income: ArrayLike,
    n_goals: ArrayLike,
    monthly_income: ArrayLike | None = None,
    planned_saving: ArrayLike | None = None,
) -> np.ndarray:
    """(n, N_GOAL_FEATURES) features of n goals whose histories have the same length.

    ``weekly_savings`` and ``weekly_income`` are (n, weeks) arrays, most recent week last (weeks
    may be 0). Scalars broadcast. ``monthly_income`` (profile) stands in for the weekly income
    when the history has none. ``planned_saving`` (per goal per week) replaces the recent mean.
    """
    savings = _history("weekly_savings", weekly_savings)
    income = _history("weekly_income", weekly_income)
    if savings.shape != income.shape:
        raise ValueError(
            f"weekly_savings {savings.shape} and weekly_income {income.shape} differ in shape"
        )
    n = savings.shape[0]
    target = _column("target_amount", target_amount, n)
    current = _column("current_amount", current_amount, n)
    left = np.maximum(_column("weeks_left", weeks_left, n), 0.0)
    elapsed = _column("weeks_elapsed", weeks_elapsed, n)
    goals = _column("n_goals", n_goals, n)
    if (target <= 0).any():
        raise ValueError("target_amount must be > 0")
    if (current < 0).any():
        raise ValueError("current_amount must be >= 0")
    if (elapsed < 0).any():
        raise ValueError("weeks_elapsed must be >= 0")
    if (goals < 1).any():
        raise ValueError("n_goals must be >= 1 (the goal itself counts)")

    window = savings[:, -WINDOW_WEEKS:]
    weeks = window.shape[1]
    if weeks:
        mean_saving = window.mean(axis=1)
        saved_weeks = window > 0
        typical_saving = np.where(
            saved_weeks.any(axis=1),
            (window * saved_weeks).sum(axis=1) / np.maximum(saved_weeks.sum(axis=1), 1),
            0.0,
        )
        std_saving = window.std(axis=1)
        zero_share = (window <= 0).mean(axis=1)
        recent = window[:, -TREND_WEEKS:].mean(axis=1)
        weekly_pay = income[:, -WINDOW_WEEKS:].mean(axis=1)
    else:
        mean_saving = typical_saving = std_saving = recent = weekly_pay = np.zeros(n)
        zero_share = np.ones(n)
    if monthly_income is not None:
        profile = _column("monthly_income", monthly_income, n) * 12.0 / 52.0
        if (profile < 0).any():
            raise ValueError("monthly_income must be >= 0")
        weekly_pay = np.where(weekly_pay > 0, weekly_pay, profile)
    has_pay = weekly_pay > 0
    pay = np.where(has_pay, weekly_pay, 1.0)

    if planned_saving is None:
        planned = np.maximum(mean_saving, 0.0) / goals
        planned_typical = np.maximum(typical_saving, 0.0) / goals
    else:
        planned = planned_typical = np.maximum(_column("planned_saving", planned_saving, n), 0.0)
    # net_z keeps a negative mean: spending more than is earned makes a goal less likely.
    planned_mean = planned if planned_saving is not None else None
    gap = np.maximum(target - current, 0.0)
    transfers = left + 1.0  # the saving of the current week still counts, as does the due week's
    projected = planned * transfers
    log_coverage = _log_ratio(projected, gap)
    log_coverage_typical = _log_ratio(planned_typical * transfers, gap)

    positive = mean_saving > 0
    safe_mean = np.where(positive, mean_saving, 1.0)
    cv = np.where(positive, np.minimum(std_saving / safe_mean, MAX_RATIO), 0.0)
    trend = np.where(positive, np.clip(recent / safe_mean, 0.0, MAX_RATIO), 1.0)
    # The projection's relative error under a normal approximation: weekly noise summed over
    # the transfers left, plus the error of the mean itself from the weeks of history.
    # The weekly cv is shrunk toward a prior: a few weeks say little about a user's regularity.
    shrunk_cv = (weeks * cv + CV_PRIOR_WEEKS * CV_PRIOR) / (weeks + CV_PRIOR_WEEKS)
    rel_se = np.maximum(shrunk_cv, CV_FLOOR) * np.sqrt(1.0 / transfers + 1.0 / max(weeks, 1))
    # margin = 1 - gap / projected: 1 once reached, -inf (clipped) when nothing is projected.
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = np.where(gap > 0, 1.0 - gap / projected, 1.0)
    margin_z = np.clip(margin / rel_se, -MAX_Z, MAX_Z)

    # Without a known income, "required / income" is as bad as it gets whenever a gap remains.
    required_to_income = np.where(
        has_pay,
        np.minimum(gap / transfers * goals / pay, MAX_RATIO),
        np.where(gap > 0, MAX_RATIO, 0.0),
    )
    planned_rate = np.where(has_pay, np.minimum(planned * goals / pay, MAX_RATIO), 0.0)
    span = elapsed + left
    elapsed_share = np.where(span > 0, elapsed / np.where(span > 0, span, 1.0), 1.0)

    net_z = _net_z(window, planned_mean, gap, transfers, goals, weekly_pay)
    out = np.column_stack(
        [
            gap / target,
            left,
            elapsed_share,
            log_coverage,
            log_coverage_typical,
            margin_z,
            required_to_income,
            planned_rate,
            cv,
            zero_share,
            trend,
            goals,
            np.full(n, float(weeks)),
            net_z,
        ]
    )
    return out


def _net_z(
    window: np.ndarray,
    planned: np.ndarray | None,
    gap: np.ndarray,
    transfers: np.ndarray,
    goals: np.ndarray,
    weekly_pay: np.ndarray,
) -> np.ndarray:
    """z of reaching the gap under a normal approximation of the saving to come.

    The saving over the ``transfers`` weeks left is normal with mean ``planned x transfers``
    per goal (from the history: the median 4-week sum / 4, a typical month rather than one
    inflated by a rare windfall) and a variance with three parts: week-to-week noise, measured
    on 4-week sums so that a monthly pay and a monthly mortgage cancel as they do in a bank
    account; the error of the mean from the weeks of history; and a drift of the mean over the
    coming months (``DRIFT`` of the weekly income, per week ahead). Every part scales with the
    amounts, so z does not depend on the currency unit.
    """
    n, weeks = window.shape
    location = window.mean(axis=1) if weeks else np.zeros(n)
    if weeks >= 2 * BLOCK_WEEKS:
        blocks = weeks // BLOCK_WEEKS
        sums = window[:, weeks - blocks * BLOCK_WEEKS :].reshape(n, blocks, BLOCK_WEEKS).sum(2)
        var_week = sums.var(axis=1, ddof=1) / BLOCK_WEEKS
        # A typical month, not one inflated by a rare windfall (a bonus, a refund, a sale):
        # the coming weeks most likely hold none.
        location = np.median(sums, axis=1) / BLOCK_WEEKS
    elif weeks >= 2:
        var_week = window.var(axis=1, ddof=1)
    else:
        var_week = np.zeros(n)
    flow = np.maximum(weekly_pay, np.abs(window).mean(axis=1) if weeks else 0.0)
    var_week = np.maximum(var_week, (CV_FLOOR * flow) ** 2)
    mean_error = var_week / max(weeks, 1)
    var_total = transfers * var_week + transfers**2 * (mean_error + (DRIFT * flow) ** 2)
    sd = np.sqrt(var_total) / goals
    if planned is None:
        planned = location / goals
    expected = planned * transfers
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, (expected - gap) / sd, np.where(expected >= gap, MAX_Z, -MAX_Z))
    z = np.where(gap <= 0, MAX_Z, z)
    return np.clip(np.nan_to_num(z, nan=0.0), -MAX_Z, MAX_Z)


def goal_features(
    *,
    target_amount: float,
    current_amount: float,
    weeks_left: float,
    weeks_elapsed: float,
    weekly_savings: ArrayLike,
    weekly_income: ArrayLike,
    n_goals: int,
    monthly_income: float | None = None,
    planned_saving: float | None = None,
) -> np.ndarray:
    """(N_GOAL_FEATURES,) features of one goal; histories are 1-D, most recent week last."""
    savings = np.asarray(weekly_savings, dtype=float)
    income = np.asarray(weekly_income, dtype=float)
    if savings.ndim != 1 or income.ndim != 1:
        raise ValueError(
            f"weekly_savings and weekly_income must be 1-D, got {savings.shape} and {income.shape}"
        )
    for name, value in (
        ("target_amount", target_amount),
        ("current_amount", current_amount),
        ("weeks_left", weeks_left),
        ("weeks_elapsed", weeks_elapsed),
        ("n_goals", n_goals),
        ("monthly_income", monthly_income),
        ("planned_saving", planned_saving),
    ):
        if value is not None and np.ndim(value) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {np.shape(value)}")
    return goal_features_batch(
        target_amount=target_amount,
        current_amount=current_amount,
        weeks_left=weeks_left,
        weeks_elapsed=weeks_elapsed,
        weekly_savings=savings[None, :],
        weekly_income=income[None, :],
        n_goals=n_goals,
        monthly_income=monthly_income,
        planned_saving=planned_saving,
    )[0]
