"""The process `fincoach serve` becomes once the database and the models are ready.

It owns everything it starts, and its stop:
- it is a child subreaper (Linux), so every process of the run stays its descendant: the Ray
  head's daemons, the workers, HAProxy, even when their parent dies first;
- the Ray head runs in a session of its own, so a signal to the caller's process group (a
  terminal closing, a service manager's stop, Ctrl-C) reaches this process only, and this
  process stops the rest in order: Serve (replicas drain, HAProxy goes), then Ray, then
  whatever is left, each step bounded;
- SIGINT is handled even when the caller ignored it (a background job of a shell);
- it keeps a run file (the process identities of the run) in its state directory, so the next
  start finds and clears what a killed run left behind, or says what else holds a port.

Standard library only, and run by path (``python .../supervise.py PLAN_JSON``): this process
idles beside the cluster for the whole run and stays small. The checks before a start (a run
already there, leftovers, busy ports) are in preflight.py, which imports from here.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"
PLAN_FILE = "plan.json"  # how this run was started: `fincoach models promote` re-applies with it
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
SERVE_STOP_S = 20.0  # serve.shutdown: replicas drain, HAProxy and the controller stop
RAY_STOP_S = 5.0  # SIGTERM to the Ray processes, then SIGKILL
LAUNCH_S = 180.0
IDLE_CHECK_S = 2.0  # how often a running supervisor records the run and checks Ray is up
KEEP_SESSIONS = 2  # Ray session directories (logs) kept from earlier runs


def log(message: str) -> None:
    print(f"[fincoach serve] {message}", flush=True)


def state_dir(port: int) -> Path:
    """Where a run on this HTTP port keeps Ray's temp dir, HAProxy's files and the run file."""
    # Short: HAProxy's admin socket path under it must fit a Unix socket address (108 bytes).
    return Path(tempfile.gettempdir()) / f"fincoach-{port}"


# --- processes ----------------------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, start time in clock ticks, state) of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[19]), fields[0]


def start_time(pid: int) -> int | None:
    st = _stat(pid)
    return None if st is None or st[2] == "Z" else st[1]


def alive(pid: int, started: int) -> bool:
    return start_time(pid) == started


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def program(pid: int) -> str:
    """The base name of the program a process runs (its first command-line word)."""
    return cmdline(pid).split(" ", 1)[0].rsplit("/", 1)[-1]


def describe(pid: int) -> str:
    text = cmdline(pid) or "?"
    return f"pid {pid} ({text[:120]}{'...' if len(text) > 120 else ''})"


def _all_stats() -> dict[int, tuple[int, int, str]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            out[int(entry)] = st
    return out


def descendants(root: int) -> list[int]:
    """Every live process below root (not root itself)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, state) in _all_stats().items():
        if state != "Z":
            children.setdefault(ppid, []).append(pid)
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def terminate(pids: list[int], grace_s: float) -> list[int]:
    """SIGTERM, then SIGKILL after grace_s whatever is still there. Returns the killed pids."""
    ident = {pid: t for pid in pids if (t := start_time(pid)) is not None}
    for pid in ident:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(p, t) for p, t in ident.items()):
        reap()
        time.sleep(0.1)
    killed = [p for p, t in ident.items() if alive(p, t)]
    for pid in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    reap()
    return killed


def reap() -> None:
    """Collect exited children (orphans adopted as subreaper included)."""
    with contextlib.suppress(ChildProcessError):
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return


