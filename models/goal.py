"""Goal probability: the calibrated chance of reaching a savings goal by its date, its main risk
factors, and the weekly saving that would lift the chance to a target (75% by default).

The model is a normal approximation of the net saving to come (``features.goals._net_z``: the
mean saving per week with its uncertainty, measured on 4-week sums so monthly pay and bills
cancel, plus the error of the mean and a drift of it over the months ahead), turned into a
probability by a logistic calibration fitted on goals with known outcomes: simulated goals and
goals posed at rolling cut-offs of real histories, whose outcome is what the account really
saved afterwards. Monotone in the amount saved and the planned weekly saving, which makes the
weekly-saving search a monotone search, and scale-free: a goal and history in another currency
unit get the same probability.

Why not the earlier boosted stack: trained on the simulator alone it answered below 0.02 or
above 0.98 for most real goals and missed 37-41% of the answers above 0.95 (Brier 0.26-0.36 on
real cut-offs, worse than the base rate); a few calibrated columns carry over from the
simulator to real accounts where deep trees on simulated features did not.
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike

from fincoach.features.goals import (
    GOAL_FEATURE_INDEX,
    GOAL_FEATURE_MONOTONIC,
    N_GOAL_FEATURES,
    WINDOW_WEEKS,
    goal_features,
    goal_features_batch,
)
from models.errors import check_fitted
from models.goal_risks import MIN_IMPACT, risk_rules

_F = GOAL_FEATURE_INDEX
_GRID = 65  # points per pass of the weekly-saving search ...
_PASSES = 4  # ... each pass narrows the bracket 64-fold, down to half a cent


def expit(x: Any) -> np.ndarray:
    """The logistic function, without overflow for large ``|x|``."""
    out: np.ndarray = np.exp(-np.logaddexp(0.0, -np.asarray(x, dtype=float)))
    return out


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


class GoalProbabilityModel:
    """Calibrated probability of reaching a goal by its date (see the module docstring).

    A logistic regression on three columns: ``net_z`` (the normal approximation of the saving
    to come against the gap), ``log_coverage`` (projected saving over the gap) and
    ``log1p(weeks_left)``. The first two must take a non-negative weight (a column whose weight
    comes out negative is dropped and the rest refitted), so the probability never falls when
    more is saved or planned. ``sample_weight`` lets the caller balance data sources (the
    simulator's many goals and the few real cut-offs).

    The fitted model is plain arrays (``coef_``, ``intercept_``): the forecasting replica that
    unpickles it needs no scikit-learn, which costs about 90 MB of memory per process.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 1000) -> None:
        self.C = C
        self.max_iter = max_iter

    @staticmethod
    def _design(arr: np.ndarray) -> np.ndarray:
        return np.column_stack(
            [
                arr[:, _F["net_z"]],
                arr[:, _F["log_coverage"]],
                np.log1p(np.maximum(arr[:, _F["weeks_left"]], 0.0)),
            ]
        )

    def fit(self, X: Any, y: Any, groups: Any = None, sample_weight: Any = None) -> Self:
        """Fit; ``groups`` is accepted for the call shape of the peers and ignored."""
        from sklearn.linear_model import LogisticRegression

        arr = _check_X(X)
        labels = _check_y(y, arr.shape[0])
        design = self._design(arr)
        used = [0, 1, 2]
        while True:
            model = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(
                design[:, used], labels, sample_weight=sample_weight
            )
            coef = dict(zip(used, model.coef_[0], strict=True))
            wrong = [k for k in (0, 1) if k in coef and coef[k] < 0]
            if not wrong:
                break
            used.remove(min(wrong, key=lambda k: coef[k]))
        self.columns_ = np.array(used)
        self.coef_ = np.asarray(model.coef_[0], dtype=float)
        self.intercept_ = float(model.intercept_[0])
        self.reference_ = np.median(arr[labels == 1], axis=0)
        self.n_features_in_ = arr.shape[1]
        self.fitted_method_ = "calibrated_normal"
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n,) probability that each goal is reached by its date."""
        check_fitted(self, "fitted_method_")
        design = self._design(_check_X(X))[:, self.columns_]
        return expit(design @ self.coef_ + self.intercept_)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # An artifact saved before the model kept plain arrays holds the scikit-learn
        # LogisticRegression itself: take its weights, so both kinds answer the same.
        calibrator = state.pop("calibrator_", None)
        if calibrator is not None:
            state["coef_"] = np.asarray(calibrator.coef_[0], dtype=float)
            state["intercept_"] = float(calibrator.intercept_[0])
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"GoalProbabilityModel(C={self.C!r}, max_iter={self.max_iter!r})"

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
        check_fitted(self, "fitted_method_")
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
        check_fitted(self, "fitted_method_")
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


class LogisticGoalBaseline:
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
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

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
        self.pipeline_ = pipeline
        self.features_used_ = used
        self.n_features_in_ = arr.shape[1]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """(n,) log-odds that each goal is reached."""
        check_fitted(self, "pipeline_")
        decision: np.ndarray = self.pipeline_.decision_function(_check_X(X)[:, self.features_used_])
        return decision

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n,) probability that each goal is reached by its date."""
        return expit(self.decision_function(X))
