"""Benchmark: `fincoach demo-data` load time (target: 1,000 users x 52 weeks < 60 s, SQLite).

Runs the real CLI several times into fresh databases and prints each wall time and the median.
Usage: .venv/bin/python bench/demo_load.py [--users 1000 --weeks 52 --repeat 3 --postgres URL]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

FINCOACH = str(Path(sys.executable).parent / "fincoach")


def run_once(url: str, users: int, weeks: int) -> tuple[float, str]:
    args = [
        FINCOACH,
        "demo-data",
        "--users",
        str(users),
        "--weeks",
        str(weeks),
        "--seed",
        "1",
        "--start",
        "2025-11-24",
        "--quiet",
        "--database-url",
        url,
    ]
    started = time.perf_counter()
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - started, out.splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", help="admin URL of a PostgreSQL server to measure as well")
    opts = parser.parse_args()
    targets: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(opts.repeat):
            targets.append(("sqlite", f"sqlite+aiosqlite:///{tmp}/load{i}.db"))
        results: dict[str, list[float]] = {}
        for backend, url in targets:
            seconds, line = run_once(url, opts.users, opts.weeks)
            results.setdefault(backend, []).append(seconds)
            print(f"{backend}: {seconds:.1f} s  {line}")
        if opts.postgres:
            import asyncio

            from sqlalchemy import text
            from sqlalchemy.engine import make_url
            from sqlalchemy.ext.asyncio import create_async_engine

            async def admin(sql: str) -> None:
                engine = create_async_engine(opts.postgres, isolation_level="AUTOCOMMIT")
                async with engine.connect() as conn:
                    await conn.execute(text(sql))
                await engine.dispose()

            for _ in range(opts.repeat):
                name = f"fincoach_bench_{uuid.uuid4().hex[:8]}"
                asyncio.run(admin(f'CREATE DATABASE "{name}"'))
                try:
                    url = make_url(opts.postgres).set(database=name).render_as_string(False)
                    seconds, line = run_once(url, opts.users, opts.weeks)
                finally:
                    asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))
                results.setdefault("postgresql", []).append(seconds)
                print(f"postgresql: {seconds:.1f} s  {line}")
    for backend, values in results.items():
        print(f"median {backend}: {statistics.median(values):.1f} s over {len(values)} runs")


if __name__ == "__main__":
    main()
