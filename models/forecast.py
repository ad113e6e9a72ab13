"""Spending forecast per category and in total, 1 to 4 weeks ahead, from sampled paths.

The user's own history comes first. For one user (``features.spending.SpendingHistory``):

1. **Recurring payments** (``features.recurring``: rent, a mortgage, bills, subscriptions with
   their amount and day of the month) are taken out of the history and forecast as lumps in the
   weeks they fall in; each path draws the day from how far past payments strayed from the
   schedule, and the amount among the last payments.
2. **The rest** (the week-to-week residual) is drawn as whole weeks: each path and step takes
   one past week of the user (recent weeks weigh more: the half-life is the user's own, the one
   among ``own_half_lives`` whose weighted medians best forecast the user's last
   ``BACKTEST_WEEKS`` weeks from the weeks before each; ``half_life_`` for a history too short
   to tell), all categories
   of that week together, so the paths keep how categories move together. With probability
   ``prior_weight_ / (n_eff + prior_weight_)`` (n_eff: the effective number of weeks) the week
   comes instead from the population (``bank_``: weeks of training users, each divided by that
   user's mean weekly total) times this user's mean weekly total: a new user is forecast mostly
   from others like a typical user at their own scale, and their own weeks take over as they
   come. A "mood" factor ``(last 4 weeks / usual) ** mood_power_`` moves the first steps toward
   the recent level (decaying by ``MOOD_DECAY`` a step).
3. **Quantiles** of the paths give p10/p50/p90 per category, and the **total** comes from the
   same paths (the quantiles of their sums), not from adding medians, which runs far below what
   people spend when spending is lumpy; so does the **cumulative** spending from now to the end
   of each week (what a balance projection needs: a sum of weekly medians runs under it too).
   The tail levels of the 80% interval are calibrated in ``fit`` per category group (recurring
   bills, everyday, discretionary) and for the totals, so that the intervals cover 80% of what
   happened on the training cut-offs. A category that is zero on at least the tail's share of
   the paths gets [0, the 1 - 2 x tail quantile] instead (``forecast_paths.interval``): a
   central interval would leave nothing out below and cover 90%.

Every step is scale-free (relative weights, ratios, draws that do not depend on amounts), so
amounts times k give forecasts times k: the forecast does not depend on the currency unit. The
random draws come from a fixed seed: the same history always gets the same answer.

``fit`` learns the population bank, the half-life, the prior's weight, the mood power and the
interval levels from training cut-offs (simulated users and real histories together), choosing
the settings by the pinball loss on those cut-offs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any, Final

import numpy as np

from fincoach.features.forecast_groups import GROUP_OF_CATEGORY, GROUPS
from fincoach.features.recurring import Recurring, find_recurring
from fincoach.features.spending import N_SPENDING, SpendingHistory
from models.errors import check_fitted
from models.forecast_paths import (
    add_recurring,
    interval,
    own_half_life,
    scaled_pinball,
    sorted_quantile,
)

MAX_HORIZON: Final = 4
OUTPUT_QUANTILES: Final = ("p10", "p50", "p90")
MOOD_WEEKS: Final = 4
MOOD_DECAY: Final = 0.6
MOOD_CLIP: Final = (0.25, 4.0)
# Candidate tail masses of the interval (``forecast_paths.interval``: up to 0.25, so that its
# upper end stays at or above the median).
TAILS: Final = np.round(np.arange(0.02, 0.255, 0.01), 3)
INTERMITTENT: Final = 0.3
SEARCH_ROWS: Final = 200  # training cut-offs per source that choose the settings
CALIBRATION_ROWS: Final = 1000  # ... and that calibrate the intervals
SHORT_WEEKS: Final = 13
TAIL_KEYS: Final = (
    *(f"{g}/{k}" for g in GROUPS for k in ("recurring", "intermittent", "steady", "short")),
    "total",
    "cumulative",
)


@dataclass(frozen=True)
class Forecast:
    """One user's forecast: ``categories`` (horizon, N_SPENDING, 3), ``total`` (horizon, 3): each
    week's spending, and ``cumulative`` (horizon, 3): spending from now to the end of each week,
    each (p10, p50, p90); ``recurring`` the payments forecast as lumps."""

    categories: np.ndarray
    total: np.ndarray
    cumulative: np.ndarray
    recurring: tuple[Recurring, ...]


def as_history(history: Any, week_of_year: int | None = None) -> SpendingHistory:
    """A SpendingHistory, or weekly sums ``(n_weeks, N_SPENDING)`` turned into one."""
    if isinstance(history, SpendingHistory):
        return history
    return SpendingHistory.from_weekly(history, np.datetime64("2001-01-01T00:00:00"))


def check_horizon(horizon: Any) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer):
        raise ValueError(f"horizon must be an int in 1..{MAX_HORIZON}, got {horizon!r}")
    if not 1 <= int(horizon) <= MAX_HORIZON:
        raise ValueError(f"horizon must be in 1..{MAX_HORIZON}, got {horizon}")
    return int(horizon)


class SpendingForecaster:
    """User-first forecaster of weekly spending per category and in total (see the module)."""

    def __init__(
        self,
        *,
        n_paths: int = 2000,
        half_lives: Sequence[float] = (8.0, 13.0, 26.0, 52.0),
        prior_weights: Sequence[float] = (1.0, 3.0, 8.0),
        mood_powers: Sequence[float] = (0.0, 0.3, 0.6),
        p_recurring: float = 0.97,
        bank_size: int = 4000,
        search_paths: int = 300,
        own_half_lives: Sequence[float] = (4.0, 8.0, 13.0, 26.0, 52.0),
        random_state: int = 0,
    ) -> None:
        self.n_paths = n_paths
        self.half_lives = half_lives
        self.prior_weights = prior_weights
        self.mood_powers = mood_powers
        self.p_recurring = p_recurring
        self.bank_size = bank_size
        self.search_paths = search_paths
        self.own_half_lives = own_half_lives
        self.random_state = random_state

    # --- fitting ------------------------------------------------------------------------------

    def fit(
        self,
        histories: Sequence[SpendingHistory],
        futures: Any,
        sources: Sequence[str] | None = None,
    ) -> SpendingForecaster:
        """Learn from training cut-offs: ``histories[i]`` and what was spent in the weeks after
        it, ``futures[i]`` ``(horizon, N_SPENDING)``. ``sources`` (e.g. "simulator", "real")
        balance the population bank so that no source drowns the others."""
        actual = np.asarray(futures, dtype=float)
        if actual.ndim != 3 or actual.shape[0] != len(histories) or actual.shape[2] != N_SPENDING:
            raise ValueError(f"futures must be (n_histories, horizon, {N_SPENDING})")
        if len(histories) == 0:
            raise ValueError("need at least one training history")
        sources = list(sources) if sources is not None else ["all"] * len(histories)
        rng = np.random.default_rng(self.random_state)
        parts = [_residual(h) for h in histories]
        self.bank_ = self._bank(parts, sources, rng)
        totals = [p[0].sum(axis=1) for p in parts if p[0].shape[0]]
        self.population_total_ = float(np.mean([t.mean() for t in totals])) if totals else 0.0
        self.half_life_, self.prior_weight_, self.mood_power_ = 26.0, 3.0, 0.0
        self.tails_ = dict.fromkeys(TAIL_KEYS, 0.1)
        horizon = actual.shape[1]
        source_of = np.array(sources, dtype=object)
        # Up to SEARCH_ROWS rows per source; each source's mean loss counts the same, so that
        # thousands of simulated users do not outvote a real history.
        shuffled = {
            src: rng.permutation(np.flatnonzero(source_of == src)) for src in dict.fromkeys(sources)
        }
        search = {src: rows[:SEARCH_ROWS] for src, rows in shuffled.items()}
        best: tuple[float, tuple[float, float, float]] | None = None
        for setting in product(self.half_lives, self.prior_weights, self.mood_powers):
            self.half_life_, self.prior_weight_, self.mood_power_ = setting
            loss = 0.0
            for rows in search.values():
                loss += float(
                    np.mean(
                        [
                            scaled_pinball(
                                self._paths(parts[i], histories[i], horizon, self.search_paths),
                                actual[i],
                                histories[i],
                            )
                            for i in rows
                        ]
                    )
                )
            if best is None or loss < best[0]:
                best = (loss, setting)
        assert best is not None
        self.half_life_, self.prior_weight_, self.mood_power_ = best[1]
        # The interval's tails from more rows than the search: a coverage per kind of category
        # is a share of few series, and noise there moves the chosen tail.
        calibration = np.concatenate([r[:CALIBRATION_ROWS] for r in shuffled.values()])
        self.tails_ = self._calibrate(
            [parts[i] for i in calibration],
            [histories[i] for i in calibration],
            actual[calibration],
            source_of[calibration],
        )
        self.n_training_histories_ = len(histories)
        return self

    def _bank(
        self, parts: list[tuple[np.ndarray, list[Recurring]]], sources: list[str], rng: Any
    ) -> np.ndarray:
        """Population weeks, each divided by its user's mean weekly total; sources balanced."""
        by_source: dict[str, list[np.ndarray]] = {}
        for (weekly, _), source in zip(parts, sources, strict=True):
            mean_total = weekly.sum(axis=1).mean() if weekly.shape[0] else 0.0
            if mean_total > 0:
                by_source.setdefault(source, []).append(weekly / mean_total)
        if not by_source:
            return np.full((1, N_SPENDING), 1.0 / N_SPENDING)
        per_source = max(1, self.bank_size // len(by_source))
        rows = []
        for weeks in by_source.values():
            pool = np.concatenate(weeks)
            pick = rng.choice(pool.shape[0], size=min(per_source, pool.shape[0]), replace=False)
            rows.append(pool[pick])
        return np.concatenate(rows)

    def _calibrate(
        self,
        parts: list[tuple[np.ndarray, list[Recurring]]],
        histories: Sequence[SpendingHistory],
        actual: np.ndarray,
        sources: np.ndarray,
    ) -> dict[str, float]:
        """The tail mass per group (and for the total) whose interval covers closest to 80%
        on the source where it is furthest from it (minimax over sources)."""
        names = list(dict.fromkeys(sources))
        worst = {k: np.zeros(TAILS.size) for k in TAIL_KEYS}
        for name in names:
            rows = np.flatnonzero(sources == name)
            coverage = self._coverage(
                [parts[i] for i in rows], [histories[int(i)] for i in rows], actual[rows]
            )
            for k, value in coverage.items():
                worst[k] = np.maximum(worst[k], np.abs(value - 0.8))
        return {k: float(TAILS[int(np.argmin(worst[k]))]) for k in TAIL_KEYS}

    def _coverage(
        self,
        parts: list[tuple[np.ndarray, list[Recurring]]],
        histories: Sequence[SpendingHistory],
        actual: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Coverage of the interval at each candidate tail mass, per tail key (those seen)."""
        inside = {k: np.zeros(TAILS.size) for k in TAIL_KEYS}
        count = dict.fromkeys(inside, 0)
        horizon = actual.shape[1]
        levels = np.concatenate([TAILS, 1.0 - TAILS])
        for part, history, future in zip(parts, histories, actual, strict=True):
            paths = self._paths(part, history, horizon, self.n_paths)
            lo, hi = interval(np.sort(paths, axis=0), TAILS[:, None, None])  # (T, horizon, C)
            hit = (future[None] >= lo) & (future[None] <= hi)
            for c, key in enumerate(_tail_keys(part)):
                inside[key] += hit[:, :, c].sum(axis=1)
                count[key] += horizon
            weekly_total = paths.sum(axis=2)
            for key, sums, spent in (
                ("total", weekly_total, future.sum(axis=1)),
                ("cumulative", weekly_total.cumsum(axis=1), future.sum(axis=1).cumsum()),
            ):
                q_sum = np.quantile(sums, levels, axis=0)
                inside[key] += (
                    (spent[None] >= q_sum[: TAILS.size]) & (spent[None] <= q_sum[TAILS.size :])
                ).sum(axis=1)
                count[key] += horizon
        return {k: inside[k] / count[k] for k in inside if count[k]}

    # --- predicting ---------------------------------------------------------------------------

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "bank_")

    def forecast(self, history: Any, horizon: int) -> Forecast:
        """Quantiles per category and of the total for the ``horizon`` weeks after ``history``."""
        check_fitted(self, "bank_")
        horizon = check_horizon(horizon)
        spending = as_history(history)
        part = _residual(spending)
        paths = self._paths(part, spending, horizon, self.n_paths)
        ordered = np.sort(paths, axis=0)
        lo, hi = interval(ordered, np.array([self.tails_[key] for key in _tail_keys(part)]))
        categories = np.stack([lo, sorted_quantile(ordered, np.array(0.5)), hi], axis=-1)
        weekly_total = paths.sum(axis=2)
        tail = self.tails_["total"]
        total = np.quantile(weekly_total, [tail, 0.5, 1.0 - tail], axis=0).T
        tail = self.tails_.get("cumulative", tail)  # versions saved before it use the total's
        cumulative = np.quantile(weekly_total.cumsum(axis=1), [tail, 0.5, 1.0 - tail], axis=0).T
        return Forecast(categories, total, cumulative, tuple(part[1]))

    def predict(
        self, history: Any, segment: int | None, horizon: int, week_of_year: int | None = None
    ) -> np.ndarray:
        """``(horizon, N_SPENDING, 3)`` p10/p50/p90 (the segment and week are not needed: the
        history's own weeks and dates carry them)."""
        return self.forecast(history, horizon).categories

    def _paths(
        self,
        part: tuple[np.ndarray, list[Recurring]],
        history: SpendingHistory,
        horizon: int,
        n_paths: int,
    ) -> np.ndarray:
        """(n_paths, horizon, N_SPENDING) sampled future weeks."""
        rng = np.random.default_rng(self.random_state)
        weekly, recurring = part
        n = weekly.shape[0]
        paths = np.zeros((n_paths, horizon, N_SPENDING))
        if n:
            age = np.arange(n - 1, -1, -1, dtype=float)
            w = 0.5 ** (age / own_half_life(weekly, self.own_half_lives, self.half_life_))
            w /= w.sum()
            n_eff = 1.0 / float((w**2).sum())
            level = float((w[:, None] * weekly).sum())
            prior_share = self.prior_weight_ / (n_eff + self.prior_weight_)
            mood = 1.0
            usual = weekly.sum(axis=1).mean()
            if usual > 0 and n >= MOOD_WEEKS:
                recent = weekly[-MOOD_WEEKS:].sum(axis=1).mean()
                mood = float(np.clip(recent / usual, *MOOD_CLIP))
            steps = mood ** (self.mood_power_ * MOOD_DECAY ** np.arange(horizon))
            own = weekly[rng.choice(n, size=(n_paths, horizon), p=w)] * steps[None, :, None]
        else:
            level, prior_share = self.population_total_, 1.0
            own = np.zeros_like(paths)
        bank = self.bank_[rng.integers(0, self.bank_.shape[0], size=(n_paths, horizon))] * level
        from_prior = rng.random((n_paths, horizon)) < prior_share
        paths += np.where(from_prior[:, :, None], bank, own)
        add_recurring(paths, recurring, history.end, rng, self.p_recurring)
        return paths


def _tail_keys(part: tuple[np.ndarray, list[Recurring]]) -> list[str]:
    """Each category's interval key: its group, and whether it has recurring lumps, is
    intermittent (no spending in at least INTERMITTENT of its weeks) or steady. Their paths
    miss in different ways (a lump's timing, a point mass at zero, ordinary noise), so each
    kind gets its own calibrated tail."""
    weekly, recurring = part
    lumpy = {r.category for r in recurring}
    zero = (weekly == 0).mean(axis=0) if weekly.shape[0] else np.ones(N_SPENDING)
    keys = []
    for c in range(N_SPENDING):
        kind = (
            "recurring" if c in lumpy else "intermittent" if zero[c] >= INTERMITTENT else "steady"
        )
        keys.append(f"{GROUP_OF_CATEGORY[c]}/{kind}")
    return keys


def _residual(history: SpendingHistory) -> tuple[np.ndarray, list[Recurring]]:
    """The weekly spend without the recurring payments, and those payments."""
    recurring = find_recurring(history)
    mask = np.ones(len(history), dtype=bool)
    for r in recurring:
        mask[r.rows] = False
    return history.weekly(mask), recurring
