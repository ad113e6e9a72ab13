"""Promotion and rollback edit serve_config.yaml's user_config and keep it a valid Serve config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from fincoach.training.promotion import PromotionError, pinned_versions, promote, rollback
from models.registry import ArtifactError, ModelRegistry

CONFIG = Path(__file__).resolve().parents[2] / "serve_config.yaml"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, ModelRegistry]:
    config = tmp_path / "serve_config.yaml"
    shutil.copy(CONFIG, config)
    registry = ModelRegistry(tmp_path / "artifacts")
    for _ in range(3):
        registry.save("cql_enhanced", {"w": [1, 2]}, metrics={}, feature_names=["a", "b"])
    return config, registry


def _versions(config: Path, deployment: str) -> dict:
    doc = yaml.safe_load(config.read_text())
    (d,) = [x for x in doc["applications"][0]["deployments"] if x["name"] == deployment]
    return d["user_config"]["versions"]


def test_promote_then_rollback(setup) -> None:
    config, registry = setup
    assert pinned_versions(config)["cql_enhanced"] is None
    first = promote(config, registry, "cql_enhanced", "v2")
    assert (first.previous, first.current) == (None, "v2")
    assert _versions(config, "RecommenderDeployment") == {"cql_enhanced": "v2"}
    promote(config, registry, "cql_enhanced", "v3")
    assert pinned_versions(config)["cql_enhanced"] == "v3"
    back = rollback(config, "cql_enhanced")
    assert (back.previous, back.current) == ("v3", "v2")
    assert rollback(config, "cql_enhanced").current is None  # back to "newest"
    with pytest.raises(PromotionError, match="no promotion"):
        rollback(config, "cql_enhanced")
    ServeDeploySchema.model_validate(yaml.safe_load(config.read_text()))
    assert config.read_text().startswith("#")  # the header comment survives


def test_promote_refuses_what_cannot_serve(setup) -> None:
    config, registry = setup
    before = config.read_text()
    with pytest.raises(ArtifactError, match="v9"):
        promote(config, registry, "cql_enhanced", "v9")
    with pytest.raises(PromotionError, match="unknown model"):
        promote(config, registry, "nonsense", "v1")
    assert config.read_text() == before


def test_rollback_from_unpinned_returns_to_the_version_that_was_serving(setup) -> None:
    """Nothing pinned means "newest"; after v3 was trained, "newest" is no longer what served.
    The promotion records the live version, and the rollback pins it."""
    config, registry = setup
    promote(config, registry, "cql_enhanced", "v3", live_version="v1")
    back = rollback(config, "cql_enhanced")
    assert (back.previous, back.current) == ("v3", "v1")
    assert _versions(config, "RecommenderDeployment") == {"cql_enhanced": "v1"}
