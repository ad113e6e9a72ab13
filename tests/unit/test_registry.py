"""ModelRegistry: round trip, versioning, and every refusal happening before anything is
unpickled (checksum, library versions, unsafe names, symlinks escaping the root)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from models.registry import ArtifactError, Manifest, ModelRegistry, runtime_versions

FEATURES = ["spend_ratio", "savings_rate", "volatility"]


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "artifacts")


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Make joblib.load record calls and fail, to prove a refusal came before unpickling."""
    calls: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        raise AssertionError("joblib.load must not be reached")

    monkeypatch.setattr(joblib, "load", refuse)
    return calls


class _Linear:
    """A fitted-model stand-in: numpy weights and scikit-learn's fitted attribute names.

    scikit-learn itself is not imported: it alone would take most of this file's time budget.
    """

    def __init__(self, coef: np.ndarray, names: list[str] | None = None) -> None:
        self.coef_ = coef
        self.n_features_in_ = coef.size
        if names is not None:
            self.feature_names_in_ = np.array(names, dtype=object)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x @ self.coef_)


def _fitted() -> _Linear:
    return _Linear(np.random.default_rng(0).normal(size=3), FEATURES)


def _edit_manifest(registry: ModelRegistry, name: str, version: str, **changes: Any) -> None:
    path = registry.root / name / version / "manifest.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_save_load_round_trip(registry: ModelRegistry) -> None:
    model = _fitted()
    saved = registry.save(
        "goal_prob",
        model,
        metrics={"brier": 0.12, "n": 60},
        feature_names=FEATURES,
        extra={"git_sha": "abc123"},
    )
    loaded, manifest = registry.load("goal_prob")

    x = np.random.default_rng(1).normal(size=(5, 3))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert manifest == saved
    assert (manifest.name, manifest.version, manifest.n_features) == ("goal_prob", "v1", 3)
    assert manifest.metrics == {"brier": 0.12, "n": 60.0}
    assert manifest.extra == {"git_sha": "abc123"}
    assert manifest.library_versions == runtime_versions()
    assert datetime.fromisoformat(manifest.created_at).utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    model_bytes = (registry.root / "goal_prob" / "v1" / "model.joblib").read_bytes()
    assert manifest.sha256 == hashlib.sha256(model_bytes).hexdigest()
    assert Manifest.from_dict(json.loads(json.dumps(manifest.to_dict()))) == manifest


def test_versions_increment_and_sort_numerically(registry: ModelRegistry) -> None:
    for i in range(10):
        registry.save("seg", {"k": i}, metrics={}, feature_names=[])
    assert registry.latest_version("seg") == "v10"
    assert [m.version for m in registry.list_versions("seg")] == [f"v{i}" for i in range(10, 0, -1)]
    obj, _ = registry.load("seg")
    assert obj == {"k": 9}
    assert registry.load("seg", "v2")[0] == {"k": 1}
    assert registry.names() == ["seg"]
    assert registry.latest_version("other") is None


def test_save_refuses_to_overwrite_a_version(registry: ModelRegistry) -> None:
    registry.save("seg", {"k": 1}, metrics={}, feature_names=[], version="v3")
    with pytest.raises(ArtifactError, match="already exists"):
        registry.save("seg", {"k": 2}, metrics={}, feature_names=[], version="v3")
    assert registry.load("seg", "v3")[0] == {"k": 1}
    # Auto-versioning continues after the highest explicit vN.
    assert registry.save("seg", {"k": 3}, metrics={}, feature_names=[]).version == "v4"


def test_save_refuses_features_that_disagree_with_the_model(registry: ModelRegistry) -> None:
    with pytest.raises(ArtifactError, match="n_features_in_=3"):
        registry.save("goal_prob", _fitted(), metrics={}, feature_names=FEATURES[:2])
    with pytest.raises(ArtifactError, match="names or order"):
        registry.save("goal_prob", _fitted(), metrics={}, feature_names=FEATURES[::-1])
    with pytest.raises(ArtifactError, match="metric 'auc'"):
        registry.save("goal_prob", {}, metrics={"auc": float("nan")}, feature_names=[])
    assert registry.names() == []


def test_tampered_model_is_refused_on_checksum(
    registry: ModelRegistry, no_unpickling: list[Any]
) -> None:
    registry.save("seg", {"k": 1}, metrics={}, feature_names=[])
    path = registry.root / "seg" / "v1" / "model.joblib"
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        registry.load("seg")
    assert no_unpickling == []


@pytest.mark.parametrize("library", ["numpy", "scikit-learn"])
def test_other_library_minor_version_is_refused(
    registry: ModelRegistry, no_unpickling: list[Any], library: str
) -> None:
    registry.save("seg", {"k": 1}, metrics={}, feature_names=[])
    versions = {**runtime_versions(), library: "0.1.0"}
    _edit_manifest(registry, "seg", "v1", library_versions=versions)
    running = runtime_versions()[library]
    with pytest.raises(ArtifactError, match=f"{library} 0.1.0 but {library} {running}"):
        registry.load("seg")
    assert no_unpickling == []


