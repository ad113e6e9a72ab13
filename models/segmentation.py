"""User segmentation: a Gaussian mixture (diagonal covariances) over standardized behavioral
features, with segments named by what their centroids look like.

Diagonal covariances because full ones split the same population differently from one bootstrap
sample to the next (bootstrap ARI 0.57-0.98 measured) while diagonal ones agree (0.99).

Names are not cluster numbers: after fitting, each mixture component is matched (Hungarian
assignment) to one of the five original segment names by a score of its centroid against a
documented prototype of that name. So the same behavior keeps the same name across retrains,
whatever order the mixture found its components in, and segment id ``i`` always means
``SEGMENT_NAMES[i]``.

Confidence is a calibrated posterior: the mixture's raw posteriors are near 1.0 for almost
everyone (diagonal Gaussians in 9 dimensions are sharp), so ``calibrate`` fits a temperature on
users whose behavioral type is known (the simulator's), and the reported confidence is then the
probability that the user is of the segment's type. ``keep_segment`` is the hysteresis: a user
keeps their stored segment until another one is ahead by ``HYSTERESIS`` in probability, so a
user near a boundary does not flip back and forth between refreshes.

Features are money only and scale-free (``features.state.BEHAVIOR_FEATURE_NAMES``): the segment
does not depend on the currency unit nor on app usage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fincoach.features.state import BEHAVIOR_FEATURE_NAMES
from fincoach.features.vocab import SEGMENT_NAMES
from models.qnet import softmax

# Prototype of each name: weights over standardized features (BEHAVIOR_FEATURE_NAMES). A
# component's score for a name is the weighted sum of its centroid's z-scores.
_F = {name: i for i, name in enumerate(BEHAVIOR_FEATURE_NAMES)}
PROTOTYPES: dict[str, dict[str, float]] = {
    "Conservative Savers": {
        "savings_rate": 1.0,
        "spend_to_income": -1.0,
        "spending_volatility": -0.5,
        "discretionary_share": -0.5,
    },
    "Impulse Buyers": {
        "impulse_buying_score": 1.0,
        "spending_volatility": 1.0,
        "spend_to_income": 0.5,
        "evening_spending_ratio": 0.5,
        "discretionary_share": 0.5,
    },
    "Goal-Oriented": {
        "savings_consistency": 1.0,
        "savings_rate": 0.5,
        "spending_volatility": -0.3,
    },
    "Budget Conscious": {
        "essential_share": 1.0,
        "discretionary_share": -0.5,
        "spending_volatility": -0.5,
    },
    "High Spenders": {
        "spend_to_income": 1.0,
        "discretionary_share": 0.5,
        "savings_rate": -0.5,
    },
}
DESCRIPTIONS = {
    "Conservative Savers": "Save a large share of income and spend steadily on essentials.",
    "Impulse Buyers": "Irregular, spiky discretionary spending, often evenings and weekends.",
    "Goal-Oriented": "Save regularly, week after week, toward their goals.",
    "Budget Conscious": "Spending concentrated on groceries and bills, steady from week to week.",
    "High Spenders": "Spend most of what comes in, much of it discretionary; little saved.",
}


# A stored segment is kept until another is ahead of it by this much posterior probability.
HYSTERESIS = 0.15
_TEMPERATURES = np.geomspace(0.5, 200.0, 60)


def keep_segment(probabilities: Any, previous: int | None, margin: float = HYSTERESIS) -> int:
    """The segment to report: the most probable one, unless ``previous`` is within ``margin``
    of it (then the user stays where they were)."""
    proba = np.asarray(probabilities, dtype=float)
    best = int(proba.argmax())
    if previous is None or not 0 <= previous < proba.shape[0]:
        return best
    return previous if proba[best] - proba[previous] < margin else best


def _prototype_matrix() -> np.ndarray:
    weights = np.zeros((len(SEGMENT_NAMES), len(BEHAVIOR_FEATURE_NAMES)))
    for s, name in enumerate(SEGMENT_NAMES):
        for feature, w in PROTOTYPES[name].items():
            weights[s, _F[feature]] = w
    return weights


@dataclass(frozen=True)
class DiagonalMixture:
    """A fitted Gaussian mixture with diagonal covariances, as plain arrays: what serving needs
    of scikit-learn's GaussianMixture (its posteriors), so the segmentation replica that
    unpickles the model does not load scikit-learn (about 90 MB of memory per process)."""

    weights: np.ndarray  # (k,)
    means: np.ndarray  # (k, d)
    precisions_cholesky: np.ndarray  # (k, d): 1 / standard deviation, per component and feature

    @classmethod
    def of(cls, mixture: Any) -> DiagonalMixture:
        """The arrays of a fitted ``GaussianMixture(covariance_type="diag")``."""
        return cls(
            weights=np.array(mixture.weights_, dtype=float),
            means=np.array(mixture.means_, dtype=float),
            precisions_cholesky=np.array(mixture.precisions_cholesky_, dtype=float),
        )

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, k) posterior of each component, computed as GaussianMixture.predict_proba does."""
        prec = self.precisions_cholesky
        log_det = np.log(prec).sum(axis=1)  # (k,)
        z = (X[:, None, :] - self.means[None, :, :]) * prec[None, :, :]  # (n, k, d)
        log_prob = -0.5 * (X.shape[1] * np.log(2 * np.pi) + (z * z).sum(axis=2)) + log_det
        return softmax(log_prob + np.log(self.weights))


