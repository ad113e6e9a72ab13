"""Model promotion: which registry version each deployment serves, kept in serve_config.yaml.

`promote` writes the version into the hosting deployment's ``user_config.versions`` (after
checking the registry has it), records the change in a history file beside the config, and
`rollback` returns a model to the version it had before its last promotion. Applying the file
(`serve deploy`) makes Serve call ``reconfigure`` on the live replicas: no restart, no downtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from models.registry import ModelRegistry

DEPLOYMENT_OF = {
    "segmentation": "SegmentationDeployment",
    "forecast": "ForecastingDeployment",
    "goal_probability": "ForecastingDeployment",
    "cql_legacy": "RecommenderDeployment",
    "cql_enhanced": "RecommenderDeployment",
}


class PromotionError(Exception):
    """A promotion or rollback that cannot be done; the message says why."""


@dataclass(frozen=True)
class Change:
    name: str
    previous: str | None  # None: "newest" (nothing pinned)
    current: str | None
    at: str


def history_path(config: Path) -> Path:
    return config.with_name(config.stem + ".history.json")


def _load(config: Path) -> tuple[list[str], dict[str, Any]]:
    text = config.read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    return header, yaml.safe_load(text)


def _deployment(doc: dict[str, Any], name: str) -> dict[str, Any]:
    if name not in DEPLOYMENT_OF:
        raise PromotionError(f"unknown model {name!r}; models: {sorted(DEPLOYMENT_OF)}")
    wanted = DEPLOYMENT_OF[name]
    for app in doc.get("applications", []):
        for deployment in app.get("deployments", []):
            if deployment.get("name") == wanted:
                return deployment
    raise PromotionError(f"{wanted} is not in the config file")


def pinned_versions(config: Path) -> dict[str, str | None]:
    """What the config pins for each model (None: the newest version in the registry)."""
    _, doc = _load(config)
    out: dict[str, str | None] = {}
    for name in DEPLOYMENT_OF:
        versions = (_deployment(doc, name).get("user_config") or {}).get("versions") or {}
        out[name] = versions.get(name)
    return out


def _write(config: Path, header: list[str], doc: dict[str, Any]) -> None:
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    tmp = config.with_suffix(".tmp")
    tmp.write_text("\n".join(header) + ("\n" if header else "") + body)
    tmp.replace(config)  # atomic: a crash leaves the old file or the new one


def _history(config: Path) -> list[dict[str, Any]]:
    path = history_path(config)
    return json.loads(path.read_text()) if path.exists() else []


def _set(config: Path, name: str, version: str | None, *, record: bool) -> Change:
    header, doc = _load(config)
    deployment = _deployment(doc, name)
    user_config = deployment.setdefault("user_config", {}) or {}
    deployment["user_config"] = user_config
    versions = user_config.setdefault("versions", {}) or {}
    user_config["versions"] = versions
    previous = versions.get(name)
    if version is None:
        versions.pop(name, None)
    else:
        versions[name] = version
    _write(config, header, doc)
    change = Change(name, previous, version, datetime.now(UTC).isoformat())
    if record:
        history = _history(config)
        history.append(change.__dict__)
        history_path(config).write_text(json.dumps(history, indent=1))
    return change


def promote(
    config: Path,
    registry: ModelRegistry,
    name: str,
    version: str,
    *,
    live_version: str | None = None,
) -> Change:
    """Pin ``name`` to ``version`` (which must load from the registry) in the config.

    When nothing was pinned ("newest"), ``live_version`` (what the running app serves, if
    known) is recorded as the previous version, so a rollback returns to the version that was
    actually serving, not to whatever is newest by then (a new version trained since)."""
    _deployment(yaml.safe_load(config.read_text()), name)
    registry.load(name, version)  # refuses a missing, tampered or incompatible version
    change = _set(config, name, version, record=False)
    if change.previous is None and live_version is not None:
        change = Change(name, live_version, version, change.at)
    history = _history(config)
    history.append(change.__dict__)
    history_path(config).write_text(json.dumps(history, indent=1))
    return change


def rollback(config: Path, name: str) -> Change:
    """Return ``name`` to the version it had before its last promotion."""
    history = _history(config)
    for i in range(len(history) - 1, -1, -1):
        entry = history[i]
        if entry["name"] == name:
            change = _set(config, name, entry["previous"], record=False)
            history_path(config).write_text(json.dumps(history[:i] + history[i + 1 :], indent=1))
            return change
    raise PromotionError(f"no promotion of {name} to roll back (history: {history_path(config)})")
