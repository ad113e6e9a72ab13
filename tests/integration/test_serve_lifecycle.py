"""`make serve` as a user and a service manager run it: start, stop with a signal, start again.

Each run is `make serve` itself (its own Ray head, HAProxy, the lean embedded profile) on free
ports, with the session's trained models and a database of its own, started as the leader of a
new process group the way a terminal or systemd starts it. After each stop, no process of the
run (whatever renamed or re-parented itself) and no listening port of it is left."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from fincoach.cli.preflight import port_holders, spare_port
from fincoach.cli.supervise import cmdline, descendants, program, start_time, state_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
QUIET_AGENT = ROOT / "fincoach" / "cli" / "quiet_agent.py"
READY_S = 300.0
STOP_S = 60.0


@dataclass
class Runs:
    """`make serve` runs on one set of ports, and every process any of them started."""

    env: dict[str, str]
    url: str
    ports: set[int]
    log: Path
    seen: set[tuple[int, int]] = field(default_factory=set)
    stats_port: int = 0
    metrics_port: int = 0
    # Every answer /health gave before the first 200 of a start: (status, content type,
    # Retry-After, the body's start).
    before_ready: list[tuple[int, str, str | None, str]] = field(default_factory=list)

    def start(self, *, background: bool = False) -> subprocess.Popen[bytes]:
        """`make serve`; ``background``: as a shell starts a background job (`make serve &`
        in a script), with SIGINT ignored."""

        def ignore_int() -> None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

        with open(self.log, "ab") as out:
            return subprocess.Popen(
                ["make", "--no-print-directory", "serve"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a process group of its own, as a terminal gives
                preexec_fn=ignore_int if background else None,
            )

    def track(self, proc: subprocess.Popen[bytes]) -> list[int]:
        pids = [proc.pid, *descendants(proc.pid)]
        self.seen |= {(p, t) for p in pids if (t := start_time(p)) is not None}
        return pids

    def alive(self) -> list[str]:
        return [f"{program(p)} pid {p}" for p, t in self.seen if start_time(p) == t]

    def wait_ready(self, proc: subprocess.Popen[bytes]) -> list[int]:
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            pids = self.track(proc)
            # Its own HAProxy answering (not one a killed run left behind).
            own = "haproxy" in {program(p) for p in pids}
            try:
                r = httpx.get(f"{self.url}/health", timeout=5) if own else None
                if r is not None and r.status_code == 200:
                    return self.track(proc)
                if r is not None:
                    type_, retry = r.headers.get("content-type", ""), r.headers.get("retry-after")
                    self.before_ready.append((r.status_code, type_, retry, r.text[:2000]))
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                pytest.fail(f"make serve exited with {proc.returncode}:\n{self.tail()}")
            time.sleep(0.5)
        pytest.fail(f"no /health 200 within {READY_S:.0f} s (pids {pids}):\n{self.tail()}")

    def wait_gone(self) -> None:
        """Every process any run started is gone and no port of the runs is listening."""
        deadline = time.monotonic() + STOP_S
        while time.monotonic() < deadline:
            if not self.alive() and not port_holders(self.ports):
                return
            time.sleep(0.2)
        pytest.fail(
            f"left after the stop: {self.alive()}, ports {port_holders(self.ports)}\n{self.tail()}"
        )

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _listen_addresses(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp writes them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def _check_the_proxy(runs: Runs, stats_port: int, metrics_port: int) -> None:
    """What fincoach serve's HAProxy does for the app (issue 14): an X-Request-ID that is not
    1-128 safe characters is replaced (a valid one kept), a client-sent X-Forwarded-For is not
    believed (a spray rotating it still meets this address's login limit), and its statistics
    and metrics listen on 127.0.0.1 only. Every part is checked; the failures are listed."""
    wrong: list[str] = []
    safe = re.compile(r"[A-Za-z0-9._-]{1,128}")
    with httpx.Client(base_url=runs.url, timeout=10) as c:
        for sent in ("r" * 5000, "<script>alert(1)</script>", "a b"):
            got = c.get("/health", headers={"X-Request-ID": sent}).headers.get("x-request-id", "")
            if got == sent or not safe.fullmatch(got):
                wrong.append(f"X-Request-ID {sent[:30]!r} came back as {got[:30]!r}")
        kept = c.get("/health", headers={"X-Request-ID": "client-id-1.2_3"})
        if kept.headers.get("x-request-id") != "client-id-1.2_3":
            wrong.append(f"a valid X-Request-ID was replaced: {kept.headers.get('x-request-id')}")
    # From another loopback address: 127.0.0.1 itself counts as a proxy, not limited per address.
    spray = httpx.HTTPTransport(local_address="127.0.0.5")
    with httpx.Client(base_url=runs.url, timeout=10, transport=spray) as c:
        statuses = [
            c.post(
                "/auth/token",
                data={"username": f"nobody{i}@example.com", "password": "wrong-password"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            ).status_code
            for i in range(45)
        ]
    # 20 failures per address and ingress replica (2): the 41st try is refused at the latest.
    if set(statuses[:20]) != {401} or 429 not in statuses[:41]:
        wrong.append(f"a spray rotating X-Forwarded-For got {statuses}")
    for port in (stats_port, metrics_port):
        if _listen_addresses(port) != {"0100007F"}:
            wrong.append(f"port {port} listens on {_listen_addresses(port)}, not 127.0.0.1 only")
    assert not wrong, "\n".join(wrong)


def _unavailable_answers(answers: list[tuple[int, str, str | None, str]]) -> list[str]:
    """The answers that are not the problem JSON a client can act on: 503 with Retry-After (or
    502, a replica that failed mid-request)."""
    return [
        f"{status} {type_} retry-after={retry}: {body}"
        for status, type_, retry, body in answers
        if not (
            type_ == "application/problem+json"
            and (status == 502 or (status == 503 and retry is not None))
            and json.loads(body)["status"] == status
        )
    ]


def _check_no_ingress_replica(runs: Runs, pids: list[int]) -> None:
    """Both ingress replicas killed: until Serve has started new ones, HAProxy answers 503 (or
    502 for a request a replica died under) as problem JSON, not Serve's plain-text 500; then
    the app answers again."""
    for pid in pids:
        if program(pid) == "ray::ServeReplica:fincoach:CoachIngress":
            os.kill(pid, signal.SIGKILL)
    answers: list[tuple[int, str, str | None, str]] = []
    disconnects = 0
    deadline = time.monotonic() + READY_S
    # A new connection for every poll: Serve reloads HAProxy as replicas come and go, and the
    # old HAProxy process closes its idle keep-alive connections as it stops, which a client
    # reusing one sees as a disconnect without an answer (browsers retry such a request).
    with httpx.Client(
        base_url=runs.url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
    ) as c:
        while time.monotonic() < deadline:
            try:
                r = c.get("/health")
            except httpx.RemoteProtocolError:
                # a connection HAProxy closed unanswered as it reloaded: no answer to judge
                disconnects += 1
                assert disconnects <= 3, "HAProxy kept closing connections unanswered"
                time.sleep(0.2)
                continue
            if r.status_code == 200:
                break
            answers.append(
                (
                    r.status_code,
                    r.headers.get("content-type", ""),
                    r.headers.get("retry-after"),
                    r.text[:2000],
                )
            )
            time.sleep(0.2)
        else:
            pytest.fail(f"no /health 200 after the ingress replicas were killed: {answers[-3:]}")
    assert answers, "the kill was not seen (no answer but 200)"
    assert not _unavailable_answers(answers), _unavailable_answers(answers)


def _server(pids: list[int]) -> int:
    """The `fincoach serve` process (it became the supervisor, same pid)."""
    (pid,) = [p for p in pids if "supervise.py" in cmdline(p)]
    return pid


@pytest.fixture
def runs(tmp_path: Path, trained_models: str) -> Iterator[Runs]:
    port, stats, metrics = spare_port(), spare_port(), spare_port()
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    config["http_options"]["port"] = port
    config_path = tmp_path / "serve_config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FINCOACH_"))}
    env.update(
        {
            "FINCOACH_SERVE_CONFIG": str(config_path),
            "FINCOACH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
            "FINCOACH_MODEL_DIR": trained_models,
            "FINCOACH_ENV": "test",
            "FINCOACH_JWT_SECRET": "lifecycle-secret-" + "l" * 32,
            "FINCOACH_PASSWORD_HASH_TIME_COST": "1",
            "FINCOACH_PASSWORD_HASH_MEMORY_KIB": "1024",
            "FINCOACH_JOBS_ENABLED": "false",
            "RAY_SERVE_HAPROXY_STATS_PORT": str(stats),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics),
        }
    )
    r = Runs(env, f"http://127.0.0.1:{port}", {port, stats, metrics}, tmp_path / "serve.log")
    r.stats_port, r.metrics_port = stats, metrics
    try:
        yield r
    finally:  # whatever a failed test left: by pid, only what these runs started
        for pid, started in r.seen:
            if start_time(pid) == started:
                os.kill(pid, signal.SIGKILL)
        # and what started after the last look (an HAProxy that a reload started names the
        # run's directory on its command line)
        run_dir = f"{state_dir(port)}/"
        for entry in os.listdir("/proc"):
            if entry.isdigit() and run_dir in cmdline(int(entry)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry), signal.SIGKILL)
        shutil.rmtree(state_dir(port), ignore_errors=True)


@pytest.mark.timeout(1200)
def test_make_serve_stops_on_term_to_its_group_or_int_and_starts_again(runs: Runs) -> None:
    first = runs.start()
    pids = runs.wait_ready(first)
    # The lean embedded profile: no dashboard, no Python proxy beside HAProxy, no idle worker.
    programs = {program(p) for p in pids}
    assert "haproxy" in programs and "raylet" in programs
    assert "ray::ProxyActor" not in programs
    assert not any("dashboard" in cmdline(p) and "agent" not in cmdline(p) for p in pids)
    assert "ray::IDLE" not in programs
    # The raylet's agents that nothing uses here run as quiet_agent.py (about 10 MB each).
    assert not {"ray::DashboardAgent", "ray::RuntimeEnvAgent"} & programs, programs
    quiet = [p for p in pids if cmdline(p).split(" ")[1:2] == [str(QUIET_AGENT)]]
    assert sorted(cmdline(p).split(" ")[2] for p in quiet) == ["dashboard", "runtime_env"]
    # Before it is ready, only 503s with Retry-After, as problem JSON (the start's first
    # seconds gave Serve's plain-text 404 for every path, then 500s).
    assert runs.before_ready, "no answer before the first 200 (the poll began too late)"
    assert not _unavailable_answers(runs.before_ready), _unavailable_answers(runs.before_ready)
    _check_the_proxy(runs, runs.stats_port, runs.metrics_port)
    _check_no_ingress_replica(runs, pids)

    # A service manager's stop (systemd's default KillMode), a terminal closing: TERM to the
    # whole process group of `make serve`.
    os.killpg(first.pid, signal.SIGTERM)
    runs.wait_gone()

    second = runs.start(background=True)  # SIGINT ignored, as in a shell's background job
    server = _server(runs.wait_ready(second))
    assert httpx.get(f"{runs.url}/health").json()["status"] == "ok"
    os.kill(server, signal.SIGINT)  # `kill -INT` to the server alone
    runs.wait_gone()

    # A run killed outright leaves Ray, HAProxy and their ports behind; the next start clears
    # them and serves.
    third = runs.start()
    os.kill(_server(runs.wait_ready(third)), signal.SIGKILL)
    assert runs.alive(), "a killed supervisor leaves its Ray processes (the case to clear)"
    fourth = runs.start()
    runs.wait_ready(fourth)
    assert "stopped what an earlier run left behind" in runs.tail(400)
    os.killpg(fourth.pid, signal.SIGTERM)
    runs.wait_gone()
