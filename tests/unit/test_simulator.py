"""The simulator: deterministic, realistic in the ways the models rely on."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from fincoach.features.vocab import CATEGORIES, LATENT_TYPES, SPENDING_CATEGORIES
from fincoach.training.simulator import INCOME_IDX, SPEND_IDX, SimConfig, simulate

CFG = SimConfig(n_users=150, n_weeks=40, seed=3, start=date(2025, 1, 6), future_weeks=12)


@pytest.fixture(scope="module")
def population():
    return simulate(CFG)


def test_same_seed_same_data(population) -> None:
    again = simulate(CFG)
    assert np.array_equal(again.weekly, population.weekly)
    assert np.array_equal(again.transactions.amount, population.transactions.amount)
    assert np.array_equal(again.transactions.occurred_at, population.transactions.occurred_at)
    assert again.goals == population.goals
    other = simulate(SimConfig(n_users=150, n_weeks=40, seed=4, start=date(2025, 1, 6)))
    assert not np.array_equal(other.weekly[:, :40], population.weekly)


def test_shapes_and_types(population) -> None:
    assert population.weekly.shape == (150, 40, len(CATEGORIES))
    assert population.future.shape == (150, 12, len(CATEGORIES))
    assert set(np.unique(population.latent)) == set(range(len(LATENT_TYPES)))
    assert len(SPENDING_CATEGORIES) >= 8


def test_transactions_sum_to_the_weekly_amounts(population) -> None:
    txs = population.transactions
    week = (txs.occurred_at - np.datetime64("2025-01-06")).astype("timedelta64[D]").astype(int) // 7
    rebuilt = np.zeros_like(population.weekly)
    np.add.at(rebuilt, (txs.user, week, txs.category), txs.amount)
    assert np.allclose(rebuilt, population.weekly, atol=0.011)
    assert (txs.amount > 0).all() and np.isfinite(txs.amount).all()
    assert set(txs.kind) == {"expense", "income", "transfer"}


def test_spending_is_intermittent_and_seasonal(population) -> None:
    spend = population.weekly[:, :, SPEND_IDX]
    zero_share = (spend == 0).mean(axis=(0, 1))
    assert zero_share.max() > 0.3  # some categories skip many weeks
    assert zero_share[SPENDING_CATEGORIES.index("bills")] == 0
    assert (population.weekly[:, :, INCOME_IDX] > 0).all()


def test_types_differ_in_the_way_they_are_named(population) -> None:
    spend = population.weekly[:, :, SPEND_IDX].sum(axis=2)
    income = population.weekly[:, :, INCOME_IDX]
    ratio = {
        LATENT_TYPES[t]: float(
            spend[population.latent == t].sum() / income[population.latent == t].sum()
        )
        for t in range(len(LATENT_TYPES))
    }
    assert ratio["conservative_saver"] < ratio["impulse_buyer"]
    assert ratio["budget_conscious"] < ratio["high_spender"]
    volatility = {
        t: float(
            np.std(spend[population.latent == t], axis=1).mean()
            / spend[population.latent == t].mean()
        )
        for t in range(len(LATENT_TYPES))
    }
    assert volatility[1] > volatility[0]  # impulse buyers are the noisy ones


def test_goals_have_outcomes_on_both_sides(population) -> None:
    reached = np.mean([g.reached for g in population.goals])
    assert 0.2 < reached < 0.8
    for g in population.goals:
        assert g.target_amount > 0 and 0 <= g.current_amount <= g.target_amount
        assert g.status in ("active", "achieved", "abandoned")


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="Monday"):
        SimConfig(start=date(2025, 1, 7))
    with pytest.raises(ValueError):
        SimConfig(n_users=0)
