"""What `fincoach serve` checks before it starts: a run already going on this port, what a
killed run left behind (stopped, its stale files removed), which ports are held and by whom;
and ports for servers that are certainly free. Imported by `fincoach serve`, the tests and the
benchmarks; the supervisor (run by path, standard library only) does not need it."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
from pathlib import Path
from typing import Any

from fincoach.cli.supervise import (
    PLAN_FILE,
    RAY_STOP_S,
    RUN_FILE,
    alive,
    cmdline,
    describe,
    prune_sessions,
    terminate,
)


def uses_dir(pid: int, directory: Path) -> bool:
    """Does the process name the directory on its command line, or hold a file in it (Ray's
    workers rename themselves but keep their log files open; HAProxy its config's sockets)?"""
    prefix = str(directory)
    if prefix in cmdline(pid):
        return True
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(prefix):
                    return True
    return False


# --- ports --------------------------------------------------------------------------------------
def _listening_inodes() -> dict[int, set[int]]:
    """Listening TCP sockets: socket inode -> ports."""
    out: dict[int, set[int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[3] == "0A":  # LISTEN
                    out.setdefault(int(cols[9]), set()).add(int(cols[1].rsplit(":", 1)[1], 16))
    return out


def port_holders(ports: set[int]) -> dict[int, set[int]]:
    """port -> pids holding a listening socket on it (any address)."""
    inodes = {i: p & ports for i, p in _listening_inodes().items() if p & ports}
    held: dict[int, set[int]] = {}
    if not inodes:
        return held
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{entry}/fd/{fd}")
                    if link.startswith("socket:[") and int(link[8:-1]) in inodes:
                        for port in inodes[int(link[8:-1])]:
                            held.setdefault(port, set()).add(int(entry))
    # A listening socket nobody maps to a pid (another namespace, no permission): still taken.
    for taken in inodes.values():
        for port in taken:
            held.setdefault(port, set())
    return held


# --- what a killed run left behind --------------------------------------------------------------
def read_run(state: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads((state / RUN_FILE).read_text())
    return None


def live_supervisor(state: Path) -> int | None:
    """The pid of a running supervisor of this state directory, if one is alive."""
    run = read_run(state)
    if run and alive(*run["supervisor"]):
        return int(run["supervisor"][0])
    return None


def clear_leftovers(state: Path) -> list[str]:
    """Stop the processes a dead run left (those its run file recorded, still alive with the
    same start time, and any process using its state directory) and remove its stale files
    (run file, HAProxy's sockets and state, old Ray sessions). Returns what was stopped."""
    run = read_run(state) or {}
    pids = {int(p) for p, t in run.get("processes", []) if alive(int(p), int(t))}
    if state.is_dir():
        me = os.getpid()
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != me and uses_dir(int(entry), state):
                pids.add(int(entry))
    stopped = [describe(pid) for pid in sorted(pids)]
    if pids:
        terminate(sorted(pids), RAY_STOP_S)
    for name in (RUN_FILE, PLAN_FILE):
        with contextlib.suppress(FileNotFoundError):
            (state / name).unlink()
    shutil.rmtree(state / "hap", ignore_errors=True)
    prune_sessions(state / "ray")
    return stopped


def busy_ports(ports: set[int]) -> list[str]:
    """A line per port of ``ports`` something listens on, naming the process."""
    lines = []
    for port, pids in sorted(port_holders(ports).items()):
        who = ", ".join(describe(p) for p in sorted(pids)) or "a process this user cannot see"
        lines.append(f"port {port} is held by {who}")
    return lines


SPARE_PORTS_FROM = 20000  # above Ray's worker ports (10002-19999 by default)


def spare_port() -> int:
    """A TCP port free on every address, below the kernel's ephemeral range.

    A port from bind(0) comes from the ephemeral range, where every outgoing connection and
    every bind(0) of Ray's own daemons also take theirs: it can be taken again between the
    choice and a server binding it (HAProxy's stats port was, in CI). Below that range only a
    server asking for that very port can take it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    candidates = list(range(SPARE_PORTS_FROM, max(low, SPARE_PORTS_FROM + 1000)))
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {SPARE_PORTS_FROM} and {low}")
