"""Spending forecast per category, 1 to 4 weeks ahead, with an 80% prediction interval.

One global model serves every user and category: rows are scale-free (``features.forecast``
divides amounts by the user's per-category level) and the target is next weeks' spend / level.

Quantile method: gradient-boosted trees (scikit-learn ``HistGradientBoostingRegressor``,
pinball loss), one per quantile level 0.1, 0.5, 0.8 and 0.9, trained on rows from sliding
forecast origins through every training user's history. Two details matter:

* Zero weeks are a point mass (in the simulator 40% of entertainment weeks are empty, 70% of
  health ones). Boosted pinball loss gets stuck on ties at exactly 0: a leaf whose 10% residual
  quantile is 0 never moves, so whole categories (bills included, measured) kept a lower quantile
  of 0 for ever. Zero targets are therefore jittered to a tiny negative ratio (below
  ``ZERO_JITTER``) during training; a predicted quantile below 0 then means "at least that much
  of the mass is at zero" and is reported as 0.
* With a point mass at zero, [q10, q90] covers 90%, not 80%: q10 is 0 and includes the mass.
  The interval is made an honest 80% one: where the predicted q10 is 0 the upper bound is q80
  (covering P(y = 0) + P(0 < y <= q80) = 80%); elsewhere it is q90. So ``p10``/``p90`` are the
  bounds of the central 80% interval, and ``p90`` is the 80th percentile for categories that are
  empty in at least 10% of weeks.

Cold start: amounts are relative to a level that is the user's recent mean shrunk toward a prior
(``features.forecast.shrunk_level``). The prior is the per-segment profile learned in ``fit``
(``profile_``: mean weekly spend per category; the last row is the whole population, used when
the segment is unknown), rescaled to the user's own total when they have any weeks. Training
includes rows whose history is cut to 0..3 weeks at every time of year, so the model knows how
far to trust the prior, and rows whose segment is hidden, so ``segment=None`` works too.

Measured (``training/forecast_eval.py``, 2,000 train / 1,000 test users x 104 weeks): MASE 0.80
against 0.93 for the best peer and 0.79 for an oracle that knows the simulator's parameters and
the users' current mood, so a different learner has little left to gain on this data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.exceptions import NotFittedError

from fincoach.features.forecast import (
    CATEGORY_FEATURE,
    FEATURE_NAMES,
    N_CATEGORIES,
    N_FEATURES,
    N_SEGMENTS,
    UNKNOWN_SEGMENT,
    check_history,
    check_horizon,
    check_week_of_year,
    encode_segments,
    forecast_features,
    season_index,
)
from models.threads import openmp_threads

# Quantile levels of the boosted models; the 80% interval picks its upper bound among the last two.
LEVELS: Final = (0.1, 0.5, 0.8, 0.9)
_LO, _MID, _UP80, _UP90 = range(len(LEVELS))
# Zero targets become -U(0, ZERO_JITTER) (ratio units): far below any real spend/level, so the
# sign of a predicted quantile tells mass-at-zero apart from a small positive amount.
ZERO_JITTER: Final = 0.01
OUTPUT_QUANTILES: Final = ("p10", "p50", "p90")


class SpendingForecaster:
    """Global quantile-boosted forecaster of weekly spend per category (p10/p50/p90)."""

    def __init__(
        self,
        *,
        max_iter: int = 100,
        learning_rate: float = 0.15,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 100,
        origins_per_user: int = 8,
        short_history_share: float = 0.15,
        cold_start_weeks: int = 4,
        segment_dropout: float = 0.2,
        n_threads: int | None = 1,
        random_state: int = 0,
    ) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.origins_per_user = origins_per_user
        self.short_history_share = short_history_share
        self.cold_start_weeks = cold_start_weeks
        self.segment_dropout = segment_dropout
        self.n_threads = n_threads
        self.random_state = random_state

    # ------------------------------------------------------------------------------------------

    def fit(
        self,
        histories: Any,
        segments: Any,
        first_week_of_year: int,
        *,
        horizons: Sequence[int] = (1, 2, 3, 4),
    ) -> SpendingForecaster:
        """Fit on ``histories`` ``(n_users, n_weeks, n_categories)`` whose week 0 is ISO week
        ``first_week_of_year``; ``segments`` ``(n_users,)`` ints (None/-1 = unknown)."""
        hist = check_history(histories, batched=True)
        n_users, n_weeks, _ = hist.shape
        if n_users == 0:
            raise ValueError("need at least one user's history to fit")
        seg = encode_segments(segments, n_users)
        first_week_of_year = check_week_of_year(first_week_of_year)
        steps = sorted({check_horizon(h) for h in horizons})
        if not steps:
            raise ValueError("horizons must name at least one step in 1..4")
        max_step = steps[-1]
        self._check_params()
        if n_weeks < max_step + 1:
            raise ValueError(
                f"need at least {max_step + 1} weeks of history to fit horizon {max_step}, "
                f"got {n_weeks}"
            )
        self.profile_ = self._profiles(hist, seg)
        X, y = self._training_rows(hist, seg, first_week_of_year, steps)
        categorical = np.zeros(N_FEATURES, dtype=bool)
        categorical[CATEGORY_FEATURE] = True
        models = []
        with self._threads():
            for q in LEVELS:
                model = HistGradientBoostingRegressor(
                    loss="quantile",
                    quantile=q,
                    max_iter=self.max_iter,
                    learning_rate=self.learning_rate,
                    max_leaf_nodes=self.max_leaf_nodes,
                    min_samples_leaf=self.min_samples_leaf,
                    categorical_features=categorical,
                    early_stopping=False,
                    random_state=self.random_state,
                )
                models.append(model.fit(X, y))
        self.models_ = models
        self.horizons_ = tuple(steps)
        self.n_training_rows_ = int(X.shape[0])
        self.n_features_in_ = N_FEATURES
        self.feature_names_in_ = np.array(FEATURE_NAMES, dtype=object)
        return self

    def predict(
        self, history: Any, segment: int | None, horizon: int, week_of_year: int
    ) -> np.ndarray:
        """``(horizon, n_categories, 3)`` forecast of the weeks after ``history``
        ``(n_weeks, n_categories)``; ``week_of_year`` is the ISO week of the first of them.

        The last axis is (p10, p50, p90): the median and the bounds of the central 80% interval
        (see the module docstring for why p90 is the 80th percentile where zero weeks are common).
        """
        hist = check_history(history)
        out: np.ndarray = self.predict_many(hist[None], [segment], horizon, week_of_year)[0]
        return out

    def predict_many(
        self, histories: Any, segments: Any, horizon: int, week_of_year: int
    ) -> np.ndarray:
        """Batched ``predict``: ``(n_users, n_weeks, C)`` histories that end in the same week
        give ``(n_users, horizon, C, 3)``; ``segments`` is ``(n_users,)`` or None (unknown)."""
        if not self.is_fitted:
            # scikit-learn's exception, as check_is_fitted raises (which needs BaseEstimator).
            raise NotFittedError("SpendingForecaster is not fitted yet; call fit() first")
        hist = check_history(histories, batched=True)
        horizon = check_horizon(horizon)
        week_of_year = check_week_of_year(week_of_year)
        seg = encode_segments(segments, hist.shape[0])
        if hist.shape[0] == 0:
            return np.zeros((0, horizon, N_CATEGORIES, len(OUTPUT_QUANTILES)))
        feats = forecast_features(
            hist,
            week_of_year=week_of_year,
            segments=seg,
            horizon=horizon,
            prior_level=self._prior(seg),
        )
        with self._threads():
            raw = np.stack([m.predict(feats.X) for m in self.models_], axis=1)
        return feats.to_amounts(_interval(raw))

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` has run (deployments' health checks read it)."""
        return hasattr(self, "models_")

    # ------------------------------------------------------------------------------------------

    def _check_params(self) -> None:
        """Refuse hyperparameters that would make no training rows (the trees check theirs)."""
        if self.origins_per_user < 1 or self.cold_start_weeks < 1:
            raise ValueError("origins_per_user and cold_start_weeks must be >= 1")
        for name in ("short_history_share", "segment_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")

    def _threads(self) -> contextlib.AbstractContextManager[None]:
        return openmp_threads(self.n_threads)

    def _prior(self, seg: np.ndarray) -> np.ndarray:
        """``(n, C)`` prior weekly spend: the segment's profile, or the population's if unknown."""
        rows = np.where(seg == UNKNOWN_SEGMENT, N_SEGMENTS, seg)
        return np.asarray(self.profile_[rows])

    @staticmethod
    def _profiles(hist: np.ndarray, seg: np.ndarray) -> np.ndarray:
        """Mean weekly spend per category for each segment, plus the whole population last."""
        overall = hist.mean(axis=(0, 1))
        rows = [
            hist[seg == s].mean(axis=(0, 1)) if (seg == s).any() else overall
            for s in range(N_SEGMENTS)
        ]
        return np.stack([*rows, overall])

    def _training_rows(
        self, hist: np.ndarray, seg: np.ndarray, first_week_of_year: int, steps: list[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows from random (user, origin) pairs; some histories cut short, some segments hidden."""
        rng = np.random.default_rng(self.random_state)
        n_users, n_weeks, _ = hist.shape
        max_step = steps[-1]
        origins = np.arange(1, n_weeks - max_step + 1)
        # Each user gets origins_per_user distinct origins (all of them if there are fewer).
        rank = rng.random((n_users, origins.size)).argsort(axis=1).argsort(axis=1)
        chosen = rank < self.origins_per_user
        keep_steps = np.isin(np.arange(1, max_step + 1), steps)
        X_parts: list[np.ndarray] = []
        y_parts: list[np.ndarray] = []
        for j, t in enumerate(origins):
            users = np.flatnonzero(chosen[:, j])
            if users.size == 0:
                continue
            # History length per chosen user: all t weeks, or (cold start) only the last 0..k-1.
            length = np.full(users.size, t)
            short = rng.random(users.size) < self.short_history_share
            length[short] = np.minimum(t, rng.integers(0, self.cold_start_weeks, short.sum()))
            s = seg[users].copy()
            s[rng.random(users.size) < self.segment_dropout] = UNKNOWN_SEGMENT
            week_of_year = int(season_index(first_week_of_year, t)) + 1
            for k in np.unique(length):
                group = length == k
                u = users[group]
                feats = forecast_features(
                    hist[u, t - k : t],
                    week_of_year=week_of_year,
                    segments=s[group],
                    horizon=max_step,
                    prior_level=self._prior(s[group]),
                )
                target = hist[u, t : t + max_step] / feats.level[:, None, :]
                X = feats.X.reshape(u.size, max_step, N_CATEGORIES, N_FEATURES)
                X_parts.append(X[:, keep_steps].reshape(-1, N_FEATURES))
                y_parts.append(target[:, keep_steps].ravel())
        X_all = np.concatenate(X_parts)
        y_all = np.concatenate(y_parts)
        # A column with no value at all (seasonal_lag_52 when histories are shorter than a year)
        # breaks scikit-learn's binning; as a constant it gets no split, so it is ignored.
        X_all[:, np.isnan(X_all).all(axis=0)] = 0.0
        zero = y_all <= 0
        y_all[zero] = -rng.uniform(0.0, ZERO_JITTER, zero.sum())
        return X_all, y_all


def _interval(raw: np.ndarray) -> np.ndarray:
    """``(rows, 3)`` lower/median/upper ratios from the ``(rows, len(LEVELS))`` quantiles."""
    # Boosted quantiles are fitted separately and can cross; sorting restores monotonicity
    # (Chernozhukov et al. 2010: rearrangement never makes the quantile estimates worse).
    q = np.sort(raw, axis=1)
    mass_at_zero = q[:, _LO] <= 0.0
    upper = np.where(mass_at_zero, q[:, _UP80], q[:, _UP90])
    out: np.ndarray = np.maximum(np.stack([q[:, _LO], q[:, _MID], upper], axis=1), 0.0)
    return out
