"""Markdown tables of a real-history evaluation (``training.real_eval``)."""

from __future__ import annotations

from typing import Any

from fincoach.features.forecast_groups import GROUP_NAMES
from fincoach.training.forecast_metrics import PEERS
from fincoach.training.real_eval import RealEvaluation


def _f(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def _yes(flag: Any) -> str:
    return "yes" if flag else "**no**"


def forecast_table(report: dict[str, Any], title: str = "") -> list[str]:
    methods = ["model", *(p for p in PEERS if p in report)]
    lines = [
        f"| method{title} | MASE | WAPE | pinball 0.1 | pinball 0.5 | pinball 0.9 | "
        + " | ".join(f"cov80 {g.replace('_', ' ')}" for g in GROUP_NAMES)
        + " | weekly total p50 bias | weekly total cov80"
        + " | 4-week total p50 bias | 4-week total cov80 |",
        "| --- " * (10 + len(GROUP_NAMES)) + "|",
    ]
    for m in methods:
        r = report[m]
        lines.append(
            f"| {m} | {_f(r['mase'])} | {_f(r['wape'])} | {_f(r['pinball_10'], 2)} | "
            f"{_f(r['pinball_50'], 2)} | {_f(r['pinball_90'], 2)} | "
            + " | ".join(_f(r["coverage_by_group_active"][g]) for g in GROUP_NAMES)
            + f" | {_f(r['total_bias'])} | {_f(r['total_coverage_80'])}"
            f" | {_f(r['horizon_total_bias'])} | {_f(r['horizon_total_coverage_80'])} |"
        )
    return lines


def markdown(result: RealEvaluation) -> str:
    fc, goal, seg = result.forecast, result.goal, result.segments
    lines = [
        f"History `{result.history}`: {len(result.cutoffs)} cut-offs "
        f"{result.cutoffs[0]} .. {result.cutoffs[-1]}"
        + (
            f" (out of time: after {result.out_of_time_from}, the last outcome training used)"
            if result.out_of_time_from
            else ""
        )
        + f"; served versions {result.versions}.",
        "",
        "**Spending forecast** (4 weeks ahead, per category; pinball in currency units)",
        "",
        *forecast_table(fc),
        "",
        "Coverage columns: categories with spending in the history (as MASE); over every "
        "category the model's is "
        + " / ".join(_f(fc["model"]["coverage_by_group"][g]) for g in GROUP_NAMES)
        + ". "
        f"Model sum of category medians, bias {_f(fc['model']['sum_of_medians_bias'])} "
        f"(the total above comes from the joint paths; "
        f"{fc['model']['total_share_at_or_below_p50']:.0%} of weeks at or below its p50, median "
        f"relative error {_f(fc['model']['total_median_relative_error'])}; the 4-week total: "
        f"{fc['model']['horizon_total_share_at_or_below_p50']:.0%} at or below its p50, "
        f"cumulative intervals cover {_f(fc['model']['cumulative_coverage_80'])}). MASE by group: "
        + ", ".join(f"{g} {_f(v)}" for g, v in fc["model"]["mase_by_group"].items())
        + " (empirical_12: "
        + ", ".join(f"{g} {_f(v)}" for g, v in fc["empirical_12"]["mase_by_group"].items())
        + ").",
        "",
        f"Cold start (each cut-off seen with its last 2 weeks only): MASE model "
        f"{_f(fc['cold_start']['model']['mase'])}, mean of the user's own weeks "
        f"{_f(fc['cold_start']['mean_of_own_weeks']['mase'])}.",
        "",
        f"Scale: amounts x {result.scale['factors']} change the forecasts (divided back) by at "
        f"most {result.scale['max_relative_change']:.2e} of their size.",
        "",
    ]
    t = fc["targets"]
    cold_model = fc["cold_start"]["model"]["mase"]
    cold_own = fc["cold_start"]["mean_of_own_weeks"]["mase"]
    lines += [
        "| forecast check | value | met |",
        "| --- | --- | --- |",
        f"| MASE >= 10% better than best peer ({t['mase_best_peer']}) | "
        f"{_f(t['mase_gain_vs_best_peer'])} | {_yes(t['mase_10pct_better'])} |",
        f"| pinball-50 >= 10% better than best peer ({t['pinball_50_best_peer']}) | "
        f"{_f(t['pinball_50_gain_vs_best_peer'])} | {_yes(t['pinball_50_10pct_better'])} |",
        *(
            f"| 80% coverage {g} in 0.75-0.85 | {_f(fc['model']['coverage_by_group_active'][g])} | "
            f"{_yes(ok)} |"
            for g, ok in t["coverage_by_group_in_0.75_0.85"].items()
        ),
        f"| weekly total p50 bias within +-10% (sum of weekly medians vs spent) | "
        f"{_f(fc['model']['total_bias'])} | {_yes(t['total_bias_within_10pct'])} |",
        f"| 4-week total p50 bias within +-10% | {_f(fc['model']['horizon_total_bias'])} | "
        f"{_yes(t['horizon_total_bias_within_10pct'])} |",
        f"| cold start MASE <= mean of own weeks | {_f(cold_model)} vs {_f(cold_own)} | "
        f"{_yes(cold_model <= cold_own)} |",
        "",
    ]
    if "model" in goal:
        lines += [
            f"**Goal probability** ({goal['n_goals']} goals posed at the cut-offs, "
            f"{goal['reached_rate']:.0%} reached)",
            "",
            "| method | Brier | log loss | ECE | AUC |",
            "| --- | --- | --- | --- | --- |",
        ]
        for m in ("model", "base_rate", "logistic_coverage", "normal_approximation"):
            r = goal[m]
            lines.append(
                f"| {m} | {_f(r['brier'], 4)} | {_f(r['log_loss'], 4)} | "
                f"{_f(r.get('ece'), 4)} | {_f(r.get('auc'))} |"
            )
        lines += ["", "Reliability of the model (10 equal-width bins):", ""]
        lines += ["| bin | goals | mean predicted | observed |", "| --- | --- | --- | --- |"]
        for row in goal["model"]["reliability"]:
            lines.append(
                f"| {row['bin']} | {row['count']} | {_f(row['mean_predicted'])} | "
                f"{_f(row['observed_rate'])} |"
            )
        lines.append("")
    lines += [
        f"**Segments** over the {seg['cutoffs']} cut-offs: {seg['distinct']} distinct, "
        f"{seg['switches']} switches with hysteresis ({seg['distinct_without_hysteresis']} "
        f"distinct, {seg['switches_without_hysteresis']} switches without); mean confidence "
        f"{_f(seg['mean_confidence'])}; {seg['segments']}.",
    ]
    return "\n".join(lines)
