"""The real-data evaluation end to end: quick models trained with a real history, then scored
on it through the serving path (scratch database, load_snapshot, the model services)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from fincoach.training.pipeline import TrainConfig, run
from fincoach.training.real_eval import MIN_CUTOFFS, evaluate_real
from fincoach.training.real_report import markdown
from models.registry import ModelRegistry

pytestmark = pytest.mark.slow


def household_csv(path: Path, years: int = 3) -> Path:
    """A household ledger: pay and rent monthly, a subscription, groceries and outings."""
    rng = np.random.default_rng(5)
    start = date(2020, 1, 6)
    lines = ["date,amount,category,description"]
    for d in range(years * 364):
        day = start + timedelta(days=d)
        if day.day == 25:
            lines.append(f"{day},{2400 + rng.normal(0, 20):.2f},Salary,Employer")
        if day.day == 1:
            lines.append(f"{day},-950.00,Rent,Landlord")
        if day.day == 12:
            lines.append(f"{day},-11.99,Subscriptions,StreamFlix")
        if day.weekday() == 5:
            lines.append(f"{day},-{rng.uniform(30, 120):.2f},Groceries,Market")
        if rng.random() < 0.15:
            lines.append(f"{day},-{rng.lognormal(3, 0.6):.2f},Restaurants,Cafe")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_real_history_is_scored_out_of_time_through_the_serving_path(tmp_path: Path) -> None:
    csv = household_csv(tmp_path / "household.csv")
    registry = ModelRegistry(tmp_path / "models")
    config = TrainConfig(users=120, weeks=30, quick=True, real_data=(str(csv),))
    run(config, registry, only=["segmentation", "forecast", "goal_probability"])
    manifest = registry.manifest("forecast", None)
    source = manifest.extra["trained_on"]["real"][0]
    assert source["history"] == "household" and source["cutoffs"] > 0

    result = evaluate_real(csv, registry, step_weeks=2)
    # Only cut-offs after the outcomes training used are scored.
    assert result.out_of_time_from == source["outcomes_until"]
    assert min(result.cutoffs) > source["outcomes_until"]
    assert len(result.cutoffs) >= MIN_CUTOFFS
    fc = result.forecast
    assert {"model", "last_week", "mean_4", "mean_52", "seasonal_naive", "empirical_12"} <= set(fc)
    # Rent is a lump the model places in its week; the peers cannot.
    assert fc["model"]["mase_by_group"]["recurring_bills"] < 0.5 * min(
        fc[p]["mase_by_group"]["recurring_bills"] for p in ("mean_4", "empirical_12")
    )
    assert result.scale["max_relative_change"] < 1e-9
    assert result.goal["n_goals"] > 0 and "model" in result.goal
    assert result.segments["cutoffs"] == len(result.cutoffs)
    text = markdown(result)
    assert "| model |" in text and "Goal probability" in text
