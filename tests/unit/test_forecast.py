"""Tests for the spending forecaster: features, the fit/predict contract, cold start, input
validation, persistence, the evaluation's metrics and one small hold-out quality check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from fincoach.features.forecast import (
    FEATURE_NAMES,
    N_CATEGORIES,
    N_FEATURES,
    forecast_features,
    shrunk_level,
)
from fincoach.training.forecast_eval import evaluate, peer_forecasts, point_metrics
from fincoach.training.simulator import SPEND_IDX, Population, SimConfig, simulate
from models.forecast import SpendingForecaster
from models.registry import ModelRegistry

FIRST_WEEK = 2  # ISO week of SimConfig's default start, 2025-01-06
N_SEG = 5


def tiny_forecaster(random_state: int = 0) -> SpendingForecaster:
    return SpendingForecaster(max_iter=8, origins_per_user=3, random_state=random_state)


@pytest.fixture(scope="module")
def population() -> Population:
    return simulate(SimConfig(n_users=60, n_weeks=20, seed=3, future_weeks=4))


@pytest.fixture(scope="module")
def histories(population: Population) -> np.ndarray:
    return population.weekly[:, :, SPEND_IDX]


@pytest.fixture(scope="module")
def fitted(population: Population, histories: np.ndarray) -> SpendingForecaster:
    return tiny_forecaster().fit(histories, population.latent, FIRST_WEEK)


# ---------------------------------------------------------------------------------------------
# Features


def test_features_names_match_columns_and_rows(histories: np.ndarray) -> None:
    prior = np.full((histories.shape[0], N_CATEGORIES), 50.0)
    feats = forecast_features(
        histories, week_of_year=10, segments=np.zeros(60, int), horizon=3, prior_level=prior
    )
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == N_FEATURES
    assert feats.X.shape == (60 * 3 * N_CATEGORIES, N_FEATURES)
    assert feats.level.shape == (60, N_CATEGORIES) and (feats.level > 0).all()


def test_features_are_scale_free(histories: np.ndarray) -> None:
    prior = np.full((histories.shape[0], N_CATEGORIES), 50.0)
    kwargs: dict[str, Any] = {"week_of_year": 30, "segments": np.arange(60) % N_SEG, "horizon": 4}
    a = forecast_features(histories, prior_level=prior, **kwargs)
    b = forecast_features(histories * 10, prior_level=prior * 10, **kwargs)
    absolute = [FEATURE_NAMES.index("log_level"), FEATURE_NAMES.index("log_total_level")]
    relative = np.setdiff1d(np.arange(N_FEATURES), absolute)
    np.testing.assert_allclose(a.X[:, relative], b.X[:, relative], rtol=1e-9)
    np.testing.assert_allclose(b.level, a.level * 10)


def test_features_without_history_fall_back_to_the_prior() -> None:
    prior = np.array([[10.0, 20, 30, 40, 50, 60, 70, 80, 90]])
    feats = forecast_features(
        np.zeros((1, 0, N_CATEGORIES)),
        week_of_year=1,
        segments=np.array([-1]),
        horizon=1,
        prior_level=prior,
    )
    np.testing.assert_allclose(feats.level, prior)
    assert np.isfinite(feats.X[:, FEATURE_NAMES.index("log_level")]).all()
    # A year of zeros still gives a positive level, so ratios stay finite.
    assert (shrunk_level(np.zeros((1, 52, N_CATEGORIES)), prior) >= 1.0).all()


# ---------------------------------------------------------------------------------------------
# Fit / predict contract


@pytest.mark.parametrize("horizon", [1, 2, 3, 4])
def test_forecaster_predict_is_ordered_nonnegative_and_finite(
    fitted: SpendingForecaster, histories: np.ndarray, horizon: int
) -> None:
    out = fitted.predict(histories[0], 1, horizon, 22)
    assert out.shape == (horizon, N_CATEGORIES, 3)
    assert np.isfinite(out).all() and (out >= 0).all()
    assert (out[..., 0] <= out[..., 1]).all() and (out[..., 1] <= out[..., 2]).all()


def test_forecaster_predict_many_matches_predict(
    fitted: SpendingForecaster, population: Population, histories: np.ndarray
) -> None:
    many = fitted.predict_many(histories[:5], population.latent[:5], 4, 22)
    assert many.shape == (5, 4, N_CATEGORIES, 3)
    for i in range(5):
        one = fitted.predict(histories[i], int(population.latent[i]), 4, 22)
        np.testing.assert_allclose(many[i], one)


def test_forecaster_same_seed_same_forecast(
    population: Population, histories: np.ndarray, fitted: SpendingForecaster
) -> None:
    again = tiny_forecaster().fit(histories, population.latent, FIRST_WEEK)
    np.testing.assert_array_equal(
        again.predict_many(histories, population.latent, 4, 22),
        fitted.predict_many(histories, population.latent, 4, 22),
    )


@pytest.mark.parametrize("weeks", [0, 1, 2])
@pytest.mark.parametrize("segment", [0, 3, 4, None])
def test_forecaster_cold_start_is_finite(
    fitted: SpendingForecaster, histories: np.ndarray, weeks: int, segment: int | None
) -> None:
    out = fitted.predict(histories[0, histories.shape[1] - weeks :], segment, 4, 22)
    assert out.shape == (4, N_CATEGORIES, 3)
    assert np.isfinite(out).all() and (out >= 0).all()
    assert (np.diff(out, axis=-1) >= 0).all()
    assert out[..., 2].sum() > 0


def test_forecaster_cold_start_borrows_from_segment_profile(fitted: SpendingForecaster) -> None:
    assert fitted.profile_.shape == (N_SEG + 1, N_CATEGORIES)
    empty = np.zeros((0, N_CATEGORIES))
    high, budget = (fitted.predict(empty, s, 1, 22)[..., 1].sum() for s in (4, 3))
    # High spenders spend several times what budget-conscious users do (simulator profiles).
    assert high > 2 * budget
    # Two weeks of a user spending 5x their segment's profile move the forecast up.
    profile = fitted.profile_[3]
    low_user = fitted.predict(np.tile(profile, (2, 1)), 3, 1, 22)[..., 1].sum()
    big_user = fitted.predict(np.tile(5 * profile, (2, 1)), 3, 1, 22)[..., 1].sum()
    assert big_user > 2 * low_user


# ---------------------------------------------------------------------------------------------
# Refusals


def test_forecaster_predict_before_fit_raises(histories: np.ndarray) -> None:
    with pytest.raises(NotFittedError):
        SpendingForecaster().predict(histories[0], 0, 1, 1)


@pytest.mark.parametrize(
    ("history", "match"),
    [
        (np.ones((5, N_CATEGORIES - 1)), "shape"),
        (np.ones(N_CATEGORIES), "shape"),
        (np.full((5, N_CATEGORIES), np.nan), "NaN or inf"),
        (np.full((5, N_CATEGORIES), np.inf), "NaN or inf"),
        (-np.ones((5, N_CATEGORIES)), "negative"),
    ],
)
def test_forecaster_refuses_malformed_history(
    fitted: SpendingForecaster, history: np.ndarray, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        fitted.predict(history, 0, 1, 1)


@pytest.mark.parametrize(
    ("segment", "horizon", "week", "match"),
    [
        (0, 0, 1, "horizon"),
        (0, 5, 1, "horizon"),
        (0, 2.0, 1, "horizon"),
        (0, True, 1, "horizon"),
        (0, 1, 0, "week_of_year"),
        (0, 1, 54, "week_of_year"),
        (5, 1, 1, "segment"),
        ("a", 1, 1, "segment"),
    ],
)
def test_forecaster_refuses_bad_arguments(
    fitted: SpendingForecaster, segment: object, horizon: object, week: object, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        fitted.predict(np.ones((5, N_CATEGORIES)), segment, horizon, week)  # type: ignore[arg-type]


def test_forecaster_fit_refuses_bad_training_data(histories: np.ndarray) -> None:
    with pytest.raises(ValueError, match="at least 5 weeks"):
        tiny_forecaster().fit(histories[:, :4], np.zeros(60, int), FIRST_WEEK)
    with pytest.raises(ValueError, match="segment ids"):
        tiny_forecaster().fit(histories, np.zeros(59, int), FIRST_WEEK)
    with pytest.raises(ValueError, match="negative"):
        tiny_forecaster().fit(-histories, np.zeros(60, int), FIRST_WEEK)
    with pytest.raises(ValueError, match="segment_dropout"):
        SpendingForecaster(segment_dropout=1.5).fit(histories, np.zeros(60, int), FIRST_WEEK)


# ---------------------------------------------------------------------------------------------
# Persistence


def test_forecaster_joblib_round_trip(
    fitted: SpendingForecaster, histories: np.ndarray, tmp_path: Path
) -> None:
    path = tmp_path / "forecaster.joblib"
    joblib.dump(fitted, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(
        loaded.predict_many(histories, None, 4, 22), fitted.predict_many(histories, None, 4, 22)
    )
    registry = ModelRegistry(tmp_path / "artifacts")
    registry.save("forecast", fitted, metrics={"mase": 0.8}, feature_names=list(FEATURE_NAMES))
    from_registry, manifest = registry.load("forecast")
    assert manifest.n_features == N_FEATURES
    np.testing.assert_array_equal(
        from_registry.predict(histories[0], 2, 3, 22), fitted.predict(histories[0], 2, 3, 22)
    )


# ---------------------------------------------------------------------------------------------
# Evaluation


def test_point_metrics_define_empty_weeks_and_skip_flat_series() -> None:
    actual = np.array([[[0.0, 10.0]]])  # one user, one step, two categories
    forecast = np.array([[[0.0, 5.0]]])
    scale = np.array([[0.0, 5.0]])  # the first series never changed: no MASE for it
    m = point_metrics(forecast, actual, scale)
    assert m["smape"] == pytest.approx((0.0 + 2 * 5 / 15) / 2)  # 0/0 counts as 0
    assert m["mase"] == pytest.approx(1.0) and m["n_series_zero_scale"] == 1
    assert m["wape"] == pytest.approx(0.5) and m["mape_total"] == pytest.approx(0.5)


def test_seasonal_naive_falls_back_and_says_so() -> None:
    history = np.arange(60 * N_CATEGORIES, dtype=float).reshape(1, 60, N_CATEGORIES)
    peers = peer_forecasts(history, 2)
    seasonal, note = peers["seasonal_naive"]
    np.testing.assert_array_equal(seasonal[0], history[0, 8:10])  # weeks 60, 61 minus 52
    short, short_note = peer_forecasts(history[:, :10], 2)["seasonal_naive"]
    assert "fell back to naive" in short_note and "52 weeks" in note
    np.testing.assert_array_equal(short, np.repeat(history[:, 9:10], 2, axis=1))


def test_forecaster_beats_the_best_peer_on_held_out_users() -> None:
    train = simulate(SimConfig(n_users=300, n_weeks=60, seed=1, future_weeks=4))
    test = simulate(SimConfig(n_users=200, n_weeks=60, seed=2, future_weeks=4))
    report = evaluate(train, test, horizon=4, quick=True)
    targets = report["targets"]
    assert targets["mase_gain_vs_best_peer"] >= 0.10, targets
    assert abs(report["model"]["coverage_80"] - 0.80) <= 0.05, targets
    assert report["cold_start"]["model"]["mase"] < min(
        report["cold_start"][p]["mase"] for p in ("naive", "moving_average_4")
    )
