"""Forecast peers and metrics shared by the simulator's and the real-data evaluations.

Peers (each from the same weekly history the model saw): last week, the mean of the last 4 and
of the last 52 weeks, seasonal naive (the same week a year before; last week when the history is
shorter), and the empirical 10/50/90% quantiles of the last 12 weeks (the only peer with an
interval). A point peer's p10 = p50 = p90; its totals are sums of its points, the empirical
peer's the quantiles of the last 12 weekly totals (and, to the end of week w, of the sums of w
consecutive weeks among the last 12).

Metrics, per method, over every (cut-off or user, step, category):

* MASE: per series (cut-off, category), the mean |actual - p50| over the steps divided by the
  series' scale, the mean |week-to-week change| of that category in the history before the
  cut-off; averaged over series with a scale > 0.
* WAPE: sum |actual - p50| / sum actual.
* pinball at 0.1 / 0.5 / 0.9 (currency units, mean) and the same scaled per series like MASE.
* coverage of the 80% interval [p10, p90] per category group (recurring bills, everyday,
  discretionary) and overall; per group also over the series MASE scores only (categories with
  spending in the history), which the acceptance check uses.
* total weekly spend: mean |error| of its p50, bias (sum p50 - sum actual) / sum actual, and
  the coverage of its interval; the same for the spending over the whole horizon (the last
  week's cumulative forecast) and the coverage of the cumulative intervals at every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import numpy as np

from fincoach.features.forecast_groups import GROUPS

PEERS: Final = ("last_week", "mean_4", "mean_52", "seasonal_naive", "empirical_12")
SEASON: Final = 52
LEVELS: Final = (0.1, 0.5, 0.9)


def history_scale(weekly: np.ndarray) -> np.ndarray:
    """(C,) mean absolute week-to-week change per category (0 with fewer than 2 weeks)."""
    if weekly.shape[0] < 2:
        return np.zeros(weekly.shape[1])
    return np.abs(np.diff(weekly, axis=0)).mean(axis=0)


class MethodForecast(NamedTuple):
    """One method's forecast at one cut-off, each (p10, p50, p90): ``categories`` (h, C, 3),
    ``total`` (h, 3) each week's spending, ``cumulative`` (h, 3) the spending from the cut-off
    to the end of each week."""

    categories: np.ndarray
    total: np.ndarray
    cumulative: np.ndarray

    @classmethod
    def of_points(cls, values: np.ndarray) -> MethodForecast:
        """A point forecast ``(h, C)``: every quantile the point, totals its sums."""
        total = values.sum(axis=1)
        return cls(
            np.repeat(values[..., None], 3, axis=2),
            np.repeat(total[:, None], 3, axis=1),
            np.repeat(total.cumsum()[:, None], 3, axis=1),
        )


def peer_forecasts(weekly: np.ndarray, horizon: int) -> dict[str, MethodForecast]:
    """Each peer's forecast of the ``horizon`` weeks after ``weekly``."""
    n, c = weekly.shape
    out: dict[str, MethodForecast] = {}

    def point(values: np.ndarray) -> MethodForecast:
        return MethodForecast.of_points(np.broadcast_to(values, (horizon, c)))

    zero = np.zeros(c)
    out["last_week"] = point(weekly[-1] if n else zero)
    out["mean_4"] = point(weekly[-4:].mean(axis=0) if n else zero)
    out["mean_52"] = point(weekly[-SEASON:].mean(axis=0) if n else zero)
    if n >= SEASON:
        out["seasonal_naive"] = point(weekly[n - SEASON : n - SEASON + horizon])
    else:
        out["seasonal_naive"] = out["last_week"]
    recent = weekly[-12:]
    if n:
        q = np.quantile(recent, LEVELS, axis=0)  # (3, C)
        weekly_totals = recent.sum(axis=1)
        totals = np.quantile(weekly_totals, LEVELS)
        running = np.empty((horizon, 3))
        for w in range(1, horizon + 1):
            if weekly_totals.size >= w:
                sums = np.convolve(weekly_totals, np.ones(w), mode="valid")
                running[w - 1] = np.quantile(sums, LEVELS)
            else:
                running[w - 1] = w * totals
        out["empirical_12"] = MethodForecast(
            np.repeat(q.T[None], horizon, axis=0), np.repeat(totals[None], horizon, axis=0), running
        )
    else:
        out["empirical_12"] = point(zero)
    return out


@dataclass
class ForecastScorer:
    """Collects (forecast, actual, scale) rows per method; ``report`` gives the metrics."""

    rows: dict[str, list[tuple[MethodForecast, np.ndarray, np.ndarray]]] = field(
        default_factory=dict
    )

    def add(
        self, method: str, forecast: MethodForecast, actual: np.ndarray, scale: np.ndarray
    ) -> None:
        """One cut-off: the method's forecast, ``actual`` (h, C) and ``scale`` (C,)."""
        self.rows.setdefault(method, []).append((forecast, actual, scale))

    def report(self) -> dict[str, dict[str, Any]]:
        return {method: _metrics(rows) for method, rows in self.rows.items()}


