"""How much better than its 12-week median can a real history's weekly spending be forecast?

The forecast's MASE target on a real account asks for 10% better than the best peer (the
empirical quantiles of the last 12 weeks). This measures the room there is, on the history's
own weeks, through the snapshot the API builds at each cut-off (``real_eval.api_snapshots``):

1. point rules: medians of the last k weeks, recency-weighted quantiles (half-lives 4..52 weeks,
   levels 0.4..0.5), and the median of the past weeks in the same position in the month (a
   week with a month's first day or not, for a payday effect), each scored by MASE against the
   12-week median, per category and overall;
2. whether week-to-week deviations from the 12-week median repeat: their autocorrelation at lags
   1-4 per category, and the mean weekly spend by the week of the month.

Usage: .venv/bin/python bench/forecast_headroom.py --real PATH [--from 2019-01-28] [--step 2]
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta

import numpy as np

from fincoach.features.vocab import SPENDING_CATEGORIES
from fincoach.training.forecast_data import mondays, spent_after
from fincoach.training.forecast_metrics import history_scale
from fincoach.training.real_data import load_history
from fincoach.training.real_eval import HORIZON, api_snapshots
from models.forecast_paths import weighted_quantile


def has_first_of_month(monday: date) -> bool:
    return any((monday + timedelta(days=d)).day == 1 for d in range(7))


def point_rules(weekly: np.ndarray, cutoff: date) -> dict[str, np.ndarray]:
    """Each rule's (HORIZON, C) forecast from the weeks before ``cutoff``."""
    n = weekly.shape[0]
    rules: dict[str, np.ndarray] = {}
    for k in (6, 8, 12, 16, 26, 52):
        rules[f"median of last {k}"] = np.broadcast_to(
            np.median(weekly[-k:], axis=0), (HORIZON, weekly.shape[1])
        )
    age = np.arange(n - 1, -1, -1, dtype=float)
    for half_life in (4, 8, 13, 26, 52):
        w = 0.5 ** (age / half_life)
        for level in (0.4, 0.45, 0.5):
            rules[f"weighted q{level:g}, half-life {half_life}"] = np.broadcast_to(
                weighted_quantile(weekly, w, level), (HORIZON, weekly.shape[1])
            )
    starts = [cutoff - timedelta(weeks=n - i) for i in range(n)]
    turn = np.array([has_first_of_month(s) for s in starts])
    for window in (26, 52):
        steps = []
        for s in range(HORIZON):
            same = turn == has_first_of_month(cutoff + timedelta(weeks=s))
            same[: max(0, n - window)] = False
            steps.append(
                np.median(weekly[same], axis=0)
                if same.sum() >= 3
                else np.median(weekly[-12:], axis=0)
            )
        rules[f"median of the same month position, last {window}"] = np.array(steps)
    return rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--real", required=True, help="a real history (CSV) as `fincoach evaluate --real` reads"
    )
    parser.add_argument(
        "--from",
        dest="first",
        type=date.fromisoformat,
        default=None,
        help="first cut-off (default: 52 weeks into the history)",
    )
    parser.add_argument("--step", type=int, default=2, help="weeks between cut-offs")
    args = parser.parse_args()
    history = load_history(args.real)
    first = args.first or history.first_day + timedelta(weeks=52)
    cutoffs = mondays(first, history.last_day - timedelta(weeks=HORIZON), args.step)
    snapshots = api_snapshots(history, cutoffs)
    from fincoach.features.spending import SpendingHistory

    ratios: dict[str, list[np.ndarray]] = {}
    for c in cutoffs:
        weekly = SpendingHistory.from_snapshot(snapshots[c]).weekly()
        if weekly.shape[0] < 12:
            continue
        actual, scale = spent_after(history, c, HORIZON), history_scale(weekly)
        ok = scale > 0
        for name, forecast in point_rules(weekly, c).items():
            err = np.abs(actual - forecast).mean(axis=0)
            ratios.setdefault(name, []).append(np.where(ok, err / np.where(ok, scale, 1.0), np.nan))
    base = np.nanmean(np.array(ratios["median of last 12"]))
    print(
        f"{len(cutoffs)} cut-offs {cutoffs[0]} .. {cutoffs[-1]}; "
        "MASE per rule (/ 12-week median):\n"
    )
    print("| rule | MASE | vs 12-week median |\n| --- | --- | --- |")
    for name, rows in sorted(ratios.items(), key=lambda kv: np.nanmean(np.array(kv[1]))):
        value = float(np.nanmean(np.array(rows)))
        print(f"| {name} | {value:.4f} | {value / base:.3f} |")
    # Week-to-week structure over every week of the history.
    mondays_all = mondays(history.first_day, history.last_day - timedelta(weeks=1), 1)
    weeks = np.array([spent_after(history, m, 1)[0] for m in mondays_all])
    position = np.array([(m.day - 1) // 7 for m in mondays_all])
    print(
        "\n| category | weeks with none | autocorrelation of deviations, lags 1-4 | "
        "mean by week of the month (1st..5th Monday) |\n| --- | --- | --- | --- |"
    )
    for j, category in enumerate(SPENDING_CATEGORIES):
        x = weeks[:, j]
        if len(x) < 20:
            continue
        dev = np.array([x[t] - np.median(x[t - 12 : t]) for t in range(12, len(x))])
        if np.std(dev) == 0:
            continue
        ac = [float(np.corrcoef(dev[:-k], dev[k:])[0, 1]) for k in (1, 2, 3, 4)]
        by_position = [float(x[12:][position[12:] == k].mean()) for k in range(5)]
        print(
            f"| {category} | {np.mean(x == 0):.2f} | {', '.join(f'{a:+.2f}' for a in ac)} | "
            f"{', '.join(f'{v:.1f}' for v in by_position)} |"
        )


if __name__ == "__main__":
    main()
