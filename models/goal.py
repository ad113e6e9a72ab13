"""Goal probability: the calibrated chance of reaching a savings goal by its date, its main risk
factors, and the weekly saving that would lift the chance to a target (75% by default).

The default model stacks two monotone parts: a logistic regression on standardized features
whose coefficient signs agree with ``features.goals.GOAL_FEATURE_MONOTONIC``, and gradient-boosted
trees with those monotonic constraints. A logistic regression on their held-out log-odds
combines them with non-negative weights, which also calibrates the blend (Platt scaling on
held-out predictions). Monotone parts and non-negative weights make the probability
non-decreasing in the amount saved and in the planned weekly saving, which is what makes the
weekly-saving search a monotone search.

Why a stack and not calibrated trees alone: in the simulator the outcome is close to a smooth
function of the projected-savings margin, which a logistic model already captures near the
information limit. Over six seed pairs (3000 + 1500 users, 52 weeks; ``training.goal_eval``)
the stack's Brier score averaged 0.7% below logistic regression's (4 wins of 6), boosted trees
with isotonic or sigmoid calibration 0.3-0.4% above it; all within seed noise. Held-out folds
are grouped when ``fit`` gets ``groups``: the training set holds a goal at several observation
points, and a goal must not score its own copies.
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from fincoach.features.goals import (
    GOAL_FEATURE_INDEX,
    GOAL_FEATURE_MONOTONIC,
    GOAL_FEATURE_NAMES,
    N_GOAL_FEATURES,
    WINDOW_WEEKS,
    goal_features,
    goal_features_batch,
)
from models.goal_risks import MIN_IMPACT, risk_rules
from models.threads import openmp_threads

METHODS = ("stack", "isotonic", "sigmoid", "none")
_F = GOAL_FEATURE_INDEX
_GRID = 65  # points per pass of the weekly-saving search ...
_PASSES = 4  # ... each pass narrows the bracket 64-fold, down to half a cent
_MAX_LOGIT = 30.0


def _check_X(X: Any) -> np.ndarray:
    arr = np.asarray(X, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != N_GOAL_FEATURES:
        raise ValueError(
            f"expected (n, {N_GOAL_FEATURES}) goal features (GOAL_FEATURE_NAMES), "
            f"got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError("goal features contain NaN or inf values")
    return arr


def _check_y(y: Any, n: int) -> np.ndarray:
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise ValueError(f"y must have shape ({n},), got {arr.shape}")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError("y must be 0/1 (or bool): 1 means the goal was reached")
    labels = arr.astype(int)
    if labels.min() == labels.max():
        raise ValueError("y holds a single class; need reached and missed goals")
    return labels


def _folds(X: np.ndarray, y: np.ndarray, groups: Any, n_folds: int, seed: int) -> list[Any]:
    """Held-out folds; with ``groups``, all rows of a group fall in the same fold."""
    if groups is None:
        return list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(X, y))
    group_arr = np.asarray(groups)
    if group_arr.shape != (X.shape[0],):
        raise ValueError(f"groups must have shape ({X.shape[0]},), got {group_arr.shape}")
    return list(GroupKFold(n_folds, shuffle=True, random_state=seed).split(X, y, group_arr))


class GoalProbabilityModel(BaseEstimator):
    """Calibrated probability of reaching a goal by its date (see the module docstring).

    ``n_threads`` caps the OpenMP threads of the trees during fit and predict (None: no cap):
    on a few thousand rows threads gain nothing, and on a busy 2-core machine OpenMP's
    spin-waiting made fitting 27x slower (40 s instead of 1.5 s).

    ``method``: "stack" (default) combines a monotone logistic regression and a monotone
    gradient-boosted model by a logistic regression on their held-out log-odds (stacking, which
    is Platt calibration of the blend); "isotonic" / "sigmoid" calibrate the boosted model alone
    with ``CalibratedClassifierCV`` on held-out folds; "none" is the raw boosted model.
    """

    def __init__(
        self,
        method: str = "stack",
        n_folds: int = 5,
        max_iter: int = 200,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 7,
        min_samples_leaf: int = 40,
        l2_regularization: float = 0.0,
        C: float = 1.0,
        n_threads: int | None = 1,
        seed: int = 0,
    ) -> None:
        self.method = method
        self.n_folds = n_folds
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.C = C
        self.n_threads = n_threads
        self.seed = seed

    def _booster(self) -> HistGradientBoostingClassifier:
        # No early stopping: its validation split is random, so a goal seen at several
        # observation points would leak into it; max_iter was chosen on held-out populations.
        return HistGradientBoostingClassifier(
            learning_rate=self.learning_rate,
            max_iter=self.max_iter,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            monotonic_cst=list(GOAL_FEATURE_MONOTONIC),
            early_stopping=False,
            random_state=self.seed,
        )

    def _logistic(self) -> LogisticGoalBaseline:
        return LogisticGoalBaseline(C=self.C, monotonic=True)

    def fit(self, X: Any, y: Any, groups: Any = None) -> Self:
        """Fit on goal features and outcomes (1 = reached); ``groups`` (e.g. goal ids) keeps
        all rows of one goal in one held-out fold."""
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        arr = _check_X(X)
        labels = _check_y(y, arr.shape[0])
        with openmp_threads(self.n_threads):
            self._fit(arr, labels, groups)
        self.fitted_method_ = self.method  # set_params after fit must not change predictions
        self.n_features_in_ = arr.shape[1]
        self.feature_names_in_ = np.array(GOAL_FEATURE_NAMES, dtype=object)
        self.base_rate_ = float(labels.mean())
        # What a reached goal typically looks like: the counterfactual of risk_factors.
        self.reference_ = np.median(arr[labels == 1], axis=0)
        self.feature_min_, self.feature_max_ = arr.min(axis=0), arr.max(axis=0)
        return self

    def _fit(self, arr: np.ndarray, labels: np.ndarray, groups: Any) -> None:
        if self.method == "none":
            self.classifier_: Any = self._booster().fit(arr, labels)
        elif self.method in ("isotonic", "sigmoid"):
            folds = _folds(arr, labels, groups, self.n_folds, self.seed)
            self.classifier_ = CalibratedClassifierCV(
                self._booster(), method=self.method, cv=folds, ensemble=True
            ).fit(arr, labels)
        else:
            folds = _folds(arr, labels, groups, self.n_folds, self.seed)
            held_out = np.zeros((arr.shape[0], 2))
            for train, test in folds:
                held_out[test] = self._log_odds(
                    self._logistic().fit(arr[train], labels[train]),
                    self._booster().fit(arr[train], labels[train]),
                    arr[test],
                )
            self.logistic_ = self._logistic().fit(arr, labels)
            self.booster_ = self._booster().fit(arr, labels)
            # Non-negative weights keep the blend monotone wherever both parts are; a part
            # that earns a negative weight on held-out data is dropped rather than inverted.
            keep = [0, 1]
            while True:
                stacker = LogisticRegression(C=1e4, max_iter=1000).fit(held_out[:, keep], labels)
                if (stacker.coef_[0] >= 0).all() or len(keep) == 1:
                    break
                keep = [keep[int(np.argmax(stacker.coef_[0]))]]
            weights = np.zeros(2)
            weights[keep] = np.maximum(stacker.coef_[0], 0.0)
            self.stack_weights_ = weights
            self.stack_intercept_ = float(stacker.intercept_[0])
            self.classifier_ = None

    @staticmethod
    def _log_odds(
        logistic: LogisticGoalBaseline, booster: HistGradientBoostingClassifier, X: np.ndarray
    ) -> np.ndarray:
        """(n, 2) log-odds of the two stacked parts, clipped so the blend stays finite."""
        parts = np.column_stack([logistic.decision_function(X), booster.decision_function(X)])
        return np.clip(parts, -_MAX_LOGIT, _MAX_LOGIT)

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n,) probability that each goal is reached by its date."""
        check_is_fitted(self, "fitted_method_")
        # Clipping to the training range keeps the logistic part from extrapolating far beyond
        # what it saw (e.g. a brand-new user's sentinel values); it preserves monotonicity.
        arr = np.clip(_check_X(X), self.feature_min_, self.feature_max_)
        with openmp_threads(self.n_threads):
            if self.fitted_method_ != "stack":
                return self.classifier_.predict_proba(arr)[:, 1]
            z = self._log_odds(self.logistic_, self.booster_, arr) @ self.stack_weights_
        return expit(z + self.stack_intercept_)

    def predict(self, X: Any) -> np.ndarray:
        """(n,) 1 where the goal is more likely reached than not."""
        return (self.predict_proba(X) >= 0.5).astype(int)

    def risk_factors(self, x: Any, top: int = 3) -> list[dict[str, Any]]:
        """The main risks for one goal (a feature row), most important first.

        Each risk is a rule on the features that fires only on its risky side (the required
        saving exceeds the recent one, weeks without saving, little time left, falling savings,
        a large share of income needed). ``magnitude`` is its size in the message's unit (a
        ratio, a share, weeks); ``impact`` is the model's sensitivity: the rise in probability
        when the features behind the rule take the values of a typical reached goal (training
        medians), averaged over two orders: fixing this risk first (alone) and last (after all
        other firing risks), a two-point Shapley value, so that risks that only matter together
        still show. Risks with an impact below MIN_IMPACT are left out, so a goal that is
        safely on track has none; the rest are ordered by impact, then by rule order.
        """
        check_is_fitted(self, "fitted_method_")
        if top < 1:
            raise ValueError("top must be >= 1")
        row = _check_X(x)
        if row.shape[0] != 1:
            raise ValueError(f"risk_factors takes one goal, got {row.shape[0]} rows")
        risks = risk_rules(row[0])
        if not risks:
            return []
        # Row 0: as is; 1: every risk fixed; 2k+2: risk k fixed alone; 2k+3: all but risk k fixed.
        n = len(risks)
        what_if = np.repeat(row, 2 * n + 2, axis=0)
        for k, (_, _, _, features) in enumerate(risks):
            cols = [_F[f] for f in features]
            what_if[1, cols] = self.reference_[cols]
            what_if[2 * k + 2, cols] = self.reference_[cols]
            for j in range(n):
                if j != k:
                    other = [_F[f] for f in risks[j][3]]
                    what_if[2 * k + 3, other] = self.reference_[other]
        proba = self.predict_proba(what_if)
        alone = proba[2::2] - proba[0]
        last = proba[1] - proba[3::2]
        impact = (alone + last) / 2.0
        kept = [i for i in range(len(risks)) if impact[i] >= MIN_IMPACT]
        kept.sort(key=lambda i: (-impact[i], i))
        return [
            {
                "code": risks[i][0],
                "message": risks[i][1],
                "magnitude": round(float(risks[i][2]), 4),
                "impact": round(float(impact[i]), 4),
            }
            for i in kept[:top]
        ]

    def weekly_saving_for(
        self,
        *,
        target_amount: float,
        current_amount: float,
        weeks_left: float,
        weeks_elapsed: float,
        weekly_savings: ArrayLike,
        weekly_income: ArrayLike,
        n_goals: int,
        monthly_income: float | None = None,
        target_probability: float = 0.75,
        max_coverage: float = 4.0,
    ) -> float | None:
        """The smallest weekly saving for this goal (per week, from now on) whose predicted
        probability reaches ``target_probability``; 0.0 if the goal already has it at the
        user's recent saving; None if no saving up to the sane bound does.

        The bound is the smaller of ``max_coverage`` times the weekly saving that would exactly
        close the gap, and the user's weekly income shared over their goals (when known). The
        probability is monotone in the planned saving (``goal_features(planned_saving=...)``),
        so a grid over [recent saving, bound] is narrowed around its first point that reaches
        the target, down to the cent: the answer reaches the target and one cent less does not.
        """
        check_is_fitted(self, "fitted_method_")
        if not 0.0 < target_probability < 1.0:
            raise ValueError("target_probability must be in (0, 1)")
        if max_coverage <= 0:
            raise ValueError("max_coverage must be > 0")
        inputs: dict[str, Any] = {
            "target_amount": target_amount,
            "current_amount": current_amount,
            "weeks_left": weeks_left,
            "weeks_elapsed": weeks_elapsed,
            "weekly_savings": weekly_savings,
            "weekly_income": weekly_income,
            "n_goals": n_goals,
            "monthly_income": monthly_income,
        }
        now = goal_features(**inputs)
        if self.predict_proba(now)[0] >= target_probability:
            return 0.0
        savings = np.asarray(weekly_savings, dtype=float)
        income = np.asarray(weekly_income, dtype=float)
        recent = max(float(savings[-WINDOW_WEEKS:].mean()), 0.0) / n_goals if savings.size else 0.0
        gap = max(target_amount - current_amount, 0.0)
        transfers = max(weeks_left, 0.0) + 1.0
        high = max_coverage * gap / transfers
        pay = float(income[-WINDOW_WEEKS:].mean()) if income.size else 0.0
        if pay <= 0 and monthly_income:
            pay = monthly_income * 12.0 / 52.0
        if pay > 0:
            high = min(high, pay / n_goals)
        if high <= recent:
            return None

        def proba_at(levels: np.ndarray) -> np.ndarray:
            batch = goal_features_batch(
                **{
                    **inputs,
                    "weekly_savings": np.broadcast_to(savings, (levels.size, savings.size)),
                    "weekly_income": np.broadcast_to(income, (levels.size, income.size)),
                },
                planned_saving=levels,
            )
            return self.predict_proba(batch)

        low = recent
        for _ in range(_PASSES):
            levels = np.linspace(low, high, _GRID)
            ok = np.flatnonzero(proba_at(levels) >= target_probability)
            if ok.size == 0:
                return None
            first = int(ok[0])
            low, high = levels[max(first - 1, 0)], levels[first]
            if high - low < 0.005:
                break
        # The crossing lies in (low, high]: the first whole cent around it that reaches the
        # target is the answer, and one cent less does not reach it (the model is monotone).
        cents = np.arange(math.floor(low * 100.0), math.ceil(high * 100.0) + 1) / 100.0
        ok = np.flatnonzero(proba_at(cents) >= target_probability)
        return float(cents[ok[0]]) if ok.size else None


