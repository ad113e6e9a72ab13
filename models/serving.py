"""Model services: what a model deployment (or the in-process peer) runs around its models.

A service holds each of its models in a slot. A slot swaps to a new registry version only after
the version loaded (checksum and library versions, by the registry), matched the expected
feature schema, and answered a smoke prediction; otherwise the old version keeps serving and the
failure is reported. No Ray, database or web imports: the same code runs in a Serve replica and
in-process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from fincoach.features.forecast_groups import FORECAST_INPUT_NAMES
from fincoach.features.goals import GOAL_FEATURE_NAMES
from fincoach.features.spending import SpendingHistory
from fincoach.features.state import (
    BEHAVIOR_FEATURE_NAMES,
    ENHANCED_FEATURE_NAMES,
    LEGACY_FEATURE_NAMES,
)
from fincoach.features.vocab import ACTIONS, SEGMENT_NAMES, SPENDING_CATEGORIES
from models.names import (
    CQL_ENHANCED,
    CQL_LEGACY,
    FORECAST,
    FORECASTING_DEPLOYMENT,
    GOAL_PROBABILITY,
    RECOMMENDER_DEPLOYMENT,
    SEGMENTATION,
    SEGMENTATION_DEPLOYMENT,
    cql_model,
)
from models.registry import Manifest, ModelRegistry

Validator = Callable[[Any, Manifest], None]


class ModelNotLoaded(RuntimeError):
    """A slot has no usable model (nothing trained yet, or every version failed validation)."""


@dataclass(frozen=True)
class SwapReport:
    name: str
    requested: str | None
    active: str | None
    ok: bool
    error: str | None
    at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _schema(manifest: Manifest, expected: tuple[str, ...]) -> None:
    if tuple(manifest.feature_names) != tuple(expected):
        raise ValueError(
            f"{manifest.name} {manifest.version} expects features "
            f"{list(manifest.feature_names)[:3]}... ({manifest.n_features}); this code builds "
            f"{list(expected)[:3]}... ({len(expected)})"
        )


class ModelSlot:
    """One model, its manifest, and the result of the last swap."""

    def __init__(self, registry: ModelRegistry, name: str, validate: Validator) -> None:
        self._registry = registry
        self.name = name
        self._validate = validate
        self._current: tuple[Any, Manifest] | None = None
        self.last_swap: SwapReport | None = None

    @property
    def version(self) -> str | None:
        return self._current[1].version if self._current else None

    @property
    def model(self) -> Any:
        if self._current is None:
            raise ModelNotLoaded(f"no {self.name} model is loaded")
        return self._current[0]

    @property
    def manifest(self) -> Manifest | None:
        return self._current[1] if self._current else None

    def swap(self, version: str | None) -> SwapReport:
        """Load ``version`` (None: the newest), validate, and only then make it current."""
        now = datetime.now(UTC).isoformat()
        try:
            model, manifest = self._registry.load(self.name, version)
            self._validate(model, manifest)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the old model serving
            report = SwapReport(self.name, version, self.version, False, f"{exc}", now)
        else:
            self._current = (model, manifest)  # one assignment: readers see old or new, whole
            report = SwapReport(self.name, version, manifest.version, True, None, now)
        self.last_swap = report
        return report


class ModelService:
    """Slots by name, swapped together from a ``{"versions": {name: version}}`` user_config."""

    validators: Mapping[str, Validator] = {}

    def __init__(self, registry: ModelRegistry) -> None:
        self.slots = {name: ModelSlot(registry, name, v) for name, v in self.validators.items()}

    def apply(self, versions: Mapping[str, str | None] | None = None) -> list[SwapReport]:
        """Swap every slot to its requested version (unlisted: newest, if none is loaded yet)."""
        versions = dict(versions or {})
        unknown = set(versions) - set(self.slots)
        if unknown:
            raise ValueError(
                f"unknown model(s) {sorted(unknown)}; this service has {list(self.slots)}"
            )
        reports = []
        for name, slot in self.slots.items():
            wanted = versions.get(name)
            if name in versions or slot.version is None:
                if wanted is not None and wanted == slot.version:
                    continue
                reports.append(slot.swap(wanted))
        return reports

    def versions(self) -> dict[str, Any]:
        return {
            name: {
                "version": slot.version,
                "last_swap": slot.last_swap.to_dict() if slot.last_swap else None,
            }
            for name, slot in self.slots.items()
        }

    def check(self) -> None:
        """Raise if a slot cannot serve (the replica's health check)."""
        for slot in self.slots.values():
            slot.model  # noqa: B018 - raises ModelNotLoaded


# --- Segmentation -----------------------------------------------------------------------------
def _validate_segmenter(model: Any, manifest: Manifest) -> None:
    _schema(manifest, BEHAVIOR_FEATURE_NAMES)
    proba = model.predict_proba(np.zeros((1, len(BEHAVIOR_FEATURE_NAMES))))
    if proba.shape != (1, len(SEGMENT_NAMES)) or not np.isfinite(proba).all():
        raise ValueError("smoke prediction of the segmenter failed")


class SegmentationService(ModelService):
    validators = {SEGMENTATION: _validate_segmenter}

    def assign(self, features: np.ndarray) -> list[dict[str, Any]]:
        """Segment id, name, confidence and posterior for each row of behavioral features."""
        slot = self.slots[SEGMENTATION]
        model, version = slot.model, slot.version
        proba = model.predict_proba(np.atleast_2d(features))
        out = []
        for row in proba:
            segment = int(row.argmax())
            out.append(
                {
                    "segment_id": segment,
                    "segment_name": SEGMENT_NAMES[segment],
                    "confidence": float(row[segment]),
                    "probabilities": [float(p) for p in row],
                    "model_version": version,
                }
            )
        return out

    def characteristics(self) -> list[dict[str, Any]]:
        return self.slots[SEGMENTATION].model.characteristics()

    def standardize(self, features: np.ndarray) -> np.ndarray:
        return self.slots[SEGMENTATION].model.standardize(np.atleast_2d(features))


# --- Forecasting (spending and goals) ---------------------------------------------------------
def _validate_forecaster(model: Any, manifest: Manifest) -> None:
    _schema(manifest, FORECAST_INPUT_NAMES)
    out = model.forecast(SpendingHistory.empty(np.datetime64("2001-01-01T00:00:00")), 1)
    if (
        out.categories.shape != (1, len(SPENDING_CATEGORIES), 3)
        or not np.isfinite(out.categories).all()
    ):
        raise ValueError("smoke prediction of the forecaster failed")


def _validate_goal(model: Any, manifest: Manifest) -> None:
    _schema(manifest, GOAL_FEATURE_NAMES)
    p = model.predict_proba(np.zeros((1, len(GOAL_FEATURE_NAMES))))
    if p.shape != (1,) or not (0.0 <= float(p[0]) <= 1.0):
        raise ValueError("smoke prediction of the goal model failed")


class ForecastingService(ModelService):
    validators = {FORECAST: _validate_forecaster, GOAL_PROBABILITY: _validate_goal}

    def forecast(
        self, history: Any, segment: int | None, horizon: int, week_of_year: int
    ) -> tuple[np.ndarray, str]:
        """(horizon, n_spending_categories, 3) p10/p50/p90 for one user, and the version.
        ``history``: a ``SpendingHistory`` or weekly sums (n_weeks, n_spending_categories)."""
        slot = self.slots[FORECAST]
        model, version = slot.model, slot.version
        return model.predict(history, segment, horizon, week_of_year), str(version)

    def forecast_total(self, history: SpendingHistory, horizon: int) -> tuple[dict[str, Any], str]:
        """Per-category quantiles, the quantiles of each week's total and of the cumulative
        spending to the end of each week (from the joint paths, not sums of medians) and the
        recurring payments forecast as lumps; and the version."""
        slot = self.slots[FORECAST]
        model, version = slot.model, slot.version
        out = model.forecast(history, horizon)
        recurring = [
            {
                "category": SPENDING_CATEGORIES[r.category],
                "payee": r.payee,
                "period": r.period,
                "amount": r.amount,
                "day_of_month": r.day_of_month or None,
            }
            for r in out.recurring
        ]
        answer = {
            "categories": out.categories,
            "total": out.total,
            "cumulative": out.cumulative,
            "recurring": recurring,
        }
        return answer, str(version)

    def goal(self, features: np.ndarray, saving_inputs: Mapping[str, Any] | None) -> dict[str, Any]:
        """Probability, risk factors and (given the raw inputs) the saving needed for 75%."""
        slot = self.slots[GOAL_PROBABILITY]
        model, version = slot.model, slot.version
        x = np.atleast_2d(features)
        out: dict[str, Any] = {
            "model_version": version,
            "probability": float(model.predict_proba(x)[0]),
            "risk_factors": model.risk_factors(x[0]),
        }
        if saving_inputs is not None:
            out["weekly_saving_for_75"] = model.weekly_saving_for(
                **saving_inputs, target_probability=0.75
            )
        return out


# --- Recommender ------------------------------------------------------------------------------
def _validate_cql(expected: tuple[str, ...]) -> Validator:
    def check(model: Any, manifest: Manifest) -> None:
        _schema(manifest, expected)
        q = model.q_values(np.zeros((1, len(expected))))
        if q.shape != (1, len(ACTIONS)) or not np.isfinite(q).all():
            raise ValueError(f"smoke prediction of {manifest.name} failed")

    return check


class RecommenderService(ModelService):
    validators = {
        CQL_LEGACY: _validate_cql(LEGACY_FEATURE_NAMES),
        CQL_ENHANCED: _validate_cql(ENHANCED_FEATURE_NAMES),
    }

    def q_values(self, state: np.ndarray, variant: str) -> tuple[np.ndarray, str]:
        """Q-values over ACTIONS for one state (legacy: 17 dims, enhanced: 54), and the version
        that computed them."""
        slot = self.slots[cql_model(variant)]
        model, version = slot.model, slot.version
        return model.q_values(np.atleast_2d(state))[0], str(version)

    def q_values_many(
        self, states: Sequence[np.ndarray], variants: Sequence[str]
    ) -> list[tuple[np.ndarray, str]]:
        """``q_values`` for many requests: one forward pass per variant."""
        out: list[tuple[np.ndarray, str] | None] = [None] * len(states)
        for variant in set(variants):
            idx = [i for i, v in enumerate(variants) if v == variant]
            slot = self.slots[cql_model(variant)]
            model, version = slot.model, slot.version
            q = model.q_values(np.stack([np.asarray(states[i], dtype=float) for i in idx]))
            for row, i in enumerate(idx):
                out[i] = (q[row], str(version))
        return [r for r in out if r is not None]


# What each model deployment runs (the in-process clients build the same set).
SERVICES: dict[str, type[ModelService]] = {
    SEGMENTATION_DEPLOYMENT: SegmentationService,
    FORECASTING_DEPLOYMENT: ForecastingService,
    RECOMMENDER_DEPLOYMENT: RecommenderService,
}
