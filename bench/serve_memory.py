"""What `make serve` costs on a laptop: warm start, idle memory per process, and how it stops.

Starts a command (default `make serve`) as the leader of a new process group, as a terminal or a
service manager does, and:
  1. times it from spawn to the first `/health` 200 with "status": "ok" (with the database and
     the models present, that is the warm start);
  2. warms it up (logs demo users in, then requests the enhanced recommendation, the spending
     forecast and /users/me), waits --idle-s seconds, and samples the memory of every process
     the command started (its whole process tree, whatever renamed itself): RSS and PSS from
     /proc, per process and in total;
  3. stops it with --signal (TERM or INT) sent to --target (the process "group", or the "server"
     alone: the `fincoach serve` process), times the stop until every process of the tree is
     gone, and lists what is left: processes and listening ports.

Usage: .venv/bin/python bench/serve_memory.py [--command "make serve"] [--base URL]
       [--idle-s 30] [--signal TERM|INT] [--target group|server] [--json FILE] [--log FILE]
Run it from the repository root with no other `make serve` on the same ports.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
DEMO_PASSWORD = "demo-password"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def label(pid: int) -> str:
    """A short name: the Ray actor or worker title, the program, or python + its script."""
    argv = _cmdline(pid)
    if not argv:
        return "?"
    if argv[0].startswith(("ray::", "ray-dashboard-")):
        return argv[0].split()[0]  # an actor, or one of the dashboard's module processes
    if any("multiprocessing.forkserver" in a for a in argv):
        return "python (dashboard's forkserver)"
    if any(a.endswith(("default_worker.py", "setup_worker.py")) for a in argv):
        return "ray worker (idle, not yet an actor)"
    name = Path(argv[0]).name
    if name.startswith("python") and len(argv) > 1:
        rest = [a for a in argv[1:] if not a.startswith("-")]
        if "-m" in argv:
            return f"python -m {argv[argv.index('-m') + 1]}"
        return f"python {Path(rest[0]).name if rest else ''}".strip()
    if name == "fincoach" and len(argv) > 1:
        return f"fincoach {' '.join(argv[1:2])}"
    return name


def processes() -> dict[int, int]:
    """pid -> parent pid of every live process."""
    return {pid: ppid for pid, (ppid, _) in _stats().items()}


def _stats() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time in clock ticks) of every live process."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _read(f"/proc/{entry}/stat")):
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] != "Z":
                out[int(entry)] = (int(fields[1]), int(fields[19]))
    return out


def identities(pids: list[int]) -> set[tuple[int, int]]:
    """(pid, start time) of live processes: a pid reused later is another process."""
    stats = _stats()
    return {(pid, stats[pid][1]) for pid in pids if pid in stats}


def alive_of(seen: set[tuple[int, int]]) -> set[int]:
    stats = _stats()
    return {pid for pid, start in seen if pid in stats and stats[pid][1] == start}


def descendants(root: int, parents: dict[int, int] | None = None) -> list[int]:
    parents = parents or processes()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root] if root in parents else []
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def memory_kib(pid: int) -> tuple[int, int] | None:
    """(RSS, PSS) in KiB."""
    status, rollup = _read(f"/proc/{pid}/status"), _read(f"/proc/{pid}/smaps_rollup")
    if status is None:
        return None
    rss = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:")), 0)
    pss = 0
    for line in (rollup or "").splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


def listening_ports(pids: set[int]) -> dict[int, list[int]]:
    """Listening TCP ports held by these processes: pid -> ports (from ss)."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    held: dict[int, list[int]] = {}
    for line in out.splitlines():
        cols = line.split()
        port = int(cols[3].rsplit(":", 1)[1])
        for part in line.split("pid=")[1:]:
            pid = int(part.split(",", 1)[0])
            if pid in pids:
                held.setdefault(pid, []).append(port)
    return held


def memory_table(pids: list[int]) -> tuple[list[dict[str, Any]], int, int]:
    rows: list[dict[str, Any]] = []
    for pid in pids:
        if (mem := memory_kib(pid)) is None:
            continue
        rows.append({"pid": pid, "process": label(pid), "rss_kib": mem[0], "pss_kib": mem[1]})
    rows.sort(key=lambda r: -r["rss_kib"])
    return rows, sum(r["rss_kib"] for r in rows), sum(r["pss_kib"] for r in rows)


