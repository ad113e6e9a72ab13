"""The served models on a real transaction history, through the serving path.

The history is written into a scratch SQLite database as one user's transactions. At rolling
cut-offs (Mondays, 00:00 UTC, every ``step_weeks``), ``db.queries.features.load_snapshot`` builds
the snapshot the API would build then, the features come from the same functions the use cases
call (``SpendingHistory.from_snapshot``, ``features.goal_inputs``, ``behavior_features``), and
the predictions from the model services the deployments run (``models.serving``), loaded from
the registry as served. Outcomes are what the history shows afterwards.

When the served version was trained on this very file (its manifest names the file's sha256),
only cut-offs whose outcomes come after what training used are scored ("out of time").
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np

from fincoach.features.frames import UserSnapshot
from fincoach.features.spending import SpendingHistory
from fincoach.features.state import behavior_features
from fincoach.training.forecast_data import mondays, spent_after
from fincoach.training.forecast_metrics import (
    ForecastScorer,
    MethodForecast,
    forecast_targets,
    history_scale,
    peer_forecasts,
)
from fincoach.training.goal_data import CoverageLogistic, normal_approximation, real_goals
from fincoach.training.goal_eval import scores, training_set
from fincoach.training.real_data import RealHistory, load_history, to_datetime
from fincoach.usecases.segments import with_hysteresis
from models.names import FORECAST, GOAL_PROBABILITY, SEGMENTATION
from models.registry import ModelRegistry
from models.serving import ForecastingService, SegmentationService

HORIZON: Final = 4
MIN_CUTOFFS: Final = 30
SCALES: Final = (1 / 90, 90.0)


@dataclass
class RealEvaluation:
    history: str
    cutoffs: list[str]
    out_of_time_from: str | None
    versions: dict[str, str | None]
    forecast: dict[str, Any] = field(default_factory=dict)
    goal: dict[str, Any] = field(default_factory=dict)
    segments: dict[str, Any] = field(default_factory=dict)
    scale: dict[str, Any] = field(default_factory=dict)


def _kind(category: str) -> str:
    return {"income": "income", "savings": "transfer"}.get(category, "expense")


async def _write(url: str, history: RealHistory) -> int:
    """The history as one user's rows; returns the user id."""
    from sqlalchemy import insert

    from fincoach.db.engine import make_engine
    from fincoach.db.tables import Transaction, User, UserProfile

    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            user_id = (
                await conn.execute(
                    insert(User)
                    .values(
                        email="real@history.example",
                        hashed_password="-",
                        first_name="real",
                        last_name="",
                    )
                    .returning(User.id)
                )
            ).scalar_one()
            await conn.execute(insert(UserProfile).values(user_id=user_id, currency="GBP"))
            rows = [
                {
                    "user_id": user_id,
                    "amount": round(float(a), 2),
                    "category": c,
                    "merchant": (m or None) and str(m)[:200],
                    "kind": _kind(c),
                    "transaction_type": "credit" if c == "income" else "debit",
                    "occurred_at": to_datetime(t),
                }
                for t, a, c, m in zip(
                    history.occurred_at,
                    history.amount,
                    history.category,
                    history.merchant,
                    strict=True,
                )
                if round(float(a), 2) > 0
            ]
            await conn.execute(insert(Transaction), rows)
    finally:
        await engine.dispose()
    return int(user_id)


async def _snapshots(url: str, user_id: int, cutoffs: list[date]) -> dict[date, UserSnapshot]:
    from fincoach.db.engine import make_engine, make_sessionmaker
    from fincoach.db.queries.features import HISTORY_WEEKS, load_snapshot

    engine = make_engine(url)
    try:
        sessions = make_sessionmaker(engine)
        out = {}
        async with sessions() as session:
            for c in cutoffs:
                as_of = datetime(c.year, c.month, c.day, tzinfo=UTC)
                out[c] = await load_snapshot(
                    session, user_id, as_of=as_of, raw_weeks=HISTORY_WEEKS, weeks=HISTORY_WEEKS
                )
        return out
    finally:
        await engine.dispose()


