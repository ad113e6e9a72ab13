"""The registry's checks and file writes: names, versions, metrics, feature schemas, library
versions, and the fsynced writes that make a version directory appear complete."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
from datetime import datetime
from importlib import metadata
from numbers import Real
from pathlib import Path
from typing import Any, Final

import joblib
import numpy as np

# Libraries whose major.minor must match at load time: their pickles are not stable across them.
CHECKED_LIBRARIES: Final = ("numpy", "scikit-learn")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class ArtifactError(Exception):
    """The registry refused an operation; the message says what and why."""


def is_safe(value: str) -> bool:
    # A leading dot would allow "." and ".." and would collide with the hidden temp dirs.
    return bool(_SAFE_NAME.match(value)) and not value.startswith(".")


def check_name(value: object, what: str) -> None:
    if not isinstance(value, str) or not is_safe(value):
        raise ArtifactError(
            f"{what} {value!r} is not allowed: use letters, digits, '_', '.', '-', "
            "not starting with '.'"
        )


def version_key(version: str) -> tuple[Any, ...]:
    """Natural sort key: digit runs compare as numbers, so v2 < v10 and v1.9 < v1.10."""
    parts = re.split(r"([0-9]+)", version)
    # re.split with a capture group alternates text, number, text, ..., so types line up.
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def is_utc_iso(value: str) -> bool:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    offset = parsed.utcoffset()
    return offset is not None and offset.total_seconds() == 0


def check_metrics(metrics: object) -> dict[str, float]:
    if not isinstance(metrics, dict):
        raise ArtifactError(
            f"metrics must be a dict of name -> number, got {type(metrics).__name__}"
        )
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise ArtifactError(f"metric names must be strings, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ArtifactError(f"metric {key!r} must be a finite number, got {value!r}")
        out[key] = float(value)
    return out


def check_features(obj: Any, feature_names: object) -> list[str]:
    if not isinstance(feature_names, list | tuple) or not all(
        isinstance(f, str) for f in feature_names
    ):
        raise ArtifactError("feature_names must be a list of strings")
    features = list(feature_names)
    if len(set(features)) != len(features):
        raise ArtifactError("feature_names must be distinct")
    # A model fitted on other columns would serve silently wrong predictions, so catch it here.
    n_in = getattr(obj, "n_features_in_", None)
    if isinstance(n_in, int | np.integer) and int(n_in) != len(features):
        raise ArtifactError(f"model has n_features_in_={n_in} but {len(features)} feature_names")
    names_in = getattr(obj, "feature_names_in_", None)
    if names_in is not None and [str(f) for f in names_in] != features:
        raise ArtifactError("model feature_names_in_ differ from feature_names (names or order)")
    return features


def check_library_versions(what: str, library_versions: dict[str, str]) -> None:
    """Refuse an artifact (``what``: its name and version) saved with another major.minor of a
    library whose pickles are not stable across them."""
    running = runtime_versions()
    for lib in CHECKED_LIBRARIES:
        saved, now = library_versions[lib], running[lib]
        if major_minor(saved) != major_minor(now):
            raise ArtifactError(
                f"{what} was saved with {lib} {saved} but {lib} "
                f"{now} is running; retrain it or run {lib} {major_minor(saved)}.x"
            )


def major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def dump(obj: Any, path: Path) -> str:
    """Write ``obj`` with joblib, fsync it and return the file's sha256."""
    try:
        joblib.dump(obj, path)
    except Exception as exc:  # any pickling failure, whatever the object raises
        raise ArtifactError(f"could not serialise {type(obj).__name__}: {exc}") from exc
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
        os.fsync(f.fileno())
    return digest.hexdigest()


def write_json(path: Path, data: dict[str, Any]) -> None:
    with path.open("w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory, hence the guard.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def runtime_versions() -> dict[str, str]:
    """Versions of the libraries an artifact depends on, as running now."""
    try:
        sklearn = metadata.version("scikit-learn")
    except metadata.PackageNotFoundError:
        sklearn = "not installed"
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn,
        "joblib": joblib.__version__,
    }
