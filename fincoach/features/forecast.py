"""Features of the spending forecaster, built from a weekly spend matrix per user.

The input is ``history[..., week, category]``: weekly spend per spending category (column order
``SPENDING_CATEGORIES``), oldest week first, possibly with very few weeks or none at all. One row
is built per (user, forecast step, category), so a single global model serves every user and
category. Amount-like features are divided by the user's per-category *level* (a recent mean,
shrunk toward a prior when the history is short), which makes them scale-free: a user who spends
50 a week on dining and one who spends 500 produce the same features when they behave alike, and
the model's target is spend / level.

The prior comes from the caller (the forecaster's per-segment profile), which keeps this module
free of fitted state. Features that need weeks the history does not have are NaN (the
gradient-boosted model handles missing values natively); everything else is finite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from fincoach.features.vocab import DISCRETIONARY_CATEGORIES, SEGMENT_NAMES, SPENDING_CATEGORIES

N_CATEGORIES: Final = len(SPENDING_CATEGORIES)
N_SEGMENTS: Final = len(SEGMENT_NAMES)
MAX_HORIZON: Final = 4
# The seasonal period in weeks. ISO week 53 folds onto week 1, as in the simulator.
SEASON_PERIOD: Final = 52
# The level is the mean of at most this many recent weeks: a full year, so it is not tilted by
# the season once a year of history exists.
LEVEL_WEEKS: Final = 52
# Pseudo-weeks of prior in the shrunk level: the user's total weekly spend is steadier than one
# category's, so it needs fewer real weeks to outweigh the segment's total.
PRIOR_WEEKS_TOTAL: Final = 1.0
PRIOR_WEEKS_CATEGORY: Final = 4.0
# Currency units a week: keeps the level positive for an all-zero history so ratios stay finite.
LEVEL_FLOOR: Final = 1.0
UNKNOWN_SEGMENT: Final = -1

_DISC = np.isin(np.array(SPENDING_CATEGORIES), DISCRETIONARY_CATEGORIES)
_LAGS: Final = (1, 2, 3, 4)
_MEAN_WINDOWS: Final = (4, 8, 13, 26, 52)
_MEDIAN_WINDOWS: Final = (8, 26)
_ZERO_WINDOWS: Final = (13, 52)
_SPREAD_WEEKS: Final = 26
_TOTAL_LAGS: Final = (1, 2, 3, 4)

FEATURE_NAMES: Final[tuple[str, ...]] = (
    "category_id",
    *(f"segment_{i}" for i in range(N_SEGMENTS)),
    "step",
    "target_season_sin",
    "target_season_cos",
    "window_season_sin",
    "window_season_cos",
    "log1p_n_weeks",
    "prior_weight",
    "log_level",
    "log_total_level",
    "category_share",
    *(f"lag_{k}" for k in _LAGS),
    *(f"mean_{w}" for w in _MEAN_WINDOWS),
    *(f"median_{w}" for w in _MEDIAN_WINDOWS),
    *(f"zero_share_{w}" for w in _ZERO_WINDOWS),
    f"q10_{_SPREAD_WEEKS}",
    f"q90_{_SPREAD_WEEKS}",
    f"log_sd_positive_{_SPREAD_WEEKS}",
    "seasonal_lag_52",
    *(f"total_lag_{k}" for k in _TOTAL_LAGS),
    "total_mean_4",
    "essential_total_lag_1",
    "discretionary_total_lag_1",
)
N_FEATURES: Final = len(FEATURE_NAMES)
CATEGORY_FEATURE: Final = FEATURE_NAMES.index("category_id")


@dataclass(frozen=True)
class ForecastFeatures:
    """Rows for ``n`` users: ``X[(user * horizon + step) * N_CATEGORIES + category]``."""

    X: np.ndarray  # (n * horizon * N_CATEGORIES, N_FEATURES)
    level: np.ndarray  # (n, N_CATEGORIES) weekly level that scale-free targets are relative to
    horizon: int

    def to_amounts(self, ratio: np.ndarray) -> np.ndarray:
        """Turn per-row predicted ratios ``(rows, ...)`` into amounts ``(n, horizon, C, ...)``."""
        n = self.level.shape[0]
        shaped = ratio.reshape(n, self.horizon, N_CATEGORIES, *ratio.shape[1:])
        extra = (None,) * (ratio.ndim - 1)
        out: np.ndarray = shaped * self.level[(slice(None), None, slice(None), *extra)]
        return out


def check_history(history: Any, *, batched: bool = False) -> np.ndarray:
    """``history`` as a float array ``([n,] weeks, N_CATEGORIES)``; ValueError if malformed."""
    arr = np.asarray(history, dtype=float)
    ndim = 3 if batched else 2
    shape = "(n_users, n_weeks, n_categories)" if batched else "(n_weeks, n_categories)"
    if arr.ndim != ndim or arr.shape[-1] != N_CATEGORIES:
        raise ValueError(
            f"history must have shape {shape} with n_categories={N_CATEGORIES} "
            f"(SPENDING_CATEGORIES order), got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError("history contains NaN or inf; weeks without spending must be 0")
    if (arr < 0).any():
        raise ValueError("history contains negative amounts; spending must be >= 0")
    return arr


def check_horizon(horizon: Any) -> int:
    """``horizon`` as an int in 1..MAX_HORIZON; ValueError otherwise."""
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer):
        raise ValueError(f"horizon must be an int in 1..{MAX_HORIZON}, got {horizon!r}")
    if not 1 <= int(horizon) <= MAX_HORIZON:
        raise ValueError(f"horizon must be in 1..{MAX_HORIZON}, got {horizon}")
    return int(horizon)


def check_week_of_year(week_of_year: Any) -> int:
    """``week_of_year`` as an ISO week number 1..53; ValueError otherwise."""
    if isinstance(week_of_year, bool) or not isinstance(week_of_year, int | np.integer):
        raise ValueError(f"week_of_year must be an ISO week number 1..53, got {week_of_year!r}")
    if not 1 <= int(week_of_year) <= 53:
        raise ValueError(f"week_of_year must be an ISO week number 1..53, got {week_of_year}")
    return int(week_of_year)


def encode_segments(segments: Any, n: int) -> np.ndarray:
    """Segment ids as ints, ``None``/-1 meaning unknown; ValueError if not in 0..N_SEGMENTS-1."""
    if segments is None:
        return np.full(n, UNKNOWN_SEGMENT, dtype=np.int64)
    if isinstance(segments, int | np.integer) and not isinstance(segments, bool):
        segments = [segments] * n
    raw = list(np.asarray(segments, dtype=object).ravel())
    if len(raw) != n:
        raise ValueError(f"expected {n} segment ids, got {len(raw)}")
    out = np.empty(n, dtype=np.int64)
    for i, s in enumerate(raw):
        if s is None:
            out[i] = UNKNOWN_SEGMENT
            continue
        if isinstance(s, bool) or not isinstance(s, int | np.integer):
            raise ValueError(f"segment ids must be ints in 0..{N_SEGMENTS - 1} or None, got {s!r}")
        if not (int(s) == UNKNOWN_SEGMENT or 0 <= int(s) < N_SEGMENTS):
            raise ValueError(f"segment ids must be in 0..{N_SEGMENTS - 1} or None, got {s}")
        out[i] = int(s)
    return out


def season_index(week_of_year: int, offset: np.ndarray | int) -> np.ndarray:
    """Position in the 52-week cycle (0..51) of the week ``offset`` weeks after ISO week
    ``week_of_year``; the simulator's seasonality uses the same convention."""
    return (week_of_year - 1 + np.asarray(offset)) % SEASON_PERIOD


