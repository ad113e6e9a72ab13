"""Score the segmenter against the simulator's latent types, beside k-means on raw features."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score

from models.segmentation import Segmenter

N_BOOTSTRAP = 5


def evaluate_segmentation(
    model: Segmenter,
    train_X: np.ndarray,
    test_X: np.ndarray,
    test_latent: np.ndarray,
    *,
    seed: int = 0,
    n_bootstrap: int = N_BOOTSTRAP,
) -> dict[str, Any]:
    """ARI with the latent types, name accuracy (segment id equals the latent type the name
    stands for), silhouette, bootstrap stability (ARI of refits on resamples with the model's
    labels on the test users), and the peer: k-means with 5 clusters on the raw features."""
    labels = model.predict(test_X)
    rng = np.random.default_rng(seed)
    stability = []
    for b in range(n_bootstrap):
        idx = rng.integers(0, train_X.shape[0], train_X.shape[0])
        refit = Segmenter(n_init=model.n_init, covariance_type=model.covariance_type, seed=b + 1)
        stability.append(adjusted_rand_score(labels, refit.fit(train_X[idx]).predict(test_X)))
    kmeans = KMeans(n_clusters=model.n_segments, n_init=10, random_state=seed).fit(train_X)
    kmeans_labels = kmeans.predict(test_X)
    sample = slice(0, min(3000, test_X.shape[0]))
    return {
        "segmenter": {
            "ari": float(adjusted_rand_score(test_latent, labels)),
            "name_accuracy": float(np.mean(labels == test_latent)),
            "silhouette": float(
                silhouette_score(model.standardize(test_X)[sample], labels[sample])
            ),
            "bootstrap_ari_mean": float(np.mean(stability)),
            "bootstrap_ari_min": float(np.min(stability)),
            "mean_confidence": float(model.predict_proba(test_X).max(axis=1).mean()),
        },
        "kmeans_raw": {
            "ari": float(adjusted_rand_score(test_latent, kmeans_labels)),
            "silhouette": float(
                silhouette_score(model.standardize(test_X)[sample], kmeans_labels[sample])
            ),
        },
        "targets": {"bootstrap_ari>=0.9": bool(np.mean(stability) >= 0.9)},
    }
