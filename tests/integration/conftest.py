"""One Ray cluster and one Serve instance for the whole test session, spoken to over HTTP.

The application is deployed once per database backend (SQLite always, PostgreSQL when
configured), each with its own database and its own bandit actor, so every integration test
runs against both."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Select

from fincoach.cli.preflight import spare_port
from fincoach.db.engine import make_engine
from tests.conftest import BACKENDS, OPS_TOKEN, load_recent_users, migrated_database

APP_NAME = "fincoach"
WEB_CLIENT_ORIGIN = "http://localhost:5173"
SERVE_CONFIG = Path(__file__).resolve().parents[2] / "serve_config.yaml"


@dataclass(frozen=True)
class ServeApp:
    url: str
    port: int
    database_url: str
    backend: str
    args: dict[str, Any]

    @property
    def bandit_actor(self) -> str:
        return str(self.args["bandit_actor"])


@pytest.fixture(scope="session")
def serve_port(trained_models: str) -> Iterator[int]:
    """Ray (2 CPUs) and Serve on a free port, started once and shut down at the end."""
    import ray
    from ray import serve

    env = {
        "FINCOACH_ENV": "test",
        "FINCOACH_CORS_ORIGINS": WEB_CLIENT_ORIGIN,
        "FINCOACH_JWT_SECRET": "integration-secret-" + "z" * 32,
        "FINCOACH_OPS_TOKEN": OPS_TOKEN,
        "FINCOACH_PASSWORD_HASH_TIME_COST": "1",
        "FINCOACH_PASSWORD_HASH_MEMORY_KIB": "1024",
        "FINCOACH_MODEL_DIR": trained_models,
    }
    ray.init(
        num_cpus=2,
        namespace="fincoach-test",
        include_dashboard=False,
        runtime_env={"env_vars": env},
        log_to_driver=os.environ.get("FINCOACH_TEST_RAY_LOGS") == "1",
    )
    port = spare_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield port
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="session", params=BACKENDS)
async def serve_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """The served application's own database (not shared with the in-process tests)."""
    async for url in migrated_database(request.param, tmp_path_factory):
        yield url


def deploy_config(
    args: Mapping[str, Any],
    *,
    port: int,
    versions: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Deploy serve_config.yaml's application as ``serve deploy`` does (its replicas, sizing,
    autoscaling and user_config), with ``args`` over its ``args:`` and ``versions`` (by
    deployment name) as the deployments' ``user_config.versions``; returns once it runs."""
    import yaml
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load(SERVE_CONFIG.read_text())
    config["http_options"] = {**config.get("http_options", {}), "port": port}
    (app,) = config["applications"]
    app["args"] = {**app.get("args", {}), **args}
    for deployment in app["deployments"]:
        if versions and deployment["name"] in versions:
            deployment["user_config"] = {"versions": dict(versions[deployment["name"]])}
    client = _get_global_client()
    assert client is not None, "Serve is not running"
    client.deploy_apps(ServeDeploySchema.model_validate(config), _blocking=True)


@pytest.fixture(scope="session")
def serve_app(
    serve_port: int,
    serve_db_url: str,
    trained_models: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServeApp]:
    """The application deployed against one backend; replaced when the backend changes.

    It gets its own copy of the trained registry, so versions a test promotes stay its own."""
    import shutil

    import ray
    from ray import serve

    from actors.bandit_stats import NAMESPACE

    backend = "postgresql" if serve_db_url.startswith("postgresql") else "sqlite"
    model_dir = tmp_path_factory.mktemp(f"serve-models-{backend}") / "artifacts"
    shutil.copytree(trained_models, model_dir)
    args = {
        "model_dir": str(model_dir),
        "database_url": serve_db_url,
        "bandit_actor": f"bandit-stats-test-{backend}",
    }
    deploy_config(args, port=serve_port)
    base = f"http://127.0.0.1:{serve_port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        pytest.fail(f"Serve app on {backend} did not become healthy within 60 s")
    try:
        yield ServeApp(base, serve_port, serve_db_url, backend, args)
    finally:
        serve.delete(APP_NAME)
        try:  # detached: it outlives the app unless killed
            ray.kill(ray.get_actor(args["bandit_actor"], namespace=NAMESPACE))
        except ValueError:
            pass


@pytest.fixture(scope="session")
def serve_url(serve_app: ServeApp) -> str:
    return serve_app.url


@pytest.fixture
async def http(serve_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=serve_url, timeout=30, headers={"X-Ops-Token": OPS_TOKEN}
    ) as client:
        yield client


async def stored(database_url: str, statement: Select[Any]) -> set[Any]:
    """What a one-column query finds in the app's database now (a fresh engine of its own)."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            return set((await conn.scalars(statement)).all())
    finally:
        await engine.dispose()


async def demo_logins(
    serve_url: str, database_url: str, *, users: int, seed: int, first_index: int = 0
) -> list[dict[str, str]]:
    """Simulated users with 16 weeks of history ending this week, loaded into the app's
    database and logged in through Serve: their Authorization headers."""
    from fincoach.config import Settings
    from fincoach.training.demo_data import DEMO_PASSWORD, demo_email

    cheap = Settings(password_hash_time_cost=1, password_hash_memory_kib=1024)
    engine = make_engine(database_url)
    try:
        await load_recent_users(
            engine, cheap, users=users, weeks=16, seed=seed, first_index=first_index
        )
    finally:
        await engine.dispose()
    headers = []
    async with httpx.AsyncClient(base_url=serve_url, timeout=30) as client:
        for i in range(first_index, first_index + users):
            r = await client.post(
                "/auth/token", data={"username": demo_email(i), "password": DEMO_PASSWORD}
            )
            assert r.status_code == 200, r.text
            headers.append({"Authorization": f"Bearer {r.json()['access_token']}"})
    return headers
