"""Events through Serve: an acknowledged event survives the ingress replica being killed right
after its 202, a retry is stored once, page views are recorded, and GET /jobs answers."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
import ray
from sqlalchemy import func, select

from fincoach.db.engine import make_engine
from fincoach.db.tables import BehavioralEvent
from tests.integration.conftest import stored

pytestmark = pytest.mark.integration


async def _headers(http: httpx.AsyncClient) -> dict[str, str]:
    email = f"events-{uuid.uuid4().hex[:8]}@example.com"
    r = await http.post("/auth/register", json={"email": email, "password": "pass-word-1"})
    assert r.status_code == 201, r.text
    r = await http.post("/auth/token", data={"username": email, "password": "pass-word-1"})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def _count(url: str, event_id_suffix: str) -> int:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return int(
                await conn.scalar(
                    select(func.count())
                    .select_from(BehavioralEvent)
                    .where(BehavioralEvent.event_id.like(f"%:{event_id_suffix}"))
                )
                or 0
            )
    finally:
        await engine.dispose()


async def _wait_healthy(http: httpx.AsyncClient, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if (await http.get("/health")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    pytest.fail("the app did not come back")


async def test_acknowledged_event_survives_killing_the_ingress(
    http, serve_app, fault_report
) -> None:
    h = await _headers(http)
    event_id = f"crash-{uuid.uuid4().hex[:12]}"
    body = {"event_type": "purchase", "event_id": event_id, "event_data": {"amount": 3.5}}
    r = await http.post("/events", headers=h, json=body)
    assert r.status_code == 202 and r.json()["stored"] is True, r.text
    # Kill the serving process at once, without a graceful shutdown.
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if "CoachIngress" in actor["name"]:
            ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=True)
    found = await _count(serve_app.database_url, event_id)
    fault_report("ingress killed after a 202", sent=1, acknowledged=1, found=found)
    assert found == 1, "an acknowledged event was lost"
    await _wait_healthy(http)
    # The client retries (say, it never saw the 202): stored once.
    again = await http.post("/events", headers=h, json=body)
    assert again.status_code == 202 and again.json()["stored"] is False, again.text
    assert await _count(serve_app.database_url, event_id) == 1


async def test_page_views_and_jobs_through_serve(http, serve_app) -> None:
    h = await _headers(http)
    session = f"s-{uuid.uuid4().hex[:10]}"
    for _ in range(3):
        r = await http.get("/users/me", headers={**h, "X-Session-ID": session})
        assert r.status_code == 200
    engine = make_engine(serve_app.database_url)
    try:
        rows: list = []
        for _ in range(40):
            async with engine.connect() as conn:
                rows = list(
                    (
                        await conn.execute(
                            select(BehavioralEvent.event_data).where(
                                BehavioralEvent.session_id == session
                            )
                        )
                    ).scalars()
                )
            if len(rows) >= 3:
                break
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
    assert len(rows) == 3 and all(r["route"] == "/users/me" for r in rows), rows
    jobs = (await http.get("/jobs")).json()
    assert jobs["scheduler_enabled"] is True
    assert {j["name"] for j in jobs["jobs"]} == {
        "segments",
        "evaluation",
        "peer_snapshot",
        "cache_cleanup",
        "cache_warm",
    }


async def test_whole_app_restart_loses_no_acknowledged_write(http, serve_app, fault_report) -> None:
    """Events stream in while the application is deleted and deployed again. Sent: single
    events from 4 clients; acknowledged: the 202s; found afterwards: every acknowledged one.
    Answers while the app is gone may fail (connection refused, 503/404 from the proxy)."""
    from ray import serve

    from tests.integration.conftest import APP_NAME, deploy_config

    h = await _headers(http)
    tag = uuid.uuid4().hex[:8]
    acked: list[str] = []
    failed = sent = 0
    stop = asyncio.Event()

    async def poster(w: int) -> None:
        nonlocal failed, sent
        n = 0
        while not stop.is_set():
            event_id = f"rs-{tag}-{w}-{n}"
            n += 1
            sent += 1
            try:
                r = await http.post(
                    "/events", headers=h, json={"event_type": "filter", "event_id": event_id}
                )
            except httpx.HTTPError:
                failed += 1
                await asyncio.sleep(0.1)
                continue
            if r.status_code == 202:
                acked.append(event_id)
            else:
                failed += 1
                await asyncio.sleep(0.1)

    tasks = [asyncio.create_task(poster(w)) for w in range(4)]
    await asyncio.sleep(2.0)
    down = time.monotonic()
    await asyncio.to_thread(serve.delete, APP_NAME)
    await asyncio.to_thread(deploy_config, serve_app.args, port=serve_app.port)
    await _wait_healthy(http)
    down_for = time.monotonic() - down
    await asyncio.sleep(2.0)
    stop.set()
    await asyncio.gather(*tasks)
    assert acked, "nothing was acknowledged"
    ids = await stored(
        serve_app.database_url,
        select(BehavioralEvent.event_id).where(BehavioralEvent.event_id.like(f"%:rs-{tag}-%")),
    )
    found = {s.split(":", 1)[1] for s in ids}
    missing = [e for e in acked if e not in found]
    fault_report(
        "events",
        sent=sent,
        acknowledged=len(acked),
        found=len(acked) - len(missing),
        failed_while_down=failed,
        restart_s=round(down_for, 1),
    )
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged events lost"
