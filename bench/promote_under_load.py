"""A live model swap under load: `fincoach models promote` while requests stream.

Against a running `make serve` (http://127.0.0.1:8000 by default): logs in demo users, streams
GET /coaching/recommendation (the legacy CQL, uncached) from C concurrent clients, runs
`fincoach models promote NAME VERSION` after a few seconds (and, with --rollback,
`fincoach models rollback NAME` later), and reports every status seen, the model versions that
answered in order, and what GET /models says at the end. Exit 1 on any failed request.

Usage: .venv/bin/python bench/promote_under_load.py --version v2 [--name cql_legacy]
       [--rollback] [--seconds 30] [--concurrency 4] [--base http://127.0.0.1:8000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

FINCOACH = str(Path(sys.executable).parent / "fincoach")
USERS = 40


async def main(opts: argparse.Namespace) -> int:
    async with httpx.AsyncClient(base_url=opts.base, timeout=30) as client:
        headers = []
        # Spread over 40 users: each stays well under the per-user rate limit (600/min).
        for i in range(1, USERS + 1):
            r = await client.post(
                "/auth/token",
                data={"username": f"demo{i}@demo.fincoach.example", "password": "demo-password"},
            )
            r.raise_for_status()
            headers.append({"Authorization": f"Bearer {r.json()['access_token']}"})
        statuses: Counter[str] = Counter()
        versions: list[tuple[float, str]] = []
        fallbacks = 0
        start = time.monotonic()
        end = start + opts.seconds

        async def worker(w: int) -> None:
            nonlocal fallbacks
            i = w
            while time.monotonic() < end:
                try:
                    r = await client.get("/coaching/recommendation", headers=headers[i % USERS])
                    statuses[str(r.status_code)] += 1
                    if r.status_code == 200:
                        body = r.json()
                        versions.append((time.monotonic() - start, body["model_version"]))
                        fallbacks += body["fallback"]
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                i += opts.concurrency

        async def operator() -> list[str]:
            log = []
            await asyncio.sleep(opts.seconds * 0.25)
            commands = [["promote", opts.name, opts.version]]
            if opts.rollback:
                commands.append(["rollback", opts.name])
            for args in commands:
                t0 = time.monotonic() - start
                done = await asyncio.to_thread(
                    subprocess.run, [FINCOACH, "models", *args], capture_output=True, text=True
                )
                log.append(
                    f"t={t0:.1f}s fincoach models {' '.join(args)} -> exit {done.returncode} "
                    f"({time.monotonic() - start - t0:.1f} s): {done.stdout.strip()[-200:]}"
                    f"{done.stderr.strip()[-300:]}"
                )
                await asyncio.sleep(opts.seconds * 0.3)
            return log

        results = await asyncio.gather(operator(), *(worker(w) for w in range(opts.concurrency)))
        # /models answers only the operations token (FINCOACH_OPS_TOKEN of the server).
        ops = {"X-Ops-Token": os.environ.get("FINCOACH_OPS_TOKEN", "")}
        models = (await client.get("/models", headers=ops)).json()
    log: list[str] = results[0] or []
    print("\n".join(log))
    total = sum(statuses.values())
    print(f"requests: {total}, statuses: {dict(statuses)}, fallbacks: {fallbacks}")
    runs: list[tuple[str, float, float, int]] = []
    for t, v in sorted(versions):
        if runs and runs[-1][0] == v:
            runs[-1] = (v, runs[-1][1], t, runs[-1][3] + 1)
        else:
            runs.append((v, t, t, 1))
    print(
        "versions answering, in order: "
        + ", ".join(f"{v} ({n} answers, t={a:.1f}-{b:.1f}s)" for v, a, b, n in runs)
    )
    slot = models["deployments"]["RecommenderDeployment"][opts.name]
    print(f"GET /models: {opts.name} = {slot['version']}, last swap: {slot['last_swap']}")
    failed = total - statuses["200"]
    print(f"failed requests: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[2:]),
    )
    p.add_argument("--base", default="http://127.0.0.1:8000")
    p.add_argument("--name", default="cql_legacy")
    p.add_argument("--version", required=True)
    p.add_argument("--rollback", action="store_true")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--concurrency", type=int, default=4)
    sys.exit(asyncio.run(main(p.parse_args())))