def _check_X(X: Any, n_features: int) -> np.ndarray:
    arr = np.asarray(X, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != n_features:
        raise ValueError(f"expected {n_features} features, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("features contain NaN or inf values")
    return arr


class Segmenter:
    """Five behavioral segments with stable names and posterior confidence."""

    def __init__(
        self,
        n_init: int = 8,
        covariance_type: str = "diag",
        reg_covar: float = 1e-4,
        seed: int = 0,
    ) -> None:
        self.n_init = n_init
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.seed = seed

    @property
    def n_segments(self) -> int:
        return len(SEGMENT_NAMES)

    def fit(self, X: Any, types: Any = None) -> Segmenter:
        """Fit the mixture and name its components. With ``types`` (the behavioral type of each
        training user, index into SEGMENT_NAMES, as the simulator knows them) a component takes
        the name of the type most of its users have (Hungarian assignment on the counts);
        without, the name whose prototype its centroid scores best on."""
        # Imported here, not at the top: the ingress imports this module for keep_segment and
        # would otherwise carry scikit-learn and SciPy (about 100 MB per replica) unused.
        from scipy.optimize import linear_sum_assignment
        from sklearn.mixture import GaussianMixture

        arr = _check_X(X, len(BEHAVIOR_FEATURE_NAMES))
        if arr.shape[0] < 5 * self.n_segments:
            raise ValueError(f"need at least {5 * self.n_segments} users, got {arr.shape[0]}")
        mean = arr.mean(axis=0)
        scale = np.maximum(arr.std(axis=0), 1e-6)
        z = (arr - mean) / scale
        mixture = GaussianMixture(
            n_components=self.n_segments,
            covariance_type=self.covariance_type,
            n_init=self.n_init,
            reg_covar=self.reg_covar,
            random_state=self.seed,
        ).fit(z)
        scores = mixture.means_ @ _prototype_matrix().T  # (component, name)
        if types is not None:
            labels = np.asarray(types, dtype=int)
            if labels.shape != (arr.shape[0],):
                raise ValueError(f"types must have shape ({arr.shape[0]},)")
            component = mixture.predict(z)
            counts = np.zeros((self.n_segments, self.n_segments))
            np.add.at(counts, (component, labels), 1.0)
            components, names = linear_sum_assignment(-counts)
        else:
            components, names = linear_sum_assignment(-scores)
        order = np.empty(self.n_segments, dtype=int)
        order[names] = components  # segment id -> mixture component
        self.mean_, self.scale_ = mean, scale
        # Diagonal (the default): kept as plain arrays; another covariance type keeps the
        # scikit-learn object, which then loads scikit-learn wherever the model is unpickled.
        self.mixture_ = DiagonalMixture.of(mixture) if self.covariance_type == "diag" else mixture
        self.component_of_segment_ = order
        self.centroids_ = mixture.means_[order] * scale + mean
        self.name_scores_ = scores[order]
        self.n_features_in_ = arr.shape[1]
        self.feature_names_in_ = np.array(BEHAVIOR_FEATURE_NAMES, dtype=object)
        labels = self.predict(arr)
        self.segment_share_ = np.bincount(labels, minlength=self.n_segments) / arr.shape[0]
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "mixture_"):
            raise RuntimeError("Segmenter is not fitted; call fit first")

    def raw_proba(self, X: Any) -> np.ndarray:
        """(n, 5) the mixture's own posteriors, columns in SEGMENT_NAMES order."""
        self._check_fitted()
        arr = _check_X(X, self.n_features_in_)
        posterior = self.mixture_.predict_proba((arr - self.mean_) / self.scale_)
        return posterior[:, self.component_of_segment_]

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, 5) calibrated posterior probabilities, columns in SEGMENT_NAMES order."""
        return _tempered(self.raw_proba(X), getattr(self, "temperature_", 1.0))

    def calibrate(self, X: Any, types: Any) -> Segmenter:
        """Fit the temperature on users of known type (``types``: index into SEGMENT_NAMES) by
        log loss, so that the confidence is the probability of being of that type."""
        raw = self.raw_proba(X)
        labels = np.asarray(types, dtype=int)
        losses = [
            -np.log(np.maximum(_tempered(raw, t)[np.arange(labels.size), labels], 1e-12)).mean()
            for t in _TEMPERATURES
        ]
        self.temperature_ = float(_TEMPERATURES[int(np.argmin(losses))])
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.raw_proba(X).argmax(axis=1)

    def assign(self, x: Any) -> tuple[int, str, float]:
        """One user's (segment id, name, confidence)."""
        proba = self.predict_proba(x)[0]
        segment = int(proba.argmax())
        return segment, SEGMENT_NAMES[segment], float(proba[segment])

    def characteristics(self) -> list[dict[str, Any]]:
        """Each segment's profile: name, description, share of users, centroid features."""
        self._check_fitted()
        return [
            {
                "segment_id": s,
                "name": SEGMENT_NAMES[s],
                "description": DESCRIPTIONS[SEGMENT_NAMES[s]],
                "share": float(self.segment_share_[s]),
                "centroid": dict(
                    zip(BEHAVIOR_FEATURE_NAMES, map(float, self.centroids_[s]), strict=True)
                ),
            }
            for s in range(self.n_segments)
        ]

    def standardize(self, X: Any) -> np.ndarray:
        self._check_fitted()
        return (_check_X(X, self.n_features_in_) - self.mean_) / self.scale_

    def nearest_peers(self, x: Any, candidates: Any, k: int = 5) -> np.ndarray:
        """Indices of the ``k`` candidates nearest to ``x`` in standardized feature space."""
        if k < 1:
            raise ValueError("k must be >= 1")
        target = self.standardize(x)[0]
        pool = self.standardize(candidates)
        distance = np.linalg.norm(pool - target, axis=1)
        return np.argsort(distance, kind="stable")[:k]


def _tempered(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Posteriors with their log-odds divided by ``temperature`` (1: unchanged)."""
    if temperature == 1.0:
        return proba
    logits = np.log(np.maximum(proba, 1e-300)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out: np.ndarray = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)
