"""Hold-out evaluation of the spending forecaster against naive peers on simulated users.

The forecaster is fitted on one simulated population and scored on another (another seed): each
test user's history is known and the next ``horizon`` weeks (``Population.future``) are the
truth. Every method forecasts the same series, so the numbers compare like with like.

Metrics (fractions, not percent), over every (user, step, category) unless said otherwise:

* WAPE: sum |y - f| / sum y.
* MASE: per series (user, category), mean |y - f| over the steps divided by the series' scale,
  the mean |y_t - y_{t-1}| over the user's whole test history (a property of the series, so the
  cold-start check, where methods see only 2 weeks, uses the same scale); then averaged over
  series. Series with a scale of 0 (a constant history, e.g. never any spend) have no MASE and
  are left out; ``n_series_zero_scale`` counts them.
* sMAPE: mean of 2|y - f| / (|y| + |f|), with 0/0 taken as 0 (a correctly forecast empty week).
* MAPE of total weekly spend: per (user, step), |Y - F| / Y of the sums over categories; weeks
  with a total of 0 are left out.
* Model only: coverage of the 80% interval (share of actuals within [p10, p90]), its mean width,
  and the share of actuals at or below p50 (0.5 if the median is calibrated).

Peers: naive (last week), seasonal naive (the same week a year before the target; falls back to
naive and says so when the history is shorter than 52 weeks) and the mean of the last 4 weeks.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Final

import numpy as np

from fincoach.features.forecast import SEASON_PERIOD, check_horizon
from fincoach.training.simulator import SPEND_IDX, Population, SimConfig, simulate
from models.forecast import SpendingForecaster

PEERS: Final = ("naive", "seasonal_naive", "moving_average_4")
COLD_START_WEEKS: Final = 2
MASE_GAIN_TARGET: Final = 0.10  # MASE at least 10% below the best peer's
COVERAGE_TARGET: Final = 0.80
COVERAGE_TOLERANCE: Final = 0.05
TOTAL_MAPE_GOAL: Final = 0.15  # the original plan's aim; reported, not required

# Full: 2,000 users x 104 weeks fit in about a minute on one core. Quick: tests and demos; on
# 300 users x 60 weeks it fits in about 2 s and scores as well as the full settings there.
FULL_PARAMS: Final[dict[str, Any]] = {}
QUICK_PARAMS: Final[dict[str, Any]] = {
    "max_iter": 25,
    "learning_rate": 0.3,
    "max_leaf_nodes": 15,
    "origins_per_user": 4,
}


def make_forecaster(*, quick: bool = False, random_state: int = 0) -> SpendingForecaster:
    """The forecaster with the full or quick hyperparameters."""
    params = QUICK_PARAMS if quick else FULL_PARAMS
    return SpendingForecaster(random_state=random_state, **params)


def sim_week_of_year(population: Population, week: int) -> int:
    """ISO-style week number (1..52) of ``week`` as the simulator's 52-week seasonality sees it.

    The simulator's cycle is exactly 52 weeks from the start's ISO week, so in a 53-week ISO year
    the calendar drifts one week from it; the truth here is the simulator's cycle.
    """
    first = population.config.start.isocalendar().week
    return (first - 1 + week) % SEASON_PERIOD + 1


def fit_forecaster(
    train: Population, *, quick: bool = False, random_state: int = 0
) -> SpendingForecaster:
    """Fit the forecaster on a population's history, with its latent types as segments."""
    return make_forecaster(quick=quick, random_state=random_state).fit(
        train.weekly[:, :, SPEND_IDX], train.latent, sim_week_of_year(train, 0)
    )


