"""Model services as the deployments use them, without Ray."""

from __future__ import annotations

import numpy as np

from fincoach.features.state import ENHANCED_DIM, LEGACY_DIM
from models.registry import ModelRegistry
from models.serving import RecommenderService


def test_batched_q_values_equal_one_by_one(trained_models: str) -> None:
    service = RecommenderService(ModelRegistry(trained_models))
    assert all(report.ok for report in service.apply())
    rng = np.random.default_rng(0)
    variants = ["enhanced", "legacy", "enhanced", "enhanced", "legacy"]
    states = [rng.normal(size=ENHANCED_DIM if v == "enhanced" else LEGACY_DIM) for v in variants]
    batched = service.q_values_many(states, variants)
    assert len(batched) == len(states)
    for (q, version), state, variant in zip(batched, states, variants, strict=True):
        q1, version1 = service.q_values(state, variant)
        assert version == version1
        assert np.allclose(q, q1)
