"""The metrics table: each model beside its peers, with its target and whether it was met."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    model: str
    metric: str
    ours: str
    peers: str
    target: str
    met: str


def _f(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def _met(flag: Any) -> str:
    if flag is None:
        return "-"
    return "yes" if flag else "**no**"


def segmentation_rows(ev: Mapping[str, Any]) -> list[Row]:
    seg, km = ev["segmenter"], ev["kmeans_raw"]
    return [
        Row(
            "segmentation",
            "ARI vs latent types",
            _f(seg["ari"]),
            f"k-means raw {_f(km['ari'])}",
            "> k-means",
            _met(seg["ari"] > km["ari"]),
        ),
        Row("segmentation", "name accuracy", _f(seg["name_accuracy"]), "-", "-", "-"),
        Row(
            "segmentation",
            "silhouette",
            _f(seg["silhouette"]),
            f"k-means raw {_f(km['silhouette'])}",
            "-",
            "-",
        ),
        Row(
            "segmentation",
            "bootstrap ARI (mean / min)",
            f"{_f(seg['bootstrap_ari_mean'])} / {_f(seg['bootstrap_ari_min'])}",
            "-",
            ">= 0.9",
            _met(seg["bootstrap_ari_mean"] >= 0.9),
        ),
    ]


def recommender_rows(ev: Mapping[str, Any]) -> list[Row]:
    if "skipped" in ev:
        return [
            Row("recommender", "return per user", "-", "-", "-", f"not scored: {ev['skipped']}")
        ]

    def r(name: str) -> str:
        return f"{ev[name]['mean']:.3f} ± {ev[name]['ci95']:.3f}"

    behavior = ev["behavior"]["mean"]
    peers = f"behavior {r('behavior')}; rule {r('rule_based')}; random {r('random')}"
    rows = []
    for state in ("enhanced", "legacy"):
        cql = ev[f"cql_{state}"]
        rows.append(
            Row(
                f"recommender ({state})",
                "return per user (8 weeks, held-out seeds)",
                r(f"cql_{state}"),
                f"{peers}; BC {r(f'bc_{state}')}; DQN α=0 {r(f'dqn_{state}')}",
                ">= 1.10 x behavior, > DQN",
                _met(cql["mean"] >= 1.1 * behavior and cql["mean"] > ev[f"dqn_{state}"]["mean"]),
            )
        )
        rows.append(
            Row(
                f"recommender ({state})",
                "FQE estimate (logged data only)",
                _f(cql.get("fqe_estimate")),
                "-",
                "-",
                "-",
            )
        )
    rows.append(
        Row(
            "recommender",
            "enhanced >= legacy",
            r("cql_enhanced"),
            r("cql_legacy"),
            "enhanced >= legacy",
            _met(ev["cql_enhanced"]["mean"] >= ev["cql_legacy"]["mean"]),
        )
    )
    return rows


def bandit_rows(ev: Mapping[str, Any]) -> list[Row]:
    ratio = ev["ratio_to_random"]
    regret = ev["final_regret"]
    return [
        Row(
            "bandit",
            f"cumulative regret ({name})",
            _f(regret[name], 1),
            f"random {_f(regret['random'], 1)}",
            "<= 25% of random",
            _met(ratio[name] <= 0.25) if name in ("ucb1", "thompson") else "-",
        )
        for name in ("thompson", "ucb1", "epsilon_greedy")
    ]


def forecast_rows(ev: Mapping[str, Any]) -> list[Row]:
    """Rows of a forecast evaluation (``forecast_eval.evaluate`` or the real-data one)."""
    from fincoach.training.forecast_metrics import PEERS

    model = ev["model"]
    peers = {k: ev[k] for k in PEERS if k in ev}
    rows = []
    for metric, label in (("mase", "MASE"), ("pinball_50", "pinball 0.5"), ("wape", "WAPE")):
        best = min(v[metric] for v in peers.values())
        rows.append(
            Row(
                "forecast",
                label,
                _f(model[metric]),
                "; ".join(f"{k} {_f(v[metric])}" for k, v in peers.items()),
                "<= 0.9 x best peer" if metric != "wape" else "-",
                _met(model[metric] <= 0.9 * best) if metric != "wape" else "-",
            )
        )
    for tau in (10, 90):
        rows.append(
            Row(
                "forecast",
                f"pinball 0.{tau // 10}",
                _f(model[f"pinball_{tau}"]),
                f"empirical_12 {_f(ev.get('empirical_12', {}).get(f'pinball_{tau}'))}",
                "-",
                "-",
            )
        )
    peer_cover = ev.get("empirical_12", {}).get("coverage_by_group_active", {})
    for group, value in model["coverage_by_group_active"].items():
        rows.append(
            Row(
                "forecast",
                f"80% coverage, {group.replace('_', ' ')} (categories with spending)",
                _f(value),
                f"empirical_12 {_f(peer_cover.get(group))}; model over every category "
                f"{_f(model['coverage_by_group'][group])}",
                "0.75-0.85",
                _met(0.75 <= value <= 0.85),
            )
        )
    rows.append(
        Row(
            "forecast",
            "weekly total p50 bias (sum p50 / sum actual - 1)",
            _f(model["total_bias"]),
            f"sum of medians {_f(model['sum_of_medians_bias'])}; "
            + "; ".join(f"{k} {_f(v['total_bias'])}" for k, v in peers.items()),
            "within ±0.10",
            _met(abs(model["total_bias"]) <= 0.10),
        )
    )
    rows.append(
        Row(
            "forecast",
            "4-week total p50 bias (spending to the end of week 4)",
            _f(model["horizon_total_bias"]),
            "; ".join(f"{k} {_f(v['horizon_total_bias'])}" for k, v in peers.items()),
            "within ±0.10",
            _met(abs(model["horizon_total_bias"]) <= 0.10),
        )
    )
    cold = ev.get("cold_start")
    if cold:
        own = cold["mean_of_own_weeks"]["mase"]
        rows.append(
            Row(
                "forecast",
                f"MASE, cold start ({cold['history_weeks']} weeks of history)",
                _f(cold["model"]["mase"]),
                f"mean of own weeks {_f(own)}; "
                + "; ".join(f"{k} {_f(cold[k]['mase'])}" for k in peers if k in cold),
                "<= mean of own weeks",
                _met(cold["model"]["mase"] <= own),
            )
        )
    return rows


def goal_rows(ev: Mapping[str, Any]) -> list[Row]:
    model, peer = ev["model"], ev["logistic"]
    return [
        Row(
            "goal probability",
            "accuracy",
            _f(model["accuracy"]),
            f"logistic {_f(peer['accuracy'])}; base rate {_f(model['base_rate'])}",
            ">= 0.75",
            _met(model["accuracy"] >= 0.75),
        ),
        Row("goal probability", "AUC", _f(model["auc"]), f"logistic {_f(peer['auc'])}", "-", "-"),
        Row(
            "goal probability",
            "Brier",
            _f(model["brier"], 4),
            f"logistic {_f(peer['brier'], 4)}",
            "< logistic",
            _met(model["brier"] < peer["brier"]),
        ),
        Row(
            "goal probability",
            "ECE (10 bins)",
            _f(model["ece"], 4),
            f"logistic {_f(peer['ece'], 4)}",
            "<= 0.05",
            _met(model["ece"] <= 0.05),
        ),
    ]


RENDERERS = {
    "segmentation": segmentation_rows,
    "forecast": forecast_rows,
    "goal_probability": goal_rows,
    "recommender": recommender_rows,
    "bandit": bandit_rows,
}


def rows_for(step: str, evaluation: Mapping[str, Any]) -> list[Row]:
    return RENDERERS[step](evaluation)


def markdown(rows: list[Row]) -> str:
    lines = [
        "| model | metric | ours | peers (same data, same run) | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r.model} | {r.metric} | {r.ours} | {r.peers} | {r.target} | {r.met} |" for r in rows
    ]
    return "\n".join(lines)
