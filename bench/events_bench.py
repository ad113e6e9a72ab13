"""Benchmark: behavioral event ingestion on PostgreSQL, side by side in one run.

  http-single   POST /events, one event per request, C concurrent clients, against the app under
                uvicorn (one worker), once with group commit (FINCOACH_EVENT_BATCH_SIZE=10, the
                default) and once with commit-per-event (FINCOACH_EVENT_BATCH_SIZE=1);
  http-batch    POST /events/batch with 500 events per request (group commit);
  write-path    the EventBatcher alone (no HTTP), C concurrent submitters, batch size 10 vs 1.

Each measurement is repeated (--repeat, alternating the modes) and the median reported; after
each one the rows in the database are counted against the 202s received (nothing lost, nothing
doubled). Targets: group commit >= 5x commit-per-event for single-event POSTs; >= 2,000 events/s
through /events/batch.

Usage: .venv/bin/python bench/events_bench.py [--postgres URL] [--duration 10] [--concurrency 32]
       [--repeat 3] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fincoach.cli.preflight import spare_port  # noqa: E402

PYTHON = sys.executable
FINCOACH = str(Path(sys.executable).parent / "fincoach")
SECRET = "events-bench-secret-" + "e" * 32
USERS = 20


async def make_database(admin_url: str) -> tuple[str, str]:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    name = f"fincoach_events_bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), name


async def drop_database(admin_url: str, name: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


async def make_users(url: str) -> list[int]:
    from sqlalchemy import insert

    from fincoach.db.engine import make_engine
    from fincoach.db.tables import User, UserProfile

    engine = make_engine(url)
    async with engine.begin() as conn:
        ids = list(
            (
                await conn.execute(
                    insert(User).returning(User.id),
                    [
                        {"email": f"ev{i}@bench.example", "hashed_password": "x"}
                        for i in range(USERS)
                    ],
                )
            ).scalars()
        )
        await conn.execute(insert(UserProfile), [{"user_id": i} for i in ids])
    await engine.dispose()
    return ids


async def count_events(url: str) -> int:
    from sqlalchemy import func, select

    from fincoach.db.engine import make_engine
    from fincoach.db.tables import BehavioralEvent

    engine = make_engine(url)
    async with engine.connect() as conn:
        n = int(await conn.scalar(select(func.count()).select_from(BehavioralEvent)) or 0)
    await engine.dispose()
    return n


def app_env(url: str, model_dir: str, batch_size: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINCOACH_")}
    env.update(
        {
            "FINCOACH_DATABASE_URL": url,
            "FINCOACH_MODEL_DIR": model_dir,
            "FINCOACH_ENV": "test",
            "FINCOACH_JWT_SECRET": SECRET,
            "FINCOACH_JOBS_ENABLED": "false",
            "FINCOACH_RATE_LIMIT_PER_MINUTE": "0",  # 20 users posting hundreds of events/s
            "FINCOACH_EVENT_BATCH_SIZE": str(batch_size),
            "FINCOACH_DATABASE_POOL_SIZE": "10",
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


class Server:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = spare_port()
        self.base = f"http://127.0.0.1:{self.port}"
        code = (
            "import uvicorn; from fincoach.http.app import create_app; "
            "from fincoach.config import get_settings; "
            f"uvicorn.run(create_app(get_settings()), host='127.0.0.1', port={self.port}, "
            "log_level='warning', access_log=False)"
        )
        self.proc = subprocess.Popen([PYTHON, "-c", code], env=env, cwd=ROOT)

    def wait(self) -> None:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def http_load(
    base: str, tokens: list[str], *, concurrency: int, seconds: float, batch: int
) -> tuple[int, float, list[float]]:
    """(events acknowledged, seconds, request latencies)."""
    import httpx

    acked = 0
    lat: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        start = time.perf_counter()
        end = start + seconds

        async def worker(w: int) -> None:
            nonlocal acked
            h = {"Authorization": f"Bearer {tokens[w % len(tokens)]}"}
            while time.perf_counter() < end:
                now = datetime.now(UTC).isoformat()
                t0 = time.perf_counter()
                if batch == 1:
                    r = await client.post(
                        "/events",
                        headers=h,
                        json={"event_type": "search", "timestamp": now, "event_data": {"q": "x"}},
                    )
                else:
                    r = await client.post(
                        "/events/batch",
                        headers=h,
                        json={
                            "events": [
                                {"event_type": "search", "timestamp": now, "event_data": {"i": i}}
                                for i in range(batch)
                            ]
                        },
                    )
                lat.append(time.perf_counter() - t0)
                if r.status_code != 202:
                    raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
                acked += batch
            return None

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return acked, time.perf_counter() - start, lat


async def write_path(
    url: str, user_ids: list[int], batch_size: int, *, concurrency: int, seconds: float
) -> tuple[int, float]:
    from fincoach.db.engine import make_engine
    from fincoach.tracking.batcher import EventBatcher

    engine = make_engine(url, pool_size=10)
    batcher = EventBatcher(engine, batch_size=batch_size)
    done = 0
    start = time.perf_counter()
    end = start + seconds

    async def worker(w: int) -> None:
        nonlocal done
        uid = user_ids[w % len(user_ids)]
        while time.perf_counter() < end:
            await batcher.submit(
                [
                    {
                        "event_id": f"{uid}:{uuid.uuid4().hex}",
                        "user_id": uid,
                        "event_type": "search",
                        "event_data": {"q": "x"},
                        "session_id": None,
                        "timestamp": datetime.now(UTC),
                    }
                ]
            )
            done += 1

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    took = time.perf_counter() - start
    await batcher.close()
    await engine.dispose()
    return done, took


def main() -> None:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[2:]),
    )
    p.add_argument(
        "--postgres",
        default=os.environ.get(
            "FINCOACH_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    p.add_argument("--duration", type=float, default=10.0, help="Seconds per measurement")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--model-dir", help="Trained registry (default: train a quick one)")
    opts = p.parse_args()

    from pydantic import SecretStr

    from fincoach.config import Settings
    from fincoach.db.migrate import upgrade
    from fincoach.usecases.passwords import create_access_token

    work = Path(tempfile.mkdtemp(prefix="fincoach-events-bench-"))
    model_dir = opts.model_dir
    if model_dir is None:
        model_dir = str(work / "artifacts")
        subprocess.run(
            [FINCOACH, "train", "--quick", "--no-db", "--model-dir", model_dir],
            check=True,
            capture_output=True,
        )
    url, name = asyncio.run(make_database(opts.postgres))
    print(
        f"events_bench {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {os.cpu_count()} CPUs, "
        f"PostgreSQL database {name}, C={opts.concurrency}, {opts.duration:g} s x "
        f"{opts.repeat} per mode",
        flush=True,
    )
    results: dict[str, list[float]] = {}
    try:
        upgrade(url)
        user_ids = asyncio.run(make_users(url))
        settings = Settings(jwt_secret=SecretStr(SECRET), env="test")
        tokens = [create_access_token(uid, settings) for uid in user_ids]
        for rep in range(opts.repeat):
            for mode, batch_size, per_request in (
                ("http-single commit-per-event", 1, 1),
                ("http-single group-commit", 10, 1),
                ("http-batch (500/request) group-commit", 10, 500),
            ):
                server = Server(app_env(url, model_dir, batch_size))
                try:
                    server.wait()
                    before = asyncio.run(count_events(url))
                    conc = opts.concurrency if per_request == 1 else 4
                    acked, took, lat = asyncio.run(
                        http_load(
                            server.base,
                            tokens,
                            concurrency=conc,
                            seconds=opts.duration,
                            batch=per_request,
                        )
                    )
                finally:
                    server.stop()
                stored = asyncio.run(count_events(url)) - before
                if stored != acked:
                    raise SystemExit(f"{mode}: {acked} acknowledged but {stored} stored")
                rate = acked / took
                results.setdefault(mode, []).append(rate)
                p50 = statistics.median(lat) * 1000
                print(
                    f"[{rep + 1}] {mode}: {rate:,.0f} events/s ({acked} acknowledged = "
                    f"{stored} stored), request p50 {p50:.1f} ms",
                    flush=True,
                )
            for batch_size in (1, 10):
                mode = f"write-path batch_size={batch_size}"
                before = asyncio.run(count_events(url))
                done, took = asyncio.run(
                    write_path(
                        url,
                        user_ids,
                        batch_size,
                        concurrency=opts.concurrency,
                        seconds=opts.duration,
                    )
                )
                stored = asyncio.run(count_events(url)) - before
                if stored != done:
                    raise SystemExit(f"{mode}: {done} acknowledged but {stored} stored")
                results.setdefault(mode, []).append(done / took)
                print(f"[{rep + 1}] {mode}: {done / took:,.0f} events/s", flush=True)
    finally:
        asyncio.run(drop_database(opts.postgres, name))

    med = {k: statistics.median(v) for k, v in results.items()}
    print("\n| mode | events/s (median) | runs |\n| --- | --- | --- |")
    for k, v in results.items():
        print(f"| {k} | {med[k]:,.0f} | {', '.join(f'{x:,.0f}' for x in v)} |")
    single = med["http-single group-commit"] / med["http-single commit-per-event"]
    path = med["write-path batch_size=10"] / med["write-path batch_size=1"]
    batch = med["http-batch (500/request) group-commit"]
    print(
        f"\ngroup commit / commit-per-event, single-event POSTs: {single:.2f}x (target >= 5x: "
        f"{'met' if single >= 5 else 'MISSED'})"
    )
    print(f"group commit / commit-per-event, write path alone: {path:.2f}x")
    print(
        f"/events/batch: {batch:,.0f} events/s (target >= 2,000: "
        f"{'met' if batch >= 2000 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
