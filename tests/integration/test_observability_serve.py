"""Observability through Serve: the client's X-Request-ID is the request id of the ingress's and
the model deployments' log lines, and our custom metrics reach Ray's metrics export port."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import demo_logins

pytestmark = pytest.mark.integration
USER_OFFSET = 700  # users of their own: other modules load demo1@... upwards
MODEL_DEPLOYMENTS = ("SegmentationDeployment", "ForecastingDeployment", "RecommenderDeployment")
METRICS_TIMEOUT_S = 90  # Ray's workers report every 10 s by default, then the agent exports


@pytest.fixture(scope="module")
async def user_headers(serve_url: str, serve_db_url: str) -> dict[str, str]:
    """A simulated user with 16 weeks of history, logged in."""
    return (await demo_logins(serve_url, serve_db_url, users=2, seed=31, first_index=USER_OFFSET))[
        0
    ]


def _serve_log_dir() -> Path:
    """This session's Serve log directory (``<temp dir>/session_latest/logs/serve``)."""
    import ray

    node = ray._private.worker._global_node  # the driver shares the node: same session dir
    return Path(node.get_logs_dir_path()) / "serve"


def _files_mentioning(text: str, pattern: str) -> list[str]:
    found = []
    for path in _serve_log_dir().glob(pattern):
        try:
            if text in path.read_text(errors="replace"):
                found.append(path.name)
        except OSError:
            continue
    return found


async def _wait_for_logs(request_id: str, timeout_s: float = 20) -> tuple[list[str], list[str]]:
    """(ingress log files, model deployment log files) that mention ``request_id``."""
    deadline = time.monotonic() + timeout_s
    while True:
        ingress = _files_mentioning(request_id, "replica_*CoachIngress*.log")
        models = [
            name
            for deployment in MODEL_DEPLOYMENTS
            for name in _files_mentioning(request_id, f"replica_*{deployment}*.log")
        ]
        if (ingress and models) or time.monotonic() > deadline:
            return ingress, models
        await asyncio.sleep(0.5)


async def test_request_id_follows_the_request_into_the_model_deployments(
    http: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    request_id = f"test-req-{uuid.uuid4().hex}"
    r = await http.get(
        "/coaching/enhanced-recommendation",
        headers={**user_headers, "X-Request-ID": request_id},
    )
    assert r.status_code == 200, r.text
    assert r.headers.get_list("x-request-id") == [request_id]  # sent back once, by the proxy
    ingress, models = await _wait_for_logs(request_id)
    assert ingress, f"no CoachIngress log under {_serve_log_dir()} mentions {request_id}"
    assert models, f"no model deployment log under {_serve_log_dir()} mentions {request_id}"


async def test_under_serve_the_app_keeps_serves_id_even_one_it_would_refuse(
    http: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    """In-process the app replaces ids outside [A-Za-z0-9._-]{8,64}; under Serve, whose proxy
    has already logged and sent back the client's id, the app keeps it, so that the proxy, the
    ingress, the model deployments and the problem bodies all carry one id."""
    odd = f"odd id {uuid.uuid4().hex[:8]}"
    r = await http.get(
        "/coaching/enhanced-recommendation",
        headers={**user_headers, "X-Request-ID": odd, "Cache-Control": "no-cache"},
    )
    assert r.status_code == 200, r.text
    assert r.headers.get_list("x-request-id") == [odd]
    ingress, models = await _wait_for_logs(odd)
    assert ingress and models, (ingress, models)
    missing = await http.get(
        "/goals/2147483000", headers={**user_headers, "X-Request-ID": odd + "-2"}
    )
    assert missing.status_code == 404 and missing.json()["request_id"] == odd + "-2"


def _metrics_urls() -> list[str]:
    """Each live node's metrics export endpoint (ray.nodes(), as Ray's docs describe)."""
    import ray

    return [
        f"http://{n['NodeManagerAddress']}:{n['MetricsExportPort']}/metrics"
        for n in ray.nodes()
        if n.get("Alive") and n.get("MetricsExportPort")
    ]


def _line(body: str, metric: str, **labels: str) -> str | None:
    for line in body.splitlines():
        if line.startswith(metric + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return line
    return None


async def test_custom_metrics_are_exported_on_rays_metrics_port(
    http: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    r = await http.get(
        "/coaching/enhanced-recommendation", headers={**user_headers, "Cache-Control": "no-cache"}
    )
    assert r.status_code == 200, r.text
    urls = _metrics_urls()
    assert urls, "no node exports metrics"
    wanted = {
        # Recorded in a model replica: Serve adds the deployment tag.
        "latency": (
            "ray_fincoach_model_latency_seconds_count",
            {"model": "cql_enhanced", "deployment": "RecommenderDeployment"},
        ),
        # Recorded in the ingress replica.
        "cache": (
            "ray_fincoach_cache_misses_total",
            {"prediction_type": "recommendation", "deployment": "CoachIngress"},
        ),
    }
    found: dict[str, str] = {}
    deadline = time.monotonic() + METRICS_TIMEOUT_S
    async with httpx.AsyncClient(timeout=10) as scraper:
        while len(found) < len(wanted) and time.monotonic() < deadline:
            for url in urls:
                try:
                    body = (await scraper.get(url)).text
                except httpx.HTTPError:
                    continue
                for key, (metric, labels) in wanted.items():
                    line = _line(body, metric, **labels)
                    if line is not None:
                        found[key] = line
            if len(found) < len(wanted):
                await asyncio.sleep(2)
    assert set(found) == set(wanted), f"after {METRICS_TIMEOUT_S} s on {urls}: found {found}"
