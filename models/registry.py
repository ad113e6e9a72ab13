"""Versioned artifact store: ``<root>/<name>/<version>/{model.joblib, manifest.json}``.

A version directory only ever appears complete: ``save`` writes into a hidden temporary
directory next to it, fsyncs, and renames it into place, so a crash leaves at most a ``.tmp-*``
directory that nothing lists. ``load`` unpickles only after every check has passed (safe name,
path inside the root, manifest consistent, numpy/scikit-learn versions compatible, sha256 of the
exact bytes it is about to unpickle), because unpickling a joblib file runs arbitrary code.

stdlib + numpy + joblib only: scikit-learn's version is read from package metadata, not import.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import joblib

from models.artifact_checks import (
    CHECKED_LIBRARIES,
    ArtifactError,
    check_features,
    check_library_versions,
    check_metrics,
    check_name,
    dump,
    fsync_dir,
    is_safe,
    is_utc_iso,
    runtime_versions,
    version_key,
    write_json,
)

__all__ = ["CHECKED_LIBRARIES", "ArtifactError", "Manifest", "ModelRegistry", "runtime_versions"]

MODEL_FILE: Final = "model.joblib"
MANIFEST_FILE: Final = "manifest.json"

_AUTO_VERSION = re.compile(r"^v([0-9]+)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TMP_PREFIX = ".tmp-"
# Concurrent auto-versioned saves of one name may race for the same vN; retry with the next N.
_SAVE_ATTEMPTS = 5


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` records about one saved version."""

    name: str
    version: str
    created_at: str  # ISO-8601 in UTC
    metrics: dict[str, float]
    feature_names: list[str]
    n_features: int
    library_versions: dict[str, str]  # python, numpy, scikit-learn, joblib
    sha256: str  # of model.joblib
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        return {
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at,
            "metrics": dict(self.metrics),
            "feature_names": list(self.feature_names),
            "n_features": self.n_features,
            "library_versions": dict(self.library_versions),
            "sha256": self.sha256,
            "extra": json.loads(json.dumps(self.extra)),
        }

    @classmethod
    def from_dict(cls, d: Any) -> Manifest:
        """Validate and build; raise ``ArtifactError`` naming the first bad field."""
        if not isinstance(d, dict):
            raise ArtifactError(f"manifest must be a JSON object, got {type(d).__name__}")
        required = {f for f in cls.__dataclass_fields__ if f != "extra"}
        missing = sorted(required - set(d))
        if missing:
            raise ArtifactError(f"manifest is missing {', '.join(missing)}")
        name, version = d["name"], d["version"]
        for key, value in (("name", name), ("version", version)):
            if not isinstance(value, str) or not is_safe(value):
                raise ArtifactError(f"manifest {key} {value!r} is not a safe name")
        created_at = d["created_at"]
        if not isinstance(created_at, str) or not is_utc_iso(created_at):
            raise ArtifactError(f"manifest created_at {created_at!r} is not ISO-8601 UTC")
        metrics = check_metrics(d["metrics"])
        features = d["feature_names"]
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise ArtifactError("manifest feature_names must be a list of strings")
        n_features = d["n_features"]
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 0:
            raise ArtifactError(f"manifest n_features {n_features!r} is not a non-negative int")
        if features and n_features != len(features):
            raise ArtifactError(
                f"manifest n_features={n_features} but {len(features)} feature_names"
            )
        versions = d["library_versions"]
        if not isinstance(versions, dict) or not all(
            isinstance(versions.get(lib), str) for lib in (*CHECKED_LIBRARIES, "python", "joblib")
        ):
            raise ArtifactError(
                "manifest library_versions must give python, numpy, scikit-learn and joblib"
            )
        sha = d["sha256"]
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise ArtifactError(f"manifest sha256 {sha!r} is not 64 lowercase hex digits")
        extra = d.get("extra", {})
        if not isinstance(extra, dict):
            raise ArtifactError("manifest extra must be a JSON object")
        return cls(
            name=name,
            version=version,
            created_at=created_at,
            metrics=metrics,
            feature_names=list(features),
            n_features=n_features,
            library_versions={str(k): str(v) for k, v in versions.items()},
            sha256=sha,
            extra=extra,
        )