def evaluate(
    train: Population,
    test: Population,
    *,
    horizon: int = 4,
    quick: bool = False,
    model: SpendingForecaster | None = None,
) -> dict[str, Any]:
    """Fit on ``train`` (unless ``model`` is given), score on ``test``'s next ``horizon`` weeks.

    Returns ``{"model", "naive", "seasonal_naive", "moving_average_4"}`` metric dicts, plus
    ``model_segment_unknown`` (the model without the segment), ``cold_start`` (every method given
    only the last 2 weeks), ``targets`` and ``timing`` (seconds).
    """
    horizon = check_horizon(horizon)
    if test.future.shape[1] < horizon:
        raise ValueError(
            f"test population has {test.future.shape[1]} future weeks; simulate it with "
            f"future_weeks >= {horizon}"
        )
    timing: dict[str, float] = {}
    if model is None:
        start = time.perf_counter()
        model = fit_forecaster(train, quick=quick)
        timing["fit_seconds"] = time.perf_counter() - start
    scoring = time.perf_counter()
    history = test.weekly[:, :, SPEND_IDX]
    actual = test.future[:, :horizon, SPEND_IDX]
    week = sim_week_of_year(test, test.config.n_weeks)
    scale = np.abs(np.diff(history, axis=1)).mean(axis=1) if history.shape[1] > 1 else None
    if scale is None:
        raise ValueError("the test history needs at least 2 weeks to scale MASE")

    start = time.perf_counter()
    quantiles = model.predict_many(history, test.latent, horizon, week)
    timing["predict_seconds"] = time.perf_counter() - start
    report: dict[str, Any] = {"model": _score_model(quantiles, actual, scale)}
    report.update(_score_peers(history, actual, scale))
    unknown = model.predict_many(history, None, horizon, week)
    report["model_segment_unknown"] = _score_model(unknown, actual, scale)

    recent = history[:, -COLD_START_WEEKS:]
    cold: dict[str, Any] = {
        "history_weeks": COLD_START_WEEKS,
        "model": _score_model(
            model.predict_many(recent, test.latent, horizon, week), actual, scale
        ),
        "model_segment_unknown": _score_model(
            model.predict_many(recent, None, horizon, week), actual, scale
        ),
    }
    cold.update(_score_peers(recent, actual, scale))
    report["cold_start"] = cold
    report["targets"] = _targets(report)
    timing["evaluate_seconds"] = time.perf_counter() - scoring
    report["timing"] = timing
    report["setup"] = {
        "train_users": train.config.n_users,
        "train_weeks": train.config.n_weeks,
        "test_users": test.config.n_users,
        "test_weeks": test.config.n_weeks,
        "horizon": horizon,
        "quick": quick,
        "training_rows": model.n_training_rows_,
    }
    return report


def peer_forecasts(history: np.ndarray, horizon: int) -> dict[str, tuple[np.ndarray, str]]:
    """``(n, horizon, C)`` forecasts of each peer, with a note on how it was made."""
    n_weeks = history.shape[1]
    naive = np.repeat(history[:, -1:], horizon, axis=1)
    if n_weeks >= SEASON_PERIOD:
        # Target step s (1-based) is week n_weeks + s - 1; a year before it is n_weeks + s - 53.
        seasonal = history[:, n_weeks - SEASON_PERIOD : n_weeks - SEASON_PERIOD + horizon]
        note = "value 52 weeks before the target week"
    else:
        seasonal = naive
        note = f"fell back to naive: {n_weeks} weeks of history < {SEASON_PERIOD}"
    window = history[:, -4:]
    moving = np.repeat(window.mean(axis=1, keepdims=True), horizon, axis=1)
    moving_note = "mean of the last 4 weeks" if n_weeks >= 4 else f"mean of the {n_weeks} weeks"
    return {
        "naive": (naive, "last week's value"),
        "seasonal_naive": (seasonal, note),
        "moving_average_4": (moving, moving_note),
    }


