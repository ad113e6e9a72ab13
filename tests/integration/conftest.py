"""One Ray cluster and one Serve application for the whole test session, spoken to over HTTP."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from db.migrate import upgrade


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def serve_db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    db_path: Path = tmp_path_factory.mktemp("serve") / "serve.db"
    url = f"sqlite+aiosqlite:///{db_path}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def serve_url(serve_db_url: str, trained_models: str) -> Iterator[str]:
    """Start Ray (2 CPUs), run the app from deployments.app on a free port, yield its URL."""
    import ray
    from ray import serve

    from deployments.app import build_app

    url = serve_db_url
    env = {
        "FINCOACH_DATABASE_URL": url,
        "FINCOACH_ENV": "test",
        "FINCOACH_JWT_SECRET": "integration-secret-" + "z" * 32,
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
    port = _free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app({"model_dir": trained_models}), name="fincoach", route_prefix="/")
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("Serve app did not become healthy within 60 s")
        yield base
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture
async def http(serve_url: str) -> Iterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=serve_url, timeout=30) as client:
        yield client
