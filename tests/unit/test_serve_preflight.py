"""`fincoach serve` before it starts anything: what holds a port, a run already going, and what a
killed run left behind (no Ray: stand-in processes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fincoach.cli import app
from fincoach.cli.preflight import busy_ports, clear_leftovers, port_holders, spare_port
from fincoach.cli.supervise import RUN_FILE, start_time, state_dir

ROOT = Path(__file__).resolve().parents[2]


def _spawn(code: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc


@pytest.fixture
def listener() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = spare_port()
    proc = _spawn(
        "import socket, sys, time; s = socket.socket(); "
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        f"s.bind(('127.0.0.1', {port})); s.listen(); print('ready', flush=True); time.sleep(60)"
    )
    yield port, proc
    proc.kill()
    proc.wait()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, int]]:
    """A copy of serve_config.yaml on a free port, HAProxy's ports free too."""
    port = spare_port()
    raw = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    raw["http_options"]["port"] = port
    path = tmp_path / "serve_config.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("RAY_SERVE_HAPROXY_STATS_PORT", str(spare_port()))
    monkeypatch.setenv("RAY_SERVE_HAPROXY_METRICS_PORT", str(spare_port()))
    yield path, port
    shutil.rmtree(state_dir(port), ignore_errors=True)


def test_busy_ports_name_the_process_holding_each(listener) -> None:
    port, proc = listener
    assert port_holders({port}) == {port: {proc.pid}}
    (line,) = busy_ports({port, spare_port()})
    assert line.startswith(f"port {port} is held by pid {proc.pid} (")
    assert "socket" in line  # its command line


def test_serve_refuses_a_held_port_and_says_who_holds_it(config, listener) -> None:
    path, _ = config
    port, proc = listener
    raw = yaml.safe_load(path.read_text())
    raw["http_options"]["port"] = port
    path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["serve", "--config", str(path)])
    assert result.exit_code == 1
    assert f"port {port} is held by pid {proc.pid}" in result.output
    shutil.rmtree(state_dir(port), ignore_errors=True)


def test_serve_refuses_a_second_run_on_the_same_port(config) -> None:
    path, port = config
    state = state_dir(port)
    state.mkdir(parents=True)
    me = [os.getpid(), start_time(os.getpid())]  # a live "supervisor"
    (state / RUN_FILE).write_text(json.dumps({"supervisor": me, "port": port, "processes": []}))
    result = CliRunner().invoke(app, ["serve", "--config", str(path)])
    assert result.exit_code == 1
    assert f"already running on :{port} (pid {os.getpid()}" in result.output
    assert (state / RUN_FILE).exists(), "a live run's files are left alone"


def test_a_start_clears_what_a_killed_run_left_behind(tmp_path: Path) -> None:
    port = spare_port()
    state = state_dir(port)
    (state / "hap" / "node").mkdir(parents=True)
    (state / "ray" / "session_2026-01-01_00-00-00_000000_1" / "sockets").mkdir(parents=True)
    # What a SIGKILLed supervisor leaves: a recorded process (as Ray's daemons), and a renamed
    # worker holding a log file open in the state directory (not in the run file).
    recorded = _spawn("import time; print('ready', flush=True); time.sleep(60)")
    log = state / "ray" / "worker.log"
    holder = _spawn(
        f"import time; f = open({str(log)!r}, 'w'); print('ready', flush=True); time.sleep(60)"
    )
    unrelated = _spawn("import time; print('ready', flush=True); time.sleep(60)")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = {
        "supervisor": [dead.pid, 1],
        "port": port,
        "processes": [[recorded.pid, start_time(recorded.pid)]],
    }
    (state / RUN_FILE).write_text(json.dumps(run))
    try:
        stopped = clear_leftovers(state)
        assert any(f"pid {recorded.pid}" in s for s in stopped)
        assert any(f"pid {holder.pid}" in s for s in stopped)
        for proc in (recorded, holder):
            assert proc.wait(10) is not None
        assert unrelated.poll() is None, "a process of someone else is left alone"
        assert not (state / RUN_FILE).exists() and not (state / "hap").exists()
        assert not list((state / "ray").glob("session_*/sockets")), "stale sockets removed"
    finally:
        for proc in (recorded, holder, unrelated):
            proc.kill()
        time.sleep(0.1)
        shutil.rmtree(state, ignore_errors=True)
