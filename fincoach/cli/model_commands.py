"""`fincoach models`: list the registry's versions, promote one live, roll back."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from fincoach.cli.common import (
    DEFAULT_CONFIG,
    ConfigFile,
    ModelDir,
    fail,
    model_dir_of,
)

app = typer.Typer(help="Model versions: list, promote, roll back.", no_args_is_help=True)
ApplyOption = Annotated[
    bool,
    typer.Option(help="Apply the config to the running app (`serve deploy`) after editing it"),
]


def _apply_embedded(config: Path) -> bool:
    """Apply the config to a `fincoach serve` running on its HTTP port (no dashboard there to
    take `serve deploy`): the same deploy step it started with. False if none runs."""
    import json
    import subprocess

    import yaml

    from fincoach.cli import preflight, supervise

    port = int((yaml.safe_load(config.read_text()).get("http_options") or {}).get("port", 8000))
    state = supervise.state_dir(port)
    plan_file = state / supervise.PLAN_FILE
    if preflight.live_supervisor(state) is None or not plan_file.is_file():
        return False
    plan = {**json.loads(plan_file.read_text()), "config": str(config.resolve())}
    result = subprocess.run(
        [sys.executable, plan["runtime"], "deploy", json.dumps(plan)],
        capture_output=True,
        text=True,
        env={**os.environ, **plan["env"]},
    )
    if result.returncode != 0:
        fail(f"applying {config} failed: {result.stderr.strip()[-500:]}")
    typer.echo(f"applied {config} to the running application (fincoach serve on :{port})")
    return True


def _apply(config: Path, address: str) -> None:
    if _apply_embedded(config):
        return
    serve_bin = shutil.which("serve", path=str(Path(sys.executable).parent)) or "serve"
    import subprocess

    # Ray 2.60 starts local clusters with token authentication; its client only sends the token
    # (from ~/.ray/auth_token) when told the mode.
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token")}
    result = subprocess.run(
        [serve_bin, "deploy", str(config), "--address", address],
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode != 0:
        fail(f"serve deploy failed: {result.stderr.strip()[-500:]}")
    typer.echo(f"applied {config} to the running application")


@app.command("list")
def models_list(model_dir: ModelDir = None, config: ConfigFile = DEFAULT_CONFIG) -> None:
    """Every model's versions, newest first, and which one the config selects."""
    from fincoach.training.promotion import pinned_versions
    from models.registry import ModelRegistry

    registry = ModelRegistry(model_dir_of(model_dir))
    pinned = pinned_versions(config)
    for name, pin in pinned.items():
        versions = registry.list_versions(name) if registry.latest_version(name) else []
        selected = pin or (versions[0].version if versions else None)
        typer.echo(
            f"{name}: serving {selected or 'nothing (not trained)'}{'' if pin else ' (newest)'}"
        )
        for m in versions:
            mark = "*" if m.version == selected else " "
            typer.echo(f"  {mark} {m.version}  {m.created_at}")


@app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="Model name, e.g. cql_enhanced")],
    version: Annotated[str, typer.Argument(help="Registry version, e.g. v3")],
    model_dir: ModelDir = None,
    config: ConfigFile = DEFAULT_CONFIG,
    apply: ApplyOption = True,
    address: Annotated[str, typer.Option(help="Ray dashboard address")] = "http://127.0.0.1:8265",
) -> None:
    """Pin NAME to VERSION in serve_config.yaml and apply it (a live swap, no restart)."""
    from fincoach.training.promotion import PromotionError, promote
    from models.registry import ArtifactError, ModelRegistry

    live = _live_version(config, name) if apply else None
    try:
        change = promote(
            config, ModelRegistry(model_dir_of(model_dir)), name, version, live_version=live
        )
    except (PromotionError, ArtifactError) as exc:
        fail(str(exc))
    typer.echo(f"{name}: {change.previous or 'newest'} -> {change.current}")
    if apply:
        _apply(config, address)


def _live_version(config: Path, name: str) -> str | None:
    """The version of ``name`` the running app serves (GET /models on the config's HTTP
    address), or None when the app does not answer."""
    import httpx
    import yaml

    http = (yaml.safe_load(config.read_text()) or {}).get("http_options", {})
    url = f"http://{http.get('host', '127.0.0.1')}:{http.get('port', 8000)}/models"
    try:
        deployments = httpx.get(url, timeout=3).json()["deployments"]
    except (httpx.HTTPError, ValueError, KeyError):
        typer.echo(f"note: {url} did not answer; a rollback will return {name} to 'newest'")
        return None
    for models in deployments.values():
        if isinstance(models, dict) and isinstance(models.get(name), dict):
            version = models[name].get("version")
            return str(version) if version else None
    return None


@app.command("rollback")
def models_rollback(
    name: Annotated[str, typer.Argument(help="Model name, e.g. cql_enhanced")],
    config: ConfigFile = DEFAULT_CONFIG,
    apply: ApplyOption = True,
    address: Annotated[str, typer.Option(help="Ray dashboard address")] = "http://127.0.0.1:8265",
) -> None:
    """Return NAME to the version it had before its last promotion, and apply it."""
    from fincoach.training.promotion import PromotionError, rollback

    try:
        change = rollback(config, name)
    except PromotionError as exc:
        fail(str(exc))
    typer.echo(f"{name}: {change.previous or 'newest'} -> {change.current or 'newest'}")
    if apply:
        _apply(config, address)
