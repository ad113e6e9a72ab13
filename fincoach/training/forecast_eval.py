"""The forecaster: its training cut-offs and its hold-out evaluation on simulated users.

Training cut-offs come from the simulator's training population and, when given, from real
histories (weekly cut-offs up to a date; the evaluation of that history then uses only later
cut-offs). The evaluation scores the model on another simulator seed beside the peers of
``forecast_metrics`` at each user's end of history, and the cold start: every method given only
the last 2 weeks (MASE scaled by the whole history, as for the others).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Final

import numpy as np

from fincoach.features.spending import SpendingHistory
from fincoach.training.forecast_data import mondays, real_cutoffs, simulator_cutoffs, user_frame
from fincoach.training.forecast_metrics import (
    ForecastScorer,
    MethodForecast,
    forecast_targets,
    history_scale,
    peer_forecasts,
)
from fincoach.training.real_data import RealHistory
from fincoach.training.simulator import SPEND_IDX, Population
from models.forecast import SpendingForecaster

HORIZON: Final = 4
COLD_START_WEEKS: Final = 2
QUICK_PARAMS: Final[dict[str, Any]] = {
    "n_paths": 1000,
    "half_lives": (13.0, 26.0),
    "prior_weights": (1.0, 3.0),
    "mood_powers": (0.0, 0.3),
    "search_paths": 200,
}


def make_forecaster(*, quick: bool = False, random_state: int = 0) -> SpendingForecaster:
    return SpendingForecaster(random_state=random_state, **(QUICK_PARAMS if quick else {}))


def real_training_cutoffs(history: RealHistory, until: date) -> list[date]:
    """Weekly cut-offs from 8 weeks in to ``until`` minus the horizon (outcomes before it)."""
    return mondays(
        history.first_day + timedelta(weeks=8), until - timedelta(weeks=HORIZON), step_weeks=1
    )


def fit_forecaster(
    train: Population,
    real: list[tuple[RealHistory, date]],
    *,
    quick: bool = False,
    seed: int = 0,
) -> tuple[SpendingForecaster, dict[str, Any]]:
    """Fit on simulated cut-offs and real ones (each history up to its date); return the model
    and what it was trained on."""
    histories, futures = simulator_cutoffs(
        train, origins_per_user=1, horizon=HORIZON, seed=seed, min_weeks=1
    )
    sources = ["simulator"] * len(histories)
    trained_on: dict[str, Any] = {
        "simulator": {
            "users": train.config.n_users,
            "weeks": train.config.n_weeks,
            "seed": train.config.seed,
            "cutoffs": len(histories),
        },
        "real": [],
    }
    future_parts = [futures]
    for history, until in real:
        cutoffs = real_training_cutoffs(history, until)
        if not cutoffs:
            trained_on["real"].append({"history": history.name, "cutoffs": 0})
            continue
        rh, rf = real_cutoffs(history, cutoffs, HORIZON)
        histories += rh
        future_parts.append(rf)
        sources += [f"real:{history.name}"] * len(rh)
        trained_on["real"].append(
            {"history": history.name, "cutoffs": len(rh), "outcomes_until": until.isoformat()}
        )
    model = make_forecaster(quick=quick, random_state=seed).fit(
        histories, np.concatenate(future_parts), sources
    )
    return model, trained_on


def evaluate(test: Population, model: SpendingForecaster) -> dict[str, Any]:
    """Model and peers on each test user's next HORIZON weeks after the end of the history."""
    end = np.datetime64(test.week_start(test.config.n_weeks), "s")
    actual = test.future[:, :HORIZON, SPEND_IDX]
    full, cold = ForecastScorer(), ForecastScorer()
    for user in range(test.config.n_users):
        frame = user_frame(test, user)
        history = SpendingHistory.from_frame(frame, end)
        weekly = history.weekly()
        scale = history_scale(weekly)
        for scorer, h in ((full, history), (cold, SpendingHistory.from_frame(frame, end, 2))):
            out = model.forecast(h, HORIZON)
            served = MethodForecast(out.categories, out.total, out.cumulative)
            scorer.add("model", served, actual[user], scale)
            for name, peer in peer_forecasts(h.weekly(), HORIZON).items():
                scorer.add(name, peer, actual[user], scale)
            own = h.weekly().mean(axis=0)
            point = MethodForecast.of_points(np.broadcast_to(own, actual[user].shape))
            scorer.add("mean_of_own_weeks", point, actual[user], scale)
    report: dict[str, Any] = full.report()
    report["targets"] = forecast_targets(report)
    cold_report: dict[str, Any] = cold.report()
    cold_report["history_weeks"] = COLD_START_WEEKS
    cold_report["model_vs_mean_of_own_weeks_mase"] = (
        cold_report["model"]["mase"] / cold_report["mean_of_own_weeks"]["mase"]
    )
    report["cold_start"] = cold_report
    report["setup"] = {
        "test_users": test.config.n_users,
        "test_weeks": test.config.n_weeks,
        "test_seed": test.config.seed,
        "horizon": HORIZON,
    }
    return report