def _metrics(rows: list[tuple[MethodForecast, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    q = np.stack([r[0].categories for r in rows])  # (n, h, C, 3)
    total = np.stack([r[0].total for r in rows])  # (n, h, 3)
    cumulative = np.stack([r[0].cumulative for r in rows])  # (n, h, 3)
    actual = np.stack([r[1] for r in rows])  # (n, h, C)
    scale = np.stack([r[2] for r in rows])  # (n, C)
    p50 = q[..., 1]
    err = np.abs(actual - p50)
    ok = scale > 0
    safe = np.where(ok, scale, 1.0)
    out: dict[str, Any] = {
        "n_cutoffs": int(q.shape[0]),
        "mase": float((err.mean(axis=1) / safe)[ok].mean()) if ok.any() else float("nan"),
        "wape": float(err.sum() / max(float(actual.sum()), 1e-12)),
    }
    for k, tau in enumerate(LEVELS):
        diff = actual - q[..., k]
        loss = np.maximum(tau * diff, (tau - 1.0) * diff)
        name = f"pinball_{int(tau * 100)}"
        out[name] = float(loss.mean())
        out[f"scaled_{name}"] = float((loss.mean(axis=1) / safe)[ok].mean()) if ok.any() else 0.0
    inside = (actual >= q[..., 0]) & (actual <= q[..., 2])
    out["coverage_80"] = float(inside.mean())
    out["coverage_by_group"] = {g: float(inside[:, :, m].mean()) for g, m in GROUPS.items()}
    # The same over the series MASE scores (a category with spending in the history): a category
    # never used is forecast [0, 0] and "covered" every week, which says nothing of an interval.
    active = np.broadcast_to(ok[:, None, :], inside.shape)
    out["coverage_by_group_active"] = {
        g: float(inside[:, :, m][active[:, :, m]].mean()) if active[:, :, m].any() else 1.0
        for g, m in GROUPS.items()
    }
    out["mase_by_group"] = {}
    for g, members in GROUPS.items():
        sub = ok[:, members]
        ratio = err[:, :, members].mean(axis=1) / safe[:, members]
        out["mase_by_group"][g] = float(ratio[sub].mean()) if sub.any() else float("nan")
    spent = actual.sum(axis=2)
    out["total_mae"] = float(np.abs(total[..., 1] - spent).mean())
    out["total_wape"] = float(np.abs(total[..., 1] - spent).sum() / max(float(spent.sum()), 1e-12))
    out["total_bias"] = float((total[..., 1].sum() - spent.sum()) / max(float(spent.sum()), 1e-12))
    out["total_coverage_80"] = float(((spent >= total[..., 0]) & (spent <= total[..., 2])).mean())
    # For a median, half the weeks should fall at or below it: the sum-based bias above is
    # negative for any calibrated median when weekly totals are skewed to the right.
    out["total_share_at_or_below_p50"] = float((spent <= total[..., 1]).mean())
    spent_weeks = spent > 0
    out["total_median_relative_error"] = (
        float(np.median((total[..., 1][spent_weeks] - spent[spent_weeks]) / spent[spent_weeks]))
        if spent_weeks.any()
        else 0.0
    )
    # The whole horizon's spending: the last week's cumulative forecast against the sum spent.
    spent_to_date = spent.cumsum(axis=1)
    horizon_p50, horizon_spent = cumulative[:, -1, 1], spent_to_date[:, -1]
    out["horizon_total_bias"] = float(
        (horizon_p50.sum() - horizon_spent.sum()) / max(float(horizon_spent.sum()), 1e-12)
    )
    out["horizon_total_coverage_80"] = float(
        ((horizon_spent >= cumulative[:, -1, 0]) & (horizon_spent <= cumulative[:, -1, 2])).mean()
    )
    out["horizon_total_share_at_or_below_p50"] = float((horizon_spent <= horizon_p50).mean())
    out["cumulative_coverage_80"] = float(
        ((spent_to_date >= cumulative[..., 0]) & (spent_to_date <= cumulative[..., 2])).mean()
    )
    out["sum_of_medians_bias"] = float(
        (p50.sum(axis=2).sum() - spent.sum()) / max(float(spent.sum()), 1e-12)
    )
    return out


def best_peer(report: dict[str, dict[str, Any]], metric: str) -> str:
    """The peer with the lowest ``metric``."""
    return min((p for p in PEERS if p in report), key=lambda p: report[p][metric])


def forecast_targets(report: dict[str, dict[str, Any]], gain: float = 0.10) -> dict[str, Any]:
    """The acceptance checks of the forecast on one data set."""
    model = report["model"]
    out: dict[str, Any] = {}
    for metric in ("mase", "pinball_50"):
        peer = best_peer(report, metric)
        out[f"{metric}_best_peer"] = peer
        out[f"{metric}_gain_vs_best_peer"] = 1.0 - model[metric] / report[peer][metric]
        out[f"{metric}_10pct_better"] = bool(model[metric] <= (1.0 - gain) * report[peer][metric])
        out[f"{metric}_better"] = bool(model[metric] < report[peer][metric])
    out["coverage_by_group_in_0.75_0.85"] = {
        g: bool(0.75 <= v <= 0.85) for g, v in model["coverage_by_group_active"].items()
    }
    out["total_bias_within_10pct"] = bool(abs(model["total_bias"]) <= 0.10)
    out["horizon_total_bias_within_10pct"] = bool(abs(model["horizon_total_bias"]) <= 0.10)
    return out