def test_same_minor_other_patch_version_loads(registry: ModelRegistry) -> None:
    registry.save("seg", {"k": 1}, metrics={}, feature_names=[])
    major, minor = np.__version__.split(".")[:2]
    versions = {**runtime_versions(), "numpy": f"{major}.{minor}.999"}
    _edit_manifest(registry, "seg", "v1", library_versions=versions)
    assert registry.load("seg")[0] == {"k": 1}


@pytest.mark.parametrize("bad", ["../x", "..", ".", "a/b", "/etc", ".tmp-x", "", "x\x00", "ä"])
def test_unsafe_names_are_refused_without_loading(
    registry: ModelRegistry, no_unpickling: list[Any], bad: str
) -> None:
    registry.save("seg", {"k": 1}, metrics={}, feature_names=[])
    with pytest.raises(ArtifactError, match="is not allowed"):
        registry.load(bad)
    with pytest.raises(ArtifactError, match="is not allowed"):
        registry.load("seg", bad)
    with pytest.raises(ArtifactError, match="is not allowed"):
        registry.save(bad, {}, metrics={}, feature_names=[])
    assert no_unpickling == []


def test_symlink_escaping_the_root_is_refused(
    tmp_path: Path, registry: ModelRegistry, no_unpickling: list[Any]
) -> None:
    outside = ModelRegistry(tmp_path / "elsewhere")
    outside.save("evil", {"k": 1}, metrics={}, feature_names=[])
    registry.root.mkdir(parents=True)
    (registry.root / "evil").symlink_to(outside.root / "evil", target_is_directory=True)
    with pytest.raises(ArtifactError, match="outside the registry"):
        registry.load("evil")
    assert registry.names() == []

    # A single file swapped for a link to outside data is caught too.
    registry.save("seg", {"k": 1}, metrics={}, feature_names=[])
    model = registry.root / "seg" / "v1" / "model.joblib"
    model.unlink()
    model.symlink_to(outside.root / "evil" / "v1" / "model.joblib")
    with pytest.raises(ArtifactError, match="outside the registry"):
        registry.load("seg")
    assert no_unpickling == []


def test_copied_version_is_refused(registry: ModelRegistry, no_unpickling: list[Any]) -> None:
    registry.save("seg", {"k": 1}, metrics={}, feature_names=[])
    shutil.copytree(registry.root / "seg" / "v1", registry.root / "seg" / "v7")
    with pytest.raises(ArtifactError, match="claims to be 'seg' v1"):
        registry.load("seg")
    assert no_unpickling == []


def test_missing_name_or_version_says_what_exists(registry: ModelRegistry) -> None:
    registry.save("seg", {}, metrics={}, feature_names=[])
    registry.save("seg", {}, metrics={}, feature_names=[])
    registry.save("forecast", {}, metrics={}, feature_names=[])
    with pytest.raises(ArtifactError, match="has no version 'v9'; available: v2, v1"):
        registry.load("seg", "v9")
    with pytest.raises(ArtifactError, match="no model named 'cql'.*available: forecast, seg"):
        registry.manifest("cql")


def test_leftover_temp_dir_is_not_a_version(registry: ModelRegistry) -> None:
    registry.save("seg", {"k": 1}, metrics={}, feature_names=[])
    # What a crash mid-save leaves behind: a hidden temp dir, possibly with a full model in it.
    for name in ("seg", "fresh"):
        crashed = registry.root / name / ".tmp-abc123"
        crashed.mkdir(parents=True)
        joblib.dump({"k": "half"}, crashed / "model.joblib")
    assert [m.version for m in registry.list_versions("seg")] == ["v1"]
    assert registry.names() == ["seg"]
    assert registry.latest_version("fresh") is None
    assert registry.save("seg", {"k": 2}, metrics={}, feature_names=[]).version == "v2"


def test_failed_publish_leaves_nothing_behind(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_args: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(ArtifactError, match="disk gone"):
        registry.save("seg", {"k": 1}, metrics={}, feature_names=[], version="v1")
    assert registry.latest_version("seg") is None
    assert list((registry.root / "seg").iterdir()) == []  # the temp dir was removed too


def test_unserialisable_object_is_refused(registry: ModelRegistry) -> None:
    with pytest.raises(ArtifactError, match="could not serialise"):
        registry.save("seg", lambda: None, metrics={}, feature_names=[])
    assert list((registry.root / "seg").iterdir()) == []


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"sha256": "abc"}, "sha256"),
        ({"created_at": "2024-01-01T00:00:00+02:00"}, "created_at"),
        ({"n_features": 5}, "n_features=5"),
        ({"metrics": {"auc": "high"}}, "metric 'auc'"),
    ],
)
def test_malformed_manifest_is_refused(
    registry: ModelRegistry, no_unpickling: list[Any], changes: dict[str, Any], match: str
) -> None:
    registry.save("goal_prob", _fitted(), metrics={}, feature_names=FEATURES)
    _edit_manifest(registry, "goal_prob", "v1", **changes)
    with pytest.raises(ArtifactError, match=match):
        registry.load("goal_prob")
    assert no_unpickling == []