class LogisticGoalBaseline(BaseEstimator):
    """The peer: logistic regression on standardized goal features.

    With ``monotonic=True`` (the stacked model's part) a feature whose coefficient takes the
    sign opposite to ``GOAL_FEATURE_MONOTONIC`` is dropped and the rest refitted, worst first,
    until every sign agrees: the log-odds are then monotone like the boosted model's.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 1000, monotonic: bool = False) -> None:
        self.C = C
        self.max_iter = max_iter
        self.monotonic = monotonic

    def fit(self, X: Any, y: Any, groups: Any = None) -> Self:
        """Fit; ``groups`` is accepted for the same call shape and ignored."""
        arr = _check_X(X)
        labels = _check_y(y, arr.shape[0])
        direction = np.asarray(GOAL_FEATURE_MONOTONIC, dtype=float)
        used = np.arange(arr.shape[1])
        while True:
            pipeline = make_pipeline(
                StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter)
            ).fit(arr[:, used], labels)
            wrong = direction[used] * pipeline[-1].coef_[0]
            if not self.monotonic or wrong.min() >= 0 or used.size == 1:
                break
            used = np.delete(used, int(np.argmin(wrong)))
        self.pipeline_: Pipeline = pipeline
        self.features_used_ = used
        self.n_features_in_ = arr.shape[1]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """(n,) log-odds that each goal is reached."""
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.decision_function(_check_X(X)[:, self.features_used_])

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n,) probability that each goal is reached by its date."""
        return expit(self.decision_function(X))
