"""Pieces of the forecaster's paths: the user's own half-life, recurring payments added to
the paths, and the loss its settings are chosen by. Pure numpy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from fincoach.features.recurring import Recurring
from fincoach.features.spending import N_SPENDING, WEEK_SECONDS, SpendingHistory, as_unit

BACKTEST_WEEKS: Final = 12
MIN_BACKTEST_HISTORY: Final = 8
_NOON = np.timedelta64(12, "h")
# The backtest is the same for the same weeks: fitting asks for it once per setting tried.
_CHOSEN: dict[tuple[object, ...], float | None] = {}
_CACHE_SIZE: Final = 4096


def own_half_life(weekly: np.ndarray, candidates: Sequence[float], default: float) -> float:
    """The half-life whose recency-weighted median per category best forecast each of the
    last BACKTEST_WEEKS weeks of ``weekly`` from the weeks before it (errors scaled per category
    by its mean weekly change, as MASE scales); ``default`` when the history is too short."""
    key = (weekly.shape, weekly.tobytes(), tuple(candidates))
    if key not in _CHOSEN:
        if len(_CHOSEN) >= _CACHE_SIZE:
            _CHOSEN.clear()
        _CHOSEN[key] = _backtest(weekly, candidates)
    chosen = _CHOSEN[key]
    return default if chosen is None else chosen


def _backtest(weekly: np.ndarray, candidates: Sequence[float]) -> float | None:
    n = weekly.shape[0]
    if not candidates or n < BACKTEST_WEEKS + MIN_BACKTEST_HISTORY:
        return None
    scale = np.abs(np.diff(weekly, axis=0)).mean(axis=0)
    ok = scale > 0
    if not ok.any():
        return None
    errors = []
    for half_life in candidates:
        err = 0.0
        for t in range(n - BACKTEST_WEEKS, n):
            w = 0.5 ** (np.arange(t - 1, -1, -1, dtype=float) / half_life)
            median = weighted_quantile(weekly[:t, ok], w)
            err += float((np.abs(weekly[t, ok] - median) / scale[ok]).sum())
        errors.append(err)
    return float(candidates[int(np.argmin(errors))])


def weighted_quantile(values: np.ndarray, weights: np.ndarray, level: float = 0.5) -> np.ndarray:
    """(C,) weighted ``level`` quantile (the median by default) of each column of ``values``
    (t, C), weights (t,)."""
    order = np.argsort(values, axis=0, kind="stable")
    cumulative = np.cumsum(weights[order], axis=0)
    index = np.argmax(cumulative >= level * cumulative[-1], axis=0)
    out: np.ndarray = np.take_along_axis(values, order, axis=0)[index, np.arange(values.shape[1])]
    return out


def add_recurring(
    paths: np.ndarray,
    recurring: list[Recurring],
    end: np.datetime64,
    rng: np.random.Generator,
    p_active: float,
) -> None:
    """Add each recurring payment to the week each path puts it in."""
    n_paths, horizon, _ = paths.shape
    stop = as_unit(end, "D") + (7 * horizon + 7) * np.timedelta64(1, "D")
    for r in recurring:
        jitter = r.jitter_days if r.jitter_days.size else np.zeros(1, dtype=int)
        for due in r.due_dates(as_unit(end, "D"), stop):
            days = due + rng.choice(jitter, size=n_paths).astype("timedelta64[D]")
            at = days.astype("datetime64[s]") + _NOON
            at = np.maximum(at, as_unit(end, "s"))
            week = ((at - end).astype("timedelta64[s]").astype(np.int64)) // WEEK_SECONDS
            amount = rng.choice(r.amounts, size=n_paths)
            paid = (rng.random(n_paths) < p_active) & (week < horizon)
            # one payment per path at most, so no index repeats and += adds each one
            paths[np.flatnonzero(paid), week[paid], r.category] += amount[paid]


def sorted_quantile(ordered: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles of each column of ``ordered`` (n, *shape), sorted along axis 0, at ``levels``
    (broadcastable to ``(..., *shape)``), interpolated linearly as ``np.quantile`` does."""
    n = ordered.shape[0]
    position = np.clip(np.asarray(levels, dtype=float), 0.0, 1.0) * (n - 1)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, n - 1)
    shape = np.broadcast_shapes(position.shape, ordered.shape[1:])
    below, above, position = (np.broadcast_to(a, shape) for a in (below, above, position))
    low = np.take_along_axis(ordered, below.reshape(-1, *ordered.shape[1:]), axis=0)
    high = np.take_along_axis(ordered, above.reshape(-1, *ordered.shape[1:]), axis=0)
    frac = (position - below).reshape(-1, *ordered.shape[1:])
    return (low + (high - low) * frac).reshape(shape)


def interval(ordered: np.ndarray, tails: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ends of the interval that leaves ``tails`` (broadcastable against the columns, e.g.
    ``(T, 1, 1)``) out on each side of each column of ``ordered`` (n, *shape, sorted along axis
    0, no value below 0). Where a column is 0 on at least ``tail`` of its paths, its lower end is
    0 and leaves nothing out below, so the upper end moves down to the ``1 - 2 * tail`` quantile:
    the interval covers ``1 - 2 * tail`` whether or not a category is often zero, which a
    central interval does only where it is not."""
    tails = np.asarray(tails, dtype=float)
    at_zero = (ordered <= 0).mean(axis=0)
    upper = np.where(at_zero >= tails, np.maximum(1.0 - 2.0 * tails, 0.5), 1.0 - tails)
    # 0 itself, not the interpolated quantile: with exactly ``tail`` of the paths at zero that
    # would fall between the last zero and the first amount above it
    lower = np.where(at_zero >= tails, 0.0, sorted_quantile(ordered, tails))
    return lower, sorted_quantile(ordered, upper)


def scaled_pinball(paths: np.ndarray, actual: np.ndarray, history: SpendingHistory) -> float:
    """Pinball loss at 0.1, 0.5, 0.9 per category, each scaled by the category's mean weekly
    change in the history (as MASE scales), summed; the search's objective."""
    weekly = history.weekly()
    scale = np.abs(np.diff(weekly, axis=0)).mean(axis=0) if weekly.shape[0] > 1 else None
    if scale is None:
        scale = np.maximum(weekly.mean(axis=0), 0.0) if weekly.shape[0] else np.zeros(N_SPENDING)
    ok = scale > 0
    if not ok.any():
        return 0.0
    loss = 0.0
    for tau in (0.1, 0.5, 0.9):
        q = np.quantile(paths, tau, axis=0)
        diff = actual - q
        loss += float((np.maximum(tau * diff, (tau - 1) * diff)[:, ok] / scale[ok]).mean())
    return loss