def shrunk_level(history: np.ndarray, prior_level: np.ndarray) -> np.ndarray:
    """Per-category weekly level ``(n, C)``: the recent mean shrunk toward ``prior_level``.

    The prior is rescaled to the user's own (shrunk) total first, so a new user with two weeks
    keeps the segment's category mix but their own overall scale.
    """
    n_weeks = history.shape[1]
    recent = history[:, -LEVEL_WEEKS:] if n_weeks else history
    w = float(recent.shape[1])
    mean = recent.mean(axis=1) if w else np.zeros(prior_level.shape)
    prior_total = prior_level.sum(axis=1)
    total = (w * mean.sum(axis=1) + PRIOR_WEEKS_TOTAL * prior_total) / (w + PRIOR_WEEKS_TOTAL)
    share = prior_level / np.maximum(prior_total, 1e-12)[:, None]
    prior = total[:, None] * share
    level = (w * mean + PRIOR_WEEKS_CATEGORY * prior) / (w + PRIOR_WEEKS_CATEGORY)
    out: np.ndarray = np.maximum(level, LEVEL_FLOOR)
    return out


def forecast_features(
    histories: np.ndarray,
    *,
    week_of_year: int,
    segments: np.ndarray,
    horizon: int,
    prior_level: np.ndarray,
) -> ForecastFeatures:
    """Feature rows for forecasting steps 1..``horizon`` after the end of each history.

    ``histories`` is ``(n, weeks, C)`` (validated by ``check_history``), ``week_of_year`` the ISO
    week of the first forecast week, ``segments`` ``(n,)`` ints with -1 for unknown and
    ``prior_level`` ``(n, C)`` the expected weekly spend of a user about whom nothing is known.
    """
    n, n_weeks, n_cat = histories.shape
    horizon = check_horizon(horizon)
    week_of_year = check_week_of_year(week_of_year)
    if prior_level.shape != (n, n_cat):
        raise ValueError(f"prior_level must have shape {(n, n_cat)}, got {prior_level.shape}")
    if segments.shape != (n,) or ((segments < UNKNOWN_SEGMENT) | (segments >= N_SEGMENTS)).any():
        raise ValueError(f"segments must be {n} ints in -1..{N_SEGMENTS - 1} (see encode_segments)")
    level = shrunk_level(histories, prior_level)
    total_level = level.sum(axis=1)
    ratio = histories / level[:, None, :]  # (n, weeks, C), scale-free
    base: dict[str, np.ndarray] = {}  # name -> (n, C)

    def per_user(values: np.ndarray) -> np.ndarray:
        return np.broadcast_to(values[:, None], (n, n_cat))

    seg = np.zeros((n, N_SEGMENTS))
    known = segments >= 0
    seg[np.flatnonzero(known), segments[known]] = 1.0
    for i in range(N_SEGMENTS):
        base[f"segment_{i}"] = per_user(seg[:, i])
    window = min(n_weeks, LEVEL_WEEKS)
    if window:
        phase = 2 * np.pi * season_index(week_of_year, np.arange(-window, 0)) / SEASON_PERIOD
        win_sin, win_cos = float(np.sin(phase).mean()), float(np.cos(phase).mean())
    else:
        win_sin = win_cos = np.nan
    base["window_season_sin"] = np.full((n, n_cat), win_sin)
    base["window_season_cos"] = np.full((n, n_cat), win_cos)
    base["log1p_n_weeks"] = np.full((n, n_cat), np.log1p(n_weeks))
    base["prior_weight"] = np.full(
        (n, n_cat), PRIOR_WEEKS_CATEGORY / (window + PRIOR_WEEKS_CATEGORY)
    )
    base["log_level"] = np.log(level)
    base["log_total_level"] = per_user(np.log(total_level))
    base["category_share"] = level / total_level[:, None]

    nan = np.full((n, n_cat), np.nan)
    for k in _LAGS:
        base[f"lag_{k}"] = ratio[:, -k] if n_weeks >= k else nan
    for w in _MEAN_WINDOWS:
        base[f"mean_{w}"] = ratio[:, -w:].mean(axis=1) if n_weeks else nan
    for w in _MEDIAN_WINDOWS:
        base[f"median_{w}"] = np.median(ratio[:, -w:], axis=1) if n_weeks else nan
    for w in _ZERO_WINDOWS:
        base[f"zero_share_{w}"] = (histories[:, -w:] == 0).mean(axis=1) if n_weeks else nan
    recent = ratio[:, -_SPREAD_WEEKS:]
    if n_weeks:
        q10, q90 = np.quantile(recent, [0.1, 0.9], axis=1)
    else:
        q10 = q90 = nan
    base[f"q10_{_SPREAD_WEEKS}"], base[f"q90_{_SPREAD_WEEKS}"] = q10, q90
    base[f"log_sd_positive_{_SPREAD_WEEKS}"] = _log_sd_positive(recent)

    totals = histories.sum(axis=2)  # (n, weeks)
    for k in _TOTAL_LAGS:
        base[f"total_lag_{k}"] = per_user(totals[:, -k] / total_level) if n_weeks >= k else nan
    base["total_mean_4"] = per_user(totals[:, -4:].mean(axis=1) / total_level) if n_weeks else nan
    # Essentials carry the shared week-to-week "mood" without the discretionary sprees, which
    # are independent draws each week and would otherwise look like a lasting change.
    if n_weeks:
        ess = histories[:, -1, ~_DISC].sum(axis=1) / level[:, ~_DISC].sum(axis=1)
        disc = histories[:, -1, _DISC].sum(axis=1) / level[:, _DISC].sum(axis=1)
        base["essential_total_lag_1"], base["discretionary_total_lag_1"] = (
            per_user(ess),
            per_user(disc),
        )
    else:
        base["essential_total_lag_1"] = base["discretionary_total_lag_1"] = nan

    X = np.empty((n, horizon, n_cat, N_FEATURES))
    steps = np.arange(1, horizon + 1)
    target_phase = 2 * np.pi * season_index(week_of_year, steps - 1) / SEASON_PERIOD
    for j, name in enumerate(FEATURE_NAMES):
        if name == "category_id":
            X[..., j] = np.arange(n_cat)[None, None, :]
        elif name == "step":
            X[..., j] = steps[None, :, None]
        elif name == "target_season_sin":
            X[..., j] = np.sin(target_phase)[None, :, None]
        elif name == "target_season_cos":
            X[..., j] = np.cos(target_phase)[None, :, None]
        elif name == "seasonal_lag_52":
            # The same week one year before each target week, when the history reaches back.
            for s in steps:
                back = SEASON_PERIOD - (s - 1)  # weeks before the end of the history
                X[:, s - 1, :, j] = ratio[:, -back] if n_weeks >= back else np.nan
        else:
            X[..., j] = base[name][:, None, :]
    return ForecastFeatures(X=X.reshape(-1, N_FEATURES), level=level, horizon=horizon)


def _log_sd_positive(ratio: np.ndarray) -> np.ndarray:
    """Std of log(spend) over the weeks with spending; NaN with fewer than two such weeks."""
    positive = ratio > 0
    count = positive.sum(axis=1)
    logs = np.where(positive, np.log(np.where(positive, ratio, 1.0)), 0.0)
    mean = logs.sum(axis=1) / np.maximum(count, 1)
    var = (np.where(positive, logs - mean[:, None], 0.0) ** 2).sum(axis=1) / np.maximum(
        count - 1, 1
    )
    return np.where(count >= 2, np.sqrt(var), np.nan)