def api_snapshots(history: RealHistory, cutoffs: list[date]) -> dict[date, UserSnapshot]:
    """The snapshot the API builds at each cut-off (scratch SQLite database, migrated)."""
    from fincoach.db.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix="fincoach-real-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'real.db'}"
        upgrade(url)
        user_id = asyncio.run(_write(url, history))
        return asyncio.run(_snapshots(url, user_id, cutoffs))


def _trained_until(manifests: list[Any], sha: str) -> date | None:
    """The latest date whose outcomes a served version trained on, for this file."""
    until = None
    for manifest in manifests:
        if manifest is None:
            continue
        for source in manifest.extra.get("trained_on", {}).get("real", []):
            if isinstance(source, dict) and source.get("sha256") == sha:
                day = date.fromisoformat(source["outcomes_until"])
                until = day if until is None else max(until, day)
    return until


def evaluate_real(
    path: str | Path, registry: ModelRegistry, *, step_weeks: int = 2
) -> RealEvaluation:
    """Score the served forecaster, goal model and segmenter on the history in ``path``."""
    history = load_history(path)
    sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    forecasting, segmentation = ForecastingService(registry), SegmentationService(registry)
    forecasting.apply()
    segmentation.apply()
    manifests = [forecasting.slots[FORECAST].manifest, forecasting.slots[GOAL_PROBABILITY].manifest]
    until = _trained_until(manifests, sha)
    first = history.first_day + timedelta(weeks=52)
    if until is not None:
        first = max(first, until + timedelta(days=1))
    cutoffs = mondays(first, history.last_day - timedelta(weeks=HORIZON), step_weeks)
    if len(cutoffs) < MIN_CUTOFFS:
        # Fewer than the minimum: step weekly, then accept what there is (the report says so).
        cutoffs = mondays(first, history.last_day - timedelta(weeks=HORIZON), 1)
    snapshots = api_snapshots(history, cutoffs)
    result = RealEvaluation(
        history=history.name,
        cutoffs=[c.isoformat() for c in cutoffs],
        out_of_time_from=until.isoformat() if until else None,
        versions={
            FORECAST: forecasting.slots[FORECAST].version,
            GOAL_PROBABILITY: forecasting.slots[GOAL_PROBABILITY].version,
            SEGMENTATION: segmentation.slots[SEGMENTATION].version,
        },
    )
    result.forecast = _forecasts(forecasting, history, cutoffs, snapshots)
    result.scale = _scale_check(forecasting, snapshots, cutoffs)
    result.goal = _goals(forecasting, history, cutoffs, snapshots)
    result.segments = _segments(segmentation, cutoffs, snapshots)
    return result


def _forecasts(
    service: ForecastingService,
    history: RealHistory,
    cutoffs: list[date],
    snapshots: dict[date, UserSnapshot],
) -> dict[str, Any]:
    scorer, cold = ForecastScorer(), ForecastScorer()
    for c in cutoffs:
        spending = SpendingHistory.from_snapshot(snapshots[c])
        actual = spent_after(history, c, HORIZON)
        weekly = spending.weekly()
        scale = history_scale(weekly)
        scorer.add("model", _served(service, spending), actual, scale)
        for name, peer in peer_forecasts(weekly, HORIZON).items():
            scorer.add(name, peer, actual, scale)
        # Cold start: the same cut-off seen with only its last 2 weeks of rows.
        short = SpendingHistory.from_frame(snapshots[c].transactions, spending.end, max_weeks=2)
        cold.add("model", _served(service, short), actual, scale)
        own = short.weekly().mean(axis=0) if short.n_weeks else np.zeros(weekly.shape[1])
        point = MethodForecast.of_points(np.broadcast_to(own, actual.shape))
        cold.add("mean_of_own_weeks", point, actual, scale)
    report: dict[str, Any] = scorer.report()
    report["targets"] = forecast_targets(report)
    cold_report: dict[str, Any] = cold.report()
    cold_report["history_weeks"] = 2
    report["cold_start"] = cold_report
    return report


def _served(service: ForecastingService, spending: SpendingHistory) -> MethodForecast:
    out, _ = service.forecast_total(spending, HORIZON)
    return MethodForecast(out["categories"], out["total"], out["cumulative"])