def point_metrics(forecast: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> dict[str, Any]:
    """WAPE, MASE (overall and per step), sMAPE and MAPE of the weekly total; see the module doc."""
    err = np.abs(actual - forecast)  # (n, horizon, C)
    denom = np.abs(actual) + np.abs(forecast)
    smape = np.divide(2 * err, denom, out=np.zeros_like(err), where=denom > 0)
    ok = scale > 0
    per_series = err.mean(axis=1)[ok] / scale[ok]
    per_step = [float((err[:, s][ok] / scale[ok]).mean()) for s in range(err.shape[1])]
    total_actual = actual.sum(axis=2)
    total_err = np.abs(total_actual - forecast.sum(axis=2))
    spent = total_actual > 0
    return {
        "wape": float(err.sum() / max(float(np.abs(actual).sum()), 1e-12)),
        "mase": float(per_series.mean()),
        "mase_by_step": per_step,
        "smape": float(smape.mean()),
        "mape_total": float((total_err[spent] / total_actual[spent]).mean()),
        "n_series_zero_scale": int((~ok).sum()),
    }


def _score_model(quantiles: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> dict[str, Any]:
    out = point_metrics(quantiles[..., 1], actual, scale)
    lo, hi = quantiles[..., 0], quantiles[..., 2]
    inside = (actual >= lo) & (actual <= hi)
    out["coverage_80"] = float(inside.mean())
    out["coverage_by_category"] = inside.mean(axis=(0, 1)).round(4).tolist()
    out["mean_interval_width"] = float((hi - lo).mean())
    out["share_at_or_below_p50"] = float((actual <= quantiles[..., 1]).mean())
    return out


def _score_peers(history: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (forecast, note) in peer_forecasts(history, actual.shape[1]).items():
        out[name] = {**point_metrics(forecast, actual, scale), "method": note}
    return out


def _targets(report: dict[str, Any]) -> dict[str, Any]:
    best = min(PEERS, key=lambda p: report[p]["mase"])
    gain = 1.0 - report["model"]["mase"] / report[best]["mase"]
    coverage = report["model"]["coverage_80"]
    mape_total = report["model"]["mape_total"]
    return {
        "best_peer": best,
        "best_peer_mase": report[best]["mase"],
        "mase_gain_vs_best_peer": gain,
        "mase_target": f">= {MASE_GAIN_TARGET:.0%} below the best peer",
        "mase_met": bool(gain >= MASE_GAIN_TARGET),
        "coverage_80": coverage,
        "coverage_target": f"{COVERAGE_TARGET:.0%} +/- {COVERAGE_TOLERANCE * 100:.0f} points",
        "coverage_met": bool(abs(coverage - COVERAGE_TARGET) <= COVERAGE_TOLERANCE),
        "mape_total": mape_total,
        "mape_total_goal": f"< {TOTAL_MAPE_GOAL:.0%} (original plan; informational)",
        "mape_total_met": bool(mape_total < TOTAL_MAPE_GOAL),
        "cold_start_mase_gain_vs_best_peer": 1.0
        - report["cold_start"]["model"]["mase"]
        / min(report["cold_start"][p]["mase"] for p in PEERS),
    }


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table of the headline metrics, one row per method."""
    rows = [("model", report["model"]), *((p, report[p]) for p in PEERS)]
    rows.append(("model (segment unknown)", report["model_segment_unknown"]))
    lines = [
        f"{'method':<26}{'WAPE':>8}{'MASE':>8}{'sMAPE':>8}{'MAPE tot':>10}{'cov80':>8}{'width':>9}"
    ]
    for title, block in (("", rows), ("cold start, 2 weeks", None)):
        if block is None:
            lines.append(title)
            cold = report["cold_start"]
            block = [("model", cold["model"]), *((p, cold[p]) for p in PEERS)]
            block.append(("model (segment unknown)", cold["model_segment_unknown"]))
        for name, m in block:
            cov = f"{m['coverage_80']:8.3f}" if "coverage_80" in m else " " * 8
            width = f"{m['mean_interval_width']:9.1f}" if "mean_interval_width" in m else ""
            lines.append(
                f"{name:<26}{m['wape']:8.3f}{m['mase']:8.3f}{m['smape']:8.3f}"
                f"{m['mape_total']:10.3f}{cov}{width}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m training.forecast_eval [--quick]``: simulate, fit, score, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300/200 users x 60 weeks")
    parser.add_argument("--horizon", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = parser.parse_args(argv)
    users, test_users, weeks = (300, 200, 60) if args.quick else (2000, 1000, 104)
    train = simulate(SimConfig(n_users=users, n_weeks=weeks, seed=1, future_weeks=args.horizon))
    test = simulate(SimConfig(n_users=test_users, n_weeks=weeks, seed=2, future_weeks=args.horizon))
    report = evaluate(train, test, horizon=args.horizon, quick=args.quick)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(format_table(report))
    print(json.dumps({"targets": report["targets"], "timing": report["timing"]}, indent=2))


if __name__ == "__main__":
    main()
