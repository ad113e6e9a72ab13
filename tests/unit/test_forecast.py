"""The spending forecaster: its input, recurring payments, the fit/predict contract, scale
equivariance, the total from the joint paths, the peers and metrics, and a hold-out check on
simulated users (better than every peer) and on the cold start."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import joblib
import numpy as np
import pytest

from fincoach.features.frames import TransactionFrame
from fincoach.features.recurring import find_recurring
from fincoach.features.spending import N_SPENDING, SpendingHistory, payee_key
from fincoach.features.state import weekly_matrix
from fincoach.features.vocab import CATEGORIES, SPENDING_CATEGORIES
from fincoach.training.forecast_data import simulator_cutoffs
from fincoach.training.forecast_eval import evaluate
from fincoach.training.forecast_metrics import ForecastScorer, history_scale, peer_forecasts
from fincoach.training.simulator import Population, SimConfig, simulate
from models.errors import NotFittedError
from models.forecast import SpendingForecaster, _residual
from models.forecast_paths import interval, sorted_quantile

BILLS = SPENDING_CATEGORIES.index("bills")
GROCERIES = SPENDING_CATEGORIES.index("groceries")
END = np.datetime64("2024-06-10T00:00:00")  # a Monday


def _frame(rows: list[tuple[str, float, str, str | None]]) -> TransactionFrame:
    """(ISO time, amount, category, merchant) rows."""
    return TransactionFrame.from_rows(
        (np.datetime64(t, "s").astype(object), a, c, m) for t, a, c, m in rows
    )


def household(weeks: int = 40, rent: float = 900.0) -> TransactionFrame:
    """Rent on the 1st of each month, groceries every Saturday, a streaming subscription on the
    15th; ``weeks`` weeks before END."""
    rows: list[tuple[str, float, str, str | None]] = []
    start = (END - np.timedelta64(weeks * 7, "D")).astype("datetime64[D]")
    rng = np.random.default_rng(0)
    for d in range(weeks * 7):
        day = start + np.timedelta64(d, "D")
        dom = int((day - day.astype("datetime64[M]")).astype(int)) + 1
        if dom == 1:
            rows.append((f"{day}T09:00:00", rent, "bills", "Landlord Ltd"))
        if dom == 15:
            rows.append((f"{day}T09:00:00", 9.99, "entertainment", "StreamFlix 0042"))
        if (day.astype(int) - 2) % 7 == 0:  # Saturdays
            rows.append((f"{day}T11:00:00", float(rng.uniform(20, 100)), "groceries", "FreshMart"))
    return _frame(rows)


@pytest.fixture(scope="module")
def population() -> Population:
    return simulate(SimConfig(n_users=120, n_weeks=40, seed=3, future_weeks=4))


@pytest.fixture(scope="module")
def model(population: Population) -> SpendingForecaster:
    histories, futures = simulator_cutoffs(population, origins_per_user=2, horizon=4, seed=0)
    return SpendingForecaster(
        n_paths=400, half_lives=(13.0, 26.0), prior_weights=(1.0, 3.0), search_paths=100
    ).fit(histories, futures)


# --- input ------------------------------------------------------------------------------------


def test_spending_history_weeks_match_the_snapshot_weekly_matrix() -> None:
    frame = household(10)
    history = SpendingHistory.from_frame(frame, END)
    from fincoach.features.frames import UserSnapshot

    expected = weekly_matrix(UserSnapshot(as_of=END, transactions=frame), history.n_weeks)
    spend = [CATEGORIES.index(c) for c in SPENDING_CATEGORIES]
    np.testing.assert_allclose(history.weekly(), expected[:, spend])
    assert history.n_weeks == 10


def test_spending_history_keeps_only_the_last_weeks_and_spending() -> None:
    frame = household(60)
    history = SpendingHistory.from_frame(frame, END, max_weeks=52)
    assert history.n_weeks == 52
    assert (history.at < END).all() and (history.at > END - np.timedelta64(364, "D")).all()
    empty = SpendingHistory.from_frame(frame, END - np.timedelta64(61 * 7, "D"))
    assert empty.n_weeks == 0 and len(empty) == 0


def test_payee_key_drops_card_numbers_and_references() -> None:
    assert payee_key("UBER   *TRIP 1234") == payee_key("UBER *TRIP") == "UBER TRIP"
    assert payee_key(None) == ""


# --- recurring payments -----------------------------------------------------------------------


def test_recurring_payments_are_found_with_amount_and_day_of_month() -> None:
    found = {r.payee: r for r in find_recurring(SpendingHistory.from_frame(household(), END))}
    rent = found["LANDLORD LTD"]
    assert rent.period == "monthly" and rent.day_of_month == 1 and rent.amount == 900.0
    assert found["STREAMFLIX"].day_of_month == 15
    # Groceries vary in amount: a habit, not a fixed payment.
    assert "FRESHMART" not in found
    due = rent.due_dates(np.datetime64("2024-06-10"), np.datetime64("2024-07-15"))
    assert due.tolist() == [date(2024, 7, 1)]


def test_a_payment_that_stopped_is_not_recurring() -> None:
    frame = household(40)
    keep = ~((frame.merchant == "Landlord Ltd") & (frame.occurred_at > END - 70 * 86400))
    stopped = TransactionFrame(
        frame.occurred_at[keep], frame.amount[keep], frame.category[keep], frame.merchant[keep]
    )
    payees = {r.payee for r in find_recurring(SpendingHistory.from_frame(stopped, END))}
    assert "LANDLORD LTD" not in payees and "STREAMFLIX" in payees


def test_rent_is_forecast_as_a_lump_in_the_week_it_falls_in(model: SpendingForecaster) -> None:
    out = model.forecast(SpendingHistory.from_frame(household(), END), 4)
    bills = out.categories[:, BILLS, 1]
    # END is Monday 10 June: 1 July falls in the 4th week (1 - 8 July), the others have none.
    assert bills[3] == pytest.approx(900.0, rel=0.05)
    assert bills[:3].max() < 90.0
    # The total's median is in the rent week well above the sum-of-medians of the others.
    assert out.total[3, 1] > 900.0 and out.total[0, 1] < 200.0


# --- contract ---------------------------------------------------------------------------------


def test_unfitted_model_refuses_to_predict() -> None:
    with pytest.raises(NotFittedError):
        SpendingForecaster().forecast(SpendingHistory.empty(END), 1)


def test_forecast_shapes_order_and_fallback_for_an_empty_history(
    model: SpendingForecaster,
) -> None:
    out = model.forecast(SpendingHistory.from_frame(household(), END), 4)
    assert out.categories.shape == (4, N_SPENDING, 3) and out.total.shape == (4, 3)
    assert (np.diff(out.categories, axis=2) >= 0).all() and (np.diff(out.total, axis=1) >= 0).all()
    empty = model.forecast(SpendingHistory.empty(END), 2)
    assert np.isfinite(empty.categories).all() and empty.total[0, 1] > 0
    weekly = model.predict(np.ones((3, N_SPENDING)), None, 2)
    assert weekly.shape == (2, N_SPENDING, 3)
    with pytest.raises(ValueError, match="horizon"):
        model.forecast(SpendingHistory.empty(END), 5)


def test_forecast_is_deterministic_and_survives_joblib(
    model: SpendingForecaster, tmp_path: Path
) -> None:
    history = SpendingHistory.from_frame(household(), END)
    first = model.forecast(history, 3)
    joblib.dump(model, tmp_path / "m.joblib")
    again = joblib.load(tmp_path / "m.joblib").forecast(history, 3)
    np.testing.assert_array_equal(first.categories, again.categories)
    np.testing.assert_array_equal(first.total, again.total)


@pytest.mark.parametrize("factor", [1 / 90, 90.0])
def test_forecasts_are_scale_equivariant(model: SpendingForecaster, factor: float) -> None:
    for history in (
        SpendingHistory.from_frame(household(), END),
        SpendingHistory.from_frame(household(2), END),  # cold start
    ):
        base = model.forecast(history, 4)
        scaled = model.forecast(history.scaled(factor), 4)
        np.testing.assert_allclose(scaled.categories, base.categories * factor, rtol=1e-9)
        np.testing.assert_allclose(scaled.total, base.total * factor, rtol=1e-9)
        np.testing.assert_allclose(scaled.cumulative, base.cumulative * factor, rtol=1e-9)


def test_the_total_comes_from_the_paths_not_the_sum_of_medians(
    model: SpendingForecaster, population: Population
) -> None:
    """Lumpy spending: the sum of category medians runs under the median total."""
    history = SpendingHistory.from_frame(household(), END)
    out = model.forecast(history, 4)
    assert out.total[3, 1] >= out.categories[3, :, 1].sum() - 1e-9
    assert not np.allclose(out.total[:, 1], out.categories[:, :, 1].sum(axis=1))


def test_cumulative_spending_is_the_median_of_the_paths_running_sums(
    model: SpendingForecaster,
) -> None:
    """Spending to the end of each week: the median of the paths' running sums, which with a
    lump in the last week is not the sum of the weekly medians."""
    history = SpendingHistory.from_frame(household(), END)
    out = model.forecast(history, 4)
    paths = model._paths(_residual(history), history, 4, model.n_paths)
    running = paths.sum(axis=2).cumsum(axis=1)
    np.testing.assert_allclose(out.cumulative[:, 1], np.median(running, axis=0))
    assert out.cumulative[0, 1] == pytest.approx(out.total[0, 1])
    assert (np.diff(out.cumulative[:, 1]) >= 0).all() and (
        np.diff(out.cumulative, axis=1) >= 0
    ).all()
    assert not np.allclose(out.cumulative[:, 1], out.total[:, 1].cumsum())


# --- metrics, peers and quality ---------------------------------------------------------------


def test_peers_and_metrics_on_hand_made_numbers() -> None:
    weekly = np.zeros((60, N_SPENDING))
    weekly[:, GROCERIES] = np.arange(60)
    peers = peer_forecasts(weekly, 2)
    assert peers["last_week"][0][0, GROCERIES, 1] == 59
    assert peers["mean_4"][0][0, GROCERIES, 1] == pytest.approx(57.5)
    assert peers["seasonal_naive"][0][1, GROCERIES, 1] == 9  # 52 weeks before the 2nd step
    assert peers["empirical_12"][0][0, GROCERIES].tolist() == pytest.approx(
        np.quantile(np.arange(48, 60), [0.1, 0.5, 0.9]).tolist()
    )
    scorer = ForecastScorer()
    actual = np.zeros((2, N_SPENDING))
    actual[:, GROCERIES] = [60, 62]
    scale = history_scale(weekly)
    assert scale[GROCERIES] == 1.0
    # the empirical peer's spending over 2 weeks: quantiles of the 2-week sums among its 12 weeks
    assert peers["empirical_12"].cumulative[1].tolist() == pytest.approx(
        np.quantile(np.arange(48, 59) * 2 + 1, [0.1, 0.5, 0.9]).tolist()
    )
    scorer.add("last_week", peers["last_week"], actual, scale)
    report = scorer.report()["last_week"]
    assert report["mase"] == pytest.approx((1 + 3) / 2)
    assert report["pinball_50"] == pytest.approx(0.5 * 4 / (2 * N_SPENDING))
    assert report["total_bias"] == pytest.approx((118 - 122) / 122)
    assert report["horizon_total_bias"] == pytest.approx((118 - 122) / 122)
    assert report["horizon_total_share_at_or_below_p50"] == 0.0  # 122 spent, above 118
    assert report["cumulative_coverage_80"] == 0.0  # a point misses unless it is exact
    # groceries missed; the other everyday categories, never used, are "covered" by [0, 0]: they
    # count in the coverage over every category, not in the one over categories with spending
    assert report["coverage_by_group"]["everyday"] == pytest.approx(0.8)
    assert report["coverage_by_group_active"]["everyday"] == 0.0


@pytest.mark.slow
def test_model_beats_every_peer_on_held_out_simulated_users(
    model: SpendingForecaster,
) -> None:
    test = simulate(SimConfig(n_users=150, n_weeks=40, seed=4, future_weeks=4))
    report = evaluate(test, model)
    best = min(report[p]["mase"] for p in ("last_week", "mean_4", "mean_52", "empirical_12"))
    assert report["model"]["mase"] < best
    assert report["model"]["pinball_50"] < min(
        report[p]["pinball_50"] for p in ("last_week", "mean_4", "mean_52", "empirical_12")
    )
    # Cold start (2 weeks): no worse than the mean of the user's own weeks.
    cold = report["cold_start"]
    assert cold["model"]["mase"] <= cold["mean_of_own_weeks"]["mase"]
    assert 0.65 <= report["model"]["coverage_80"] <= 0.95


def test_simulator_cutoffs_pair_histories_with_what_followed(population: Population) -> None:
    histories, futures = simulator_cutoffs(population, origins_per_user=1, horizon=4, seed=1)
    assert len(histories) == futures.shape[0] and futures.shape[1:] == (4, N_SPENDING)
    short = [h for h in histories if h.n_weeks <= 3]
    assert 0 < len(short) < len(histories)
    assert date(2025, 1, 6) + timedelta(weeks=1) <= histories[0].end.astype(object).date()


def test_interval_of_an_often_zero_category_covers_as_much_as_a_steady_one() -> None:
    """Half the paths at zero: the lower end is 0 whatever the tail, so a central [q10, q90]
    would cover 90%; the interval's upper end moves down to q80 and it covers 80%, as the
    interval of a category that is never zero does."""
    rng = np.random.default_rng(0)
    n = 20_000
    steady = rng.gamma(4.0, 10.0, size=n)
    often_zero = np.where(rng.random(n) < 0.5, 0.0, rng.gamma(4.0, 10.0, size=n))
    ordered = np.sort(np.stack([steady, often_zero], axis=1), axis=0)  # (n, 2)
    lo, hi = interval(ordered, np.array(0.1))
    np.testing.assert_allclose(
        [lo[0], hi[0]], np.quantile(steady, [0.1, 0.9]), rtol=1e-12
    )  # a steady column: the central interval
    assert lo[1] == 0.0 and hi[1] == pytest.approx(np.quantile(often_zero, 0.8))
    fresh = np.stack(
        [
            rng.gamma(4.0, 10.0, size=n),
            np.where(rng.random(n) < 0.5, 0.0, rng.gamma(4.0, 10.0, size=n)),
        ],
        axis=1,
    )
    covered = ((fresh >= lo) & (fresh <= hi)).mean(axis=0)
    np.testing.assert_allclose(covered, [0.8, 0.8], atol=0.01)
    # exactly the tail's share at zero: the lower end is 0, not between 0 and the next amount
    boundary = np.sort(np.concatenate([np.zeros(200), np.arange(1.0, 1801.0)]))[:, None]
    lo_b, hi_b = interval(boundary, np.array(0.1))
    assert lo_b[0] == 0.0 and hi_b[0] == pytest.approx(np.quantile(boundary, 0.8))
    # tails per column and a stack of tails, as fitting asks for them
    lo_t, hi_t = interval(ordered, np.array([0.05, 0.1, 0.2])[:, None])
    assert lo_t.shape == hi_t.shape == (3, 2) and (np.diff(hi_t, axis=0) <= 0).all()
    assert sorted_quantile(ordered, np.array(0.5)).tolist() == pytest.approx(
        np.quantile(ordered, 0.5, axis=0).tolist()
    )