def grouped_markdown(rows: list[dict[str, Any]]) -> str:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["process"], []).append(r)
    lines = [
        "| process | count | RSS MiB (each) | RSS MiB | PSS MiB |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, rs in sorted(groups.items(), key=lambda kv: -sum(r["rss_kib"] for r in kv[1])):
        each = ", ".join(f"{r['rss_kib'] / 1024:.0f}" for r in rs)
        rss = sum(r["rss_kib"] for r in rs) / 1024
        pss = sum(r["pss_kib"] for r in rs) / 1024
        lines.append(f"| {name} | {len(rs)} | {each} | {rss:.0f} | {pss:.0f} |")
    total_rss = sum(r["rss_kib"] for r in rows) / 1024
    total_pss = sum(r["pss_kib"] for r in rows) / 1024
    lines.append(f"| **total** | {len(rows)} | | **{total_rss:.0f}** | {total_pss:.0f} |")
    return "\n".join(lines)


def health(base: str) -> tuple[int, dict[str, Any] | None]:
    import httpx

    try:
        r = httpx.get(f"{base}/health", timeout=5)
    except httpx.HTTPError:
        return 0, None
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, None


def warm_up(base: str, users: int, rounds: int) -> int:
    import httpx

    done = 0
    with httpx.Client(base_url=base, timeout=30) as c:
        for i in range(1, users + 1):
            r = c.post(
                "/auth/token",
                data={"username": f"demo{i}@demo.fincoach.example", "password": DEMO_PASSWORD},
            )
            r.raise_for_status()
            h = {"Authorization": f"Bearer {r.json()['access_token']}"}
            for _ in range(rounds):
                for path, extra in (
                    ("/coaching/enhanced-recommendation", {"Cache-Control": "no-cache"}),
                    ("/coaching/spending-prediction?weeks=4", {}),
                    ("/users/me", {}),
                ):
                    c.get(path, headers={**h, **extra}).raise_for_status()
                    done += 1
    return done


def server_pid(root: int) -> int:
    """The `fincoach serve` process under the command (the command itself if it is one)."""
    for pid in descendants(root):
        argv = _cmdline(pid)
        if len(argv) >= 2 and Path(argv[0]).name == "fincoach" and argv[1] == "serve":
            return pid
        if len(argv) >= 3 and argv[1].endswith("/fincoach") and argv[2] == "serve":
            return pid
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--command", default="make serve", help="What to run (default: make serve)")
    p.add_argument("--base", default="http://127.0.0.1:8000", help="Where it answers")
    p.add_argument("--start-timeout", type=float, default=300.0)
    p.add_argument("--users", type=int, default=5, help="Demo users in the warm-up")
    p.add_argument("--rounds", type=int, default=10, help="Warm-up rounds per user")
    p.add_argument("--idle-s", type=float, default=30.0, help="Idle time before sampling")
    p.add_argument("--signal", choices=["TERM", "INT"], default="TERM")
    p.add_argument("--target", choices=["group", "server"], default="group")
    p.add_argument("--stop-timeout", type=float, default=120.0)
    p.add_argument("--json", help="Write everything measured to this file")
    p.add_argument(
        "--log",
        default=str(Path(tempfile.gettempdir()) / "fincoach-serve-memory.log"),
        help="The command's output goes here",
    )
    opts = p.parse_args()

    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    print(f"serve_memory {stamp}: `{opts.command}`, load {os.getloadavg()}", flush=True)
    log_path = Path(opts.log)
    log = open(log_path, "w")  # noqa: SIM115 - closed at the end
    t0 = time.monotonic()
    proc = subprocess.Popen(
        shlex.split(opts.command),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    result: dict[str, Any] = {"date": stamp, "command": opts.command, "pid": proc.pid}
    seen: set[tuple[int, int]] = set()
    try:
        last = None
        while True:
            seen.update(identities(descendants(proc.pid)))
            code, body = health(opts.base)
            if code != last:
                print(
                    f"  t={time.monotonic() - t0:5.1f}s /health {code or 'no answer'}", flush=True
                )
                last = code
            if code == 200 and body and body.get("status") == "ok":
                break
            if proc.poll() is not None:
                sys.exit(f"the command exited with {proc.returncode}; see {log_path}")
            if time.monotonic() - t0 > opts.start_timeout:
                sys.exit(f"no /health 200 within {opts.start_timeout:.0f} s")
            time.sleep(0.25)
        result["start_s"] = round(time.monotonic() - t0, 1)
        print(f"/health 200 ok after {result['start_s']} s", flush=True)
        result["warm_up_requests"] = warm_up(opts.base, opts.users, opts.rounds)
        time.sleep(opts.idle_s)
        pids = descendants(proc.pid)
        seen.update(identities(pids))
        rows, rss, pss = memory_table(pids)
        result.update(processes=rows, rss_mib=round(rss / 1024), pss_mib=round(pss / 1024))
        result["load_at_sample"] = os.getloadavg()
        print(
            f"\nidle {opts.idle_s:.0f} s after {result['warm_up_requests']} warm-up requests, "
            f"load {os.getloadavg()}:\n"
        )
        print(grouped_markdown(rows))
        ports = listening_ports(set(pids))
        result["ports"] = {label(k): v for k, v in ports.items()}
        print(f"\nlistening: {result['ports']}")
    finally:
        seen.update(identities(descendants(proc.pid)))
        target = proc.pid if opts.target == "group" else server_pid(proc.pid)
        sig = signal.SIGTERM if opts.signal == "TERM" else signal.SIGINT
        t1 = time.monotonic()
        try:
            if opts.target == "group":
                os.killpg(target, sig)
            else:
                os.kill(target, sig)
        except ProcessLookupError:
            pass
        print(f"\nSIG{opts.signal} to the {opts.target} ({target}) ...", flush=True)
        reported = 0.0
        while time.monotonic() - t1 < opts.stop_timeout:
            alive = alive_of(seen)
            if not alive:
                break
            if time.monotonic() - t1 - reported >= 10:
                reported = time.monotonic() - t1
                names = sorted(label(pid) for pid in alive)
                print(f"  t={reported:.0f}s still alive: {names}", flush=True)
            time.sleep(0.2)
        proc.poll()
        alive = alive_of(seen)
        result["stop_s"] = round(time.monotonic() - t1, 1)
        result["left"] = {pid: label(pid) for pid in alive}
        result["left_ports"] = {label(k): v for k, v in listening_ports(alive).items()}
        print(
            f"stopped in {result['stop_s']} s; left: {result['left'] or 'nothing'}"
            f"{'; ports ' + str(result['left_ports']) if result['left_ports'] else ''}"
        )
        log.close()
        if opts.json:
            Path(opts.json).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