class ModelRegistry:
    """Save and load versioned joblib artifacts under one root directory."""

    def __init__(self, root: Path | str) -> None:
        # Resolved once, so every containment check compares against the real location.
        self.root = Path(root).resolve()

    # ---------------------------------------------------------------------------------------
    # Writing

    def save(
        self,
        name: str,
        obj: Any,
        *,
        metrics: dict[str, float],
        feature_names: list[str],
        version: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Manifest:
        """Write ``obj`` as a new version of ``name`` and return its manifest.

        ``version=None`` picks ``v<N+1>`` after the highest existing ``vN``. An existing version
        is never overwritten. If ``obj`` exposes ``n_features_in_`` or ``feature_names_in_``
        (scikit-learn), they must agree with ``feature_names``.
        """
        check_name(name, "name")
        if version is not None:
            check_name(version, "version")
        metrics = check_metrics(metrics)
        features = check_features(obj, feature_names)
        extra = dict(extra or {})
        try:
            json.dumps(extra, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"extra must be JSON-serialisable: {exc}") from exc

        name_dir = self._inside(self.root / name, f"model {name!r}")
        name_dir.mkdir(parents=True, exist_ok=True)
        self._inside(name_dir, f"model {name!r}")  # re-check: it may be a pre-existing symlink
        tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=name_dir))
        try:
            digest = dump(obj, tmp / MODEL_FILE)
            for _ in range(_SAVE_ATTEMPTS):
                target = version if version is not None else self._next_version(name)
                manifest = Manifest(
                    name=name,
                    version=target,
                    created_at=datetime.now(UTC).isoformat(),
                    metrics=metrics,
                    feature_names=features,
                    n_features=len(features),
                    library_versions=runtime_versions(),
                    sha256=digest,
                    extra=extra,
                )
                write_json(tmp / MANIFEST_FILE, manifest.to_dict())
                final = name_dir / target
                if final.exists() or final.is_symlink():
                    if version is not None:
                        raise ArtifactError(f"{name!r} {target} already exists; not overwriting")
                    continue
                try:
                    # rename(2) onto an existing non-empty directory fails, so a concurrent save
                    # that won the race is never overwritten.
                    os.rename(tmp, final)
                except OSError as exc:
                    if version is not None or not final.exists():
                        raise ArtifactError(f"could not publish {name!r} {target}: {exc}") from exc
                    continue
                fsync_dir(name_dir)
                return manifest
            raise ArtifactError(f"gave up saving {name!r}: concurrent saves kept taking versions")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # no-op once the rename has succeeded

    # ---------------------------------------------------------------------------------------
    # Reading

    def load(self, name: str, version: str | None = None) -> tuple[Any, Manifest]:
        """Return ``(object, manifest)`` for ``version`` of ``name`` (``None`` = newest).

        Refuses (``ArtifactError``) before unpickling anything if the path is unsafe, the
        manifest disagrees with its location, numpy or scikit-learn differ in major.minor from
        the running ones, or the file's sha256 differs from the manifest's.
        """
        version_dir, manifest = self._resolve(name, version)
        check_library_versions(f"{manifest.name!r} {manifest.version}", manifest.library_versions)
        model_path = self._inside(version_dir / MODEL_FILE, f"{name!r} {manifest.version}")
        try:
            payload = model_path.read_bytes()
        except OSError as exc:
            raise ArtifactError(f"cannot read {model_path}: {exc}") from exc
        # Hash and unpickle the same bytes: checking the file and then reopening it would let
        # a swap in between go unnoticed.
        actual = hashlib.sha256(payload).hexdigest()
        if actual != manifest.sha256:
            raise ArtifactError(
                f"checksum mismatch for {name!r} {manifest.version}: manifest sha256 "
                f"{manifest.sha256}, file sha256 {actual}; the artifact was modified or corrupted"
            )
        return joblib.load(io.BytesIO(payload)), manifest

    def manifest(self, name: str, version: str | None = None) -> Manifest:
        """The validated manifest of ``version`` of ``name`` (``None`` = newest)."""
        return self._resolve(name, version)[1]

    def list_versions(self, name: str) -> list[Manifest]:
        """Manifests of every version of ``name``, newest first (v10 before v9)."""
        check_name(name, "name")
        return [self.manifest(name, v) for v in self._versions(name)]

    def latest_version(self, name: str) -> str | None:
        """The newest version of ``name``, or ``None`` if it has none."""
        check_name(name, "name")
        versions = self._versions(name)
        return versions[0] if versions else None

    def names(self) -> list[str]:
        """Model names that have at least one version, sorted."""
        if not self.root.is_dir():
            return []
        found = []
        for p in self.root.iterdir():
            # Skip, rather than fail on, entries that escape the root: load() refuses them anyway,
            # and one bad link must not break listing (or the error messages that list names).
            if is_safe(p.name) and p.resolve().is_relative_to(self.root) and self._versions(p.name):
                found.append(p.name)
        return sorted(found)

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.root)!r})"

    # ---------------------------------------------------------------------------------------

    def _resolve(self, name: str, version: str | None) -> tuple[Path, Manifest]:
        """Checked version directory and manifest; nothing is unpickled here."""
        check_name(name, "name")
        if version is not None:
            check_name(version, "version")
        versions = self._versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise ArtifactError(f"no model named {name!r} in {self.root}; available: {known}")
        if version is None:
            version = versions[0]
        elif version not in versions:
            raise ArtifactError(
                f"model {name!r} has no version {version!r}; available: {', '.join(versions)}"
            )
        where = f"{name!r} {version}"
        version_dir = self._inside(self.root / name / version, where)
        manifest_path = self._inside(version_dir / MANIFEST_FILE, where)
        try:
            raw = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot read the manifest of {where}: {exc}") from exc
        try:
            manifest = Manifest.from_dict(raw)
        except ArtifactError as exc:
            raise ArtifactError(f"invalid manifest for {where}: {exc}") from None
        if (manifest.name, manifest.version) != (name, version):
            raise ArtifactError(
                f"manifest of {where} claims to be {manifest.name!r} {manifest.version}; "
                "refusing an artifact that was copied or renamed"
            )
        return version_dir, manifest

    def _versions(self, name: str) -> list[str]:
        """Version directory names of ``name``, newest first; temp dirs and junk excluded."""
        name_dir = self._inside(self.root / name, f"model {name!r}")
        if not name_dir.is_dir():
            return []
        found = [p.name for p in name_dir.iterdir() if is_safe(p.name) and p.is_dir()]
        return sorted(found, key=version_key, reverse=True)

    def _next_version(self, name: str) -> str:
        numbers = [int(m[1]) for v in self._versions(name) if (m := _AUTO_VERSION.match(v))]
        return f"v{max(numbers, default=0) + 1}"

    def _inside(self, path: Path, what: str) -> Path:
        """``path`` with symlinks resolved, refusing anything that lands outside the root."""
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise ArtifactError(f"{what} resolves to {resolved}, outside the registry {self.root}")
        return resolved
