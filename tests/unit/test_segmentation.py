"""Segmentation: stable names, calibrated confidence, agreement with the latent types,
hysteresis, and segments that depend on money only (not the currency unit, not clicks)."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from fincoach.features.vocab import SEGMENT_NAMES
from fincoach.training.datasets import behavior_matrix
from fincoach.training.simulator import SimConfig, simulate
from models.segmentation import Segmenter, keep_segment


@pytest.fixture(scope="module")
def data():
    train = simulate(SimConfig(n_users=800, n_weeks=26, seed=31))
    test = simulate(SimConfig(n_users=400, n_weeks=26, seed=32))
    return behavior_matrix(train), behavior_matrix(test), test.latent, train.latent


def test_segments_recover_the_latent_types_with_their_names(data) -> None:
    train_X, test_X, latent, train_latent = data
    model = Segmenter().fit(train_X, train_latent)
    labels = model.predict(test_X)
    # Money only (no income level, no app usage): the types overlap more than with them.
    assert adjusted_rand_score(latent, labels) > 0.55
    # Segment id i means SEGMENT_NAMES[i], which is the name of latent type i.
    assert np.mean(labels == latent) > 0.75
    # Without the types, names come from the prototypes; they still mostly agree.
    by_prototype = Segmenter().fit(train_X).predict(test_X)
    assert np.mean(by_prototype == latent) > 0.4


def test_confidence_is_a_calibrated_posterior(data) -> None:
    train_X, test_X, latent, train_latent = data
    raw = Segmenter().fit(train_X, train_latent)
    assert raw.predict_proba(test_X).max(axis=1).mean() > 0.95  # the mixture alone: overconfident
    model = raw.calibrate(train_X, train_latent)
    proba = model.predict_proba(test_X)
    confidence, hit = proba.max(axis=1), proba.argmax(axis=1) == latent
    assert abs(confidence.mean() - hit.mean()) < 0.05
    assert np.array_equal(proba.argmax(axis=1), model.predict(test_X))


def test_hysteresis_keeps_a_segment_until_another_is_clearly_ahead() -> None:
    assert keep_segment([0.1, 0.45, 0.4, 0.05, 0.0], previous=2) == 2
    assert keep_segment([0.1, 0.6, 0.2, 0.1, 0.0], previous=2) == 1
    assert keep_segment([0.1, 0.45, 0.4, 0.05, 0.0], previous=None) == 1
    assert keep_segment([0.1, 0.45, 0.4, 0.05, 0.0], previous=9) == 1


def test_names_do_not_depend_on_the_mixture_seed(data) -> None:
    train_X, test_X, _, _ = data
    a = Segmenter(seed=1).fit(train_X).predict(test_X)
    b = Segmenter(seed=7).fit(train_X[::-1]).predict(test_X)
    assert np.mean(a == b) > 0.95


def test_assign_characteristics_peers_and_persistence(data, tmp_path) -> None:
    train_X, test_X, _, _ = data
    model = Segmenter().fit(train_X)
    segment, name, confidence = model.assign(test_X[0])
    assert name == SEGMENT_NAMES[segment] and 0.2 <= confidence <= 1.0
    proba = model.predict_proba(test_X)
    assert proba.shape == (len(test_X), 5) and np.allclose(proba.sum(axis=1), 1.0)
    profiles = model.characteristics()
    assert [p["name"] for p in profiles] == list(SEGMENT_NAMES)
    assert abs(sum(p["share"] for p in profiles) - 1.0) < 1e-9
    peers = model.nearest_peers(test_X[0], test_X, k=3)
    assert peers[0] == 0 and len(peers) == 3
    joblib.dump(model, tmp_path / "m.joblib")
    assert np.array_equal(joblib.load(tmp_path / "m.joblib").predict(test_X), model.predict(test_X))


def test_refuses_malformed_input(data) -> None:
    train_X, _, _, _ = data
    with pytest.raises(RuntimeError, match="not fitted"):
        Segmenter().predict(train_X)
    model = Segmenter().fit(train_X)
    with pytest.raises(ValueError, match="expected 9 features"):
        model.predict(train_X[:, :5])
    bad = train_X[:2].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict(bad)
    with pytest.raises(ValueError, match="at least"):
        Segmenter().fit(train_X[:10])


@pytest.mark.parametrize("factor", [1 / 90, 90.0])
def test_segment_is_the_same_in_another_currency_unit_and_with_more_clicks(
    data, factor: float
) -> None:
    from dataclasses import replace

    from fincoach.features.frames import EventFrame, Profile
    from fincoach.features.state import behavior_features
    from fincoach.training.datasets import snapshots

    train_X, _, _, train_latent = data
    model = Segmenter().fit(train_X, train_latent).calibrate(train_X, train_latent)
    population = simulate(SimConfig(n_users=40, n_weeks=16, seed=33))
    for snap in snapshots(population):
        tx = snap.transactions
        scaled = replace(
            snap,
            transactions=replace(tx, amount=tx.amount * factor),
            profile=Profile(
                opening_balance=snap.profile.opening_balance * factor,
                monthly_income=snap.profile.monthly_income * factor,
                monthly_budget=(snap.profile.monthly_budget or 0.0) * factor or None,
            ),
        )
        # 200 extra page views in the last day, the finances unchanged.
        views = EventFrame(
            np.concatenate(
                [snap.events.timestamp, np.repeat(snap.as_of - np.timedelta64(3600, "s"), 200)]
            ),
            np.concatenate([snap.events.event_type, np.zeros(200, dtype=int)]),
        )
        clicked = replace(snap, events=views)
        base = behavior_features(snap)
        for other in (behavior_features(scaled), behavior_features(clicked)):
            np.testing.assert_allclose(other, base, rtol=1e-9, atol=1e-12)
            assert model.assign(other)[:2] == model.assign(base)[:2]


def test_the_served_mixture_gives_scikit_learns_posteriors(data) -> None:
    """The fitted mixture is kept as arrays (no scikit-learn at serving); its posteriors are
    GaussianMixture's own, far into the tails too."""
    from sklearn.mixture import GaussianMixture

    from models.segmentation import DiagonalMixture

    train_X, test_X, _, _ = data
    z = (train_X - train_X.mean(axis=0)) / train_X.std(axis=0)
    mixture = GaussianMixture(5, covariance_type="diag", random_state=0).fit(z)
    probe = np.vstack([(test_X - train_X.mean(axis=0)) / train_X.std(axis=0), z[:5] * 40.0])
    np.testing.assert_allclose(
        DiagonalMixture.of(mixture).predict_proba(probe), mixture.predict_proba(probe), atol=1e-9
    )
    model = Segmenter().fit(train_X)
    assert isinstance(model.mixture_, DiagonalMixture)
    full = Segmenter(covariance_type="full").fit(train_X)  # kept as scikit-learn's object
    assert full.predict_proba(test_X).shape == (len(test_X), 5)
