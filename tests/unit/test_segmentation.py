"""Segmentation: stable names, posterior confidence, agreement with the latent types."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from fincoach.features.vocab import SEGMENT_NAMES
from fincoach.training.datasets import behavior_matrix
from fincoach.training.simulator import SimConfig, simulate
from models.segmentation import Segmenter


@pytest.fixture(scope="module")
def data():
    train = simulate(SimConfig(n_users=600, n_weeks=16, seed=31))
    test = simulate(SimConfig(n_users=300, n_weeks=16, seed=32))
    return behavior_matrix(train), behavior_matrix(test), test.latent


def test_segments_recover_the_latent_types_with_their_names(data) -> None:
    train_X, test_X, latent = data
    model = Segmenter().fit(train_X)
    labels = model.predict(test_X)
    assert adjusted_rand_score(latent, labels) > 0.7
    # Segment id i means SEGMENT_NAMES[i], which is the name of latent type i.
    assert np.mean(labels == latent) > 0.8


def test_names_do_not_depend_on_the_mixture_seed(data) -> None:
    train_X, test_X, _ = data
    a = Segmenter(seed=1).fit(train_X).predict(test_X)
    b = Segmenter(seed=7).fit(train_X[::-1]).predict(test_X)
    assert np.mean(a == b) > 0.95


def test_assign_characteristics_peers_and_persistence(data, tmp_path) -> None:
    train_X, test_X, _ = data
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
    train_X, _, _ = data
    with pytest.raises(RuntimeError, match="not fitted"):
        Segmenter().predict(train_X)
    model = Segmenter().fit(train_X)
    with pytest.raises(ValueError, match="expected 11 features"):
        model.predict(train_X[:, :5])
    bad = train_X[:2].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict(bad)
    with pytest.raises(ValueError, match="at least"):
        Segmenter().fit(train_X[:10])