def prune_sessions(ray_dir: Path) -> None:
    """Keep the newest Ray sessions' logs; the rest (and every stale socket) goes."""
    if not ray_dir.is_dir():
        return
    sessions = sorted(
        (p for p in ray_dir.glob("session_2*") if p.is_dir()), key=lambda p: p.stat().st_mtime
    )
    for old in sessions[:-KEEP_SESSIONS]:
        shutil.rmtree(old, ignore_errors=True)
    for kept in sessions[-KEEP_SESSIONS:]:
        shutil.rmtree(kept / "sockets", ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (ray_dir / "ray_current_cluster").unlink()


# --- the launch, started before the supervisor takes over ------------------------------------
class Interrupted(BaseException):
    """A stop signal while `fincoach serve` prepares (before it becomes the supervisor)."""


def _interrupt(signum: int, _frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


def start_launcher(plan: dict[str, Any]) -> dict[str, int]:
    """Make this process a child subreaper (every process of the run stays its descendant,
    across the exec into the supervisor), trap the stop signals, and start runtime.py's launch
    step in a session of its own: it starts the Ray head at once and deploys when the
    supervisor writes a line to the returned fd. Returns {"pid", "fd"}."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, plan["runtime"], "launch", json.dumps(plan)],
        env={**os.environ, **plan["env"]},
        start_new_session=True,
        stdin=read_fd,
    )
    os.close(read_fd)
    os.set_inheritable(write_fd, True)
    return {"pid": proc.pid, "fd": write_fd}


def stop_descendants() -> None:
    """Stop everything this process started (the launch did not reach the supervisor)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    for _ in range(3):
        left = descendants(os.getpid())
        if not left:
            return
        terminate(left, RAY_STOP_S)


# --- the supervisor -----------------------------------------------------------------------------
class Supervisor:
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.state = Path(plan["state_dir"])
        self.stop_signal: int | None = None
        self.me = (os.getpid(), start_time(os.getpid()))

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
            log(f"{signal.Signals(signum).name}: stopping")

    def _record(self, pids: list[int] | None = None) -> None:
        """The run file: this process and every process of the run (pid, start time)."""
        pids = descendants(os.getpid()) if pids is None else pids
        procs = [[p, t] for p in pids if (t := start_time(p)) is not None]
        run = {"supervisor": list(self.me), "port": self.plan["port"], "processes": procs}
        tmp = self.state / f"{RUN_FILE}.tmp"
        tmp.write_text(json.dumps(run))
        tmp.replace(self.state / RUN_FILE)

    def _runtime(self, step: str, timeout_s: float) -> int | None:
        """Run a step of runtime.py in its own session (group signals do not reach it).
        Returns its exit code (None: timed out)."""
        proc = subprocess.Popen(
            [sys.executable, self.plan["runtime"], step, json.dumps(self.plan)],
            env={**os.environ, **self.plan["env"]},
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None:
            if time.monotonic() > deadline:
                terminate([proc.pid], 3.0)
                proc.wait()
                return None
            self._record()
            time.sleep(0.2)
        return proc.returncode

    def _launched(self) -> int | None:
        """Tell the launch step (started before the exec) to deploy, and wait for it: its exit
        code, None if it timed out or a stop signal came first."""
        pid, fd = int(self.plan["launcher"]["pid"]), int(self.plan["launcher"]["fd"])
        with contextlib.suppress(OSError):
            os.write(fd, b"deploy\n")
        with contextlib.suppress(OSError):
            os.close(fd)
        deadline = time.monotonic() + LAUNCH_S
        while time.monotonic() < deadline and self.stop_signal is None:
            with contextlib.suppress(ChildProcessError):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    return os.waitstatus_to_exitcode(status)
            self._record()
            time.sleep(0.1)
        terminate([pid], 3.0)
        return None

    def _sleep(self, seconds: float) -> None:
        """Sleep, but return soon after a stop signal (a sleep resumes after a handler)."""
        deadline = time.monotonic() + seconds
        while self.stop_signal is None and time.monotonic() < deadline:
            time.sleep(0.1)

    def _health(self) -> int:
        url = f"http://{self.plan['host']}:{self.plan['port']}/health"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)
        except (OSError, ValueError):
            return 0

    def _ray_alive(self, pids: list[int] | None = None) -> bool:
        pids = descendants(self.me[0]) if pids is None else pids
        return {"gcs_server", "raylet"} <= {program(p) for p in pids}

    def run(self) -> int:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / PLAN_FILE).write_text(json.dumps(self.plan))
        self._record()
        t0 = float(self.plan["started_at"])
        code = 1
        try:
            launched = self._launched()
            t_launched = time.monotonic()
            if launched != 0:
                if self.stop_signal is None:
                    log("could not start Ray and Serve (see above)")
                return 1 if self.stop_signal is None else 0
            url = f"http://{self.plan['host']}:{self.plan['port']}"
            while self.stop_signal is None:
                if self._health() == 200:
                    now, prepared = time.monotonic(), float(self.plan["prepared_at"])
                    log(
                        f"ready: {url}/health 200 after {now - t0:.1f} s (database and models "
                        f"{prepared - t0:.1f} s, Ray head and Serve {t_launched - prepared:.1f} s,"
                        f" replicas {now - t_launched:.1f} s)"
                    )
                    log(f"API docs: {url}/docs; logs: {self.plan['ray_dir']}/session_latest/logs")
                    break
                if not self._ray_alive():
                    log("Ray stopped during the start")
                    return 1
                self._record()
                time.sleep(0.25)
            while self.stop_signal is None:  # idle: one look at /proc every IDLE_CHECK_S
                reap()
                pids = descendants(self.me[0])
                self._record(pids)
                if not self._ray_alive(pids):
                    log("Ray's head processes are gone: stopping the rest")
                    break
                self._sleep(IDLE_CHECK_S)
            code = 0 if self.stop_signal is not None else 1
        finally:
            self.stop()
        return code

    def stop(self) -> None:
        """Serve (bounded), then HAProxy, then Ray, then anything left: all descendants."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the stop short
        t0 = time.monotonic()
        me = self.me[0]
        if self._ray_alive():
            result = self._runtime("shutdown", SERVE_STOP_S)
            if result != 0:
                log(f"Serve did not stop cleanly within {SERVE_STOP_S:.0f} s: stopping Ray")
        haproxy = [p for p in descendants(me) if program(p) == "haproxy"]
        killed = [f"haproxy pid {p}" for p in terminate(haproxy, 3.0)]
        # Ray: the raylet first (it ends its workers and agents), then the GCS and the rest;
        # what has not exited after RAY_STOP_S is killed.
        for name in ("raylet", "gcs_server"):
            pids = [p for p in descendants(me) if program(p) == name]
            killed += [f"{name} pid {p}" for p in terminate(pids, RAY_STOP_S)]
        for _ in range(3):  # adopted orphans may appear while their parents exit
            left = descendants(me)
            if not left:
                break
            names = {p: f"{program(p)} pid {p}" for p in left}
            killed += [names[p] for p in terminate(left, RAY_STOP_S)]
        reap()
        for name in (RUN_FILE, PLAN_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self.state / name).unlink()
        shutil.rmtree(self.state / "hap", ignore_errors=True)
        prune_sessions(Path(self.plan["ray_dir"]))
        extra = f"; killed after {RAY_STOP_S:.0f} s: {', '.join(killed)}" if killed else ""
        log(f"stopped in {time.monotonic() - t0:.1f} s{extra}")


def main(argv: list[str]) -> int:
    return Supervisor(json.loads(argv[0])).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