def _scale_check(
    service: ForecastingService, snapshots: dict[date, UserSnapshot], cutoffs: list[date]
) -> dict[str, Any]:
    """Largest relative change of any forecast when amounts are times 1/90 or 90."""
    worst = 0.0
    for c in cutoffs[:: max(1, len(cutoffs) // 10)]:
        spending = SpendingHistory.from_snapshot(snapshots[c])
        base, _ = service.forecast_total(spending, HORIZON)
        for k in SCALES:
            other, _ = service.forecast_total(spending.scaled(k), HORIZON)
            for key in ("categories", "total", "cumulative"):
                ref = np.abs(base[key]).max() + 1e-12
                worst = max(worst, float(np.abs(other[key] / k - base[key]).max() / ref))
    return {"factors": list(SCALES), "max_relative_change": worst}


def _goals(
    service: ForecastingService,
    history: RealHistory,
    cutoffs: list[date],
    snapshots: dict[date, UserSnapshot],
) -> dict[str, Any]:
    X, y, inputs = real_goals(history, cutoffs, lambda c: snapshots[c])
    if len(y) == 0 or y.min() == y.max():
        return {"n_goals": int(len(y)), "note": "too few goals with both outcomes"}
    model = service.slots[GOAL_PROBABILITY].model
    proba = np.array([service.goal(x, None)["probability"] for x in X])
    # The peers learn from the same kinds of training goals as the served model: simulated ones
    # and the real sources its manifest names.
    train_X, train_y, weight = _peer_training(service.slots[GOAL_PROBABILITY].manifest)
    peers = {
        "base_rate": np.full(len(y), float(np.average(train_y, weights=weight))),
        "logistic_coverage": CoverageLogistic().fit(train_X, train_y, weight).predict_proba(X),
        "normal_approximation": normal_approximation(inputs),
    }
    report: dict[str, Any] = {
        "n_goals": int(len(y)),
        "reached_rate": float(y.mean()),
        "model": {**scores(y, proba), "log_loss": _log_loss(y, proba)},
        "served_model_class": type(model).__name__,
    }
    for name, p in peers.items():
        report[name] = {"brier": float(np.mean((p - y) ** 2)), "log_loss": _log_loss(y, p)}
        if name != "base_rate":
            report[name].update(
                {k: v for k, v in scores(y, p).items() if k in ("auc", "ece", "accuracy")}
            )
    report["targets"] = {
        "brier_below_every_peer": bool(
            all(report["model"]["brier"] < report[p]["brier"] for p in peers)
        ),
        "ece<=0.05": bool(report["model"]["ece"] <= 0.05),
    }
    return report


def _peer_training(manifest: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training goals like the served model's: a simulated population (the manifest's seed) and
    the real sources its manifest names, each up to the date it recorded."""
    from fincoach.training.simulator import SimConfig, simulate

    trained_on = manifest.extra.get("trained_on", {}) if manifest is not None else {}
    seed = int(trained_on.get("simulator", {}).get("seed", 42))
    real = []
    for source in trained_on.get("real", []):
        path = Path(str(source.get("path", "")))
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == source["sha256"]:
            real.append((load_history(path), date.fromisoformat(source["outcomes_until"])))
    pop = simulate(SimConfig(n_users=400, n_weeks=52, seed=seed, future_weeks=52))
    X, y, weight, _ = training_set(pop, real)
    return X, y, weight


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def _segments(
    service: SegmentationService, cutoffs: list[date], snapshots: dict[date, UserSnapshot]
) -> dict[str, Any]:
    raw, kept, confidence = [], [], []
    previous: int | None = None
    for c in cutoffs:
        assigned = service.assign(behavior_features(snapshots[c]))[0]
        raw.append(int(assigned["segment_id"]))
        chosen = with_hysteresis(assigned, previous)
        previous = int(chosen["segment_id"])
        kept.append(previous)
        confidence.append(float(chosen["confidence"]))

    def switches(seq: list[int]) -> int:
        return int(sum(a != b for a, b in zip(seq, seq[1:], strict=False)))

    return {
        "cutoffs": len(cutoffs),
        "distinct_without_hysteresis": len(set(raw)),
        "switches_without_hysteresis": switches(raw),
        "distinct": len(set(kept)),
        "switches": switches(kept),
        "mean_confidence": float(np.mean(confidence)),
        "segments": {str(s): kept.count(s) for s in sorted(set(kept))},
    }
