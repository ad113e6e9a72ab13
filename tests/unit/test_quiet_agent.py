"""The raylet's unused agents replaced by quiet_agent.py in `fincoach serve` (issue 17)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fincoach.cli import quiet_agent
from fincoach.cli.runtime import quiet_agent_args, quiet_agents

AGENT = Path(quiet_agent.__file__)


def test_it_writes_the_ports_rays_agents_write() -> None:
    from ray import _raylet

    def ray_name(constant: str) -> str:
        return str(getattr(_raylet, constant))  # not in ray's type stubs

    assert quiet_agent.PORT_NAMES == {
        "dashboard": (
            ray_name("METRICS_AGENT_PORT_NAME"),
            ray_name("METRICS_EXPORT_PORT_NAME"),
            ray_name("DASHBOARD_AGENT_LISTEN_PORT_NAME"),
        ),
        "runtime_env": (ray_name("RUNTIME_ENV_AGENT_PORT_NAME"),),
    }


def _raylet_command(python: str = "/venv/bin/python") -> list[str]:
    """A raylet command line as ray._private.services.start_raylet writes it (2.60)."""
    from ray._private import services

    ray_path = services.RAY_PATH
    common = ["--node-id=abc123", "--session-dir=/tmp/s/session_1", "--gcs-address=1.2.3.4:5"]
    dashboard = [python, "-u", f"{ray_path}/dashboard/agent.py", *common, "--listen-port=0"]
    runtime_env = [python, "-u", f"{ray_path}/_private/runtime_env/agent/main.py", *common]
    return [
        f"{ray_path}/core/src/ray/raylet/raylet",
        "--raylet_socket_name=/tmp/s/sockets/raylet",
        f"--python_worker_command={subprocess.list2cmdline([python, 'default_worker.py'])}",
        f"--dashboard_agent_command={subprocess.list2cmdline(dashboard)}",
        f"--runtime_env_agent_command={subprocess.list2cmdline(runtime_env)}",
        "--head",
    ]


def _agent_command(command: list[str], flag: str) -> list[str]:
    import shlex

    (arg,) = [a for a in command if a.startswith(flag)]
    return shlex.split(arg[len(flag) :])


@pytest.mark.parametrize(
    ("kinds", "quiet_dashboard", "quiet_runtime_env"),
    [(("dashboard",), True, False), (("dashboard", "runtime_env"), True, True), ((), False, False)],
)
def test_only_the_named_agents_are_replaced_and_keep_rays_options(
    kinds: tuple[str, ...], quiet_dashboard: bool, quiet_runtime_env: bool
) -> None:
    command = _raylet_command()
    rewritten = quiet_agent_args(command, kinds)
    untouched = [a for a in command if not a.startswith(("--dashboard_agent", "--runtime_env_ag"))]
    assert [a for a in rewritten if a in untouched] == untouched
    for flag, kind, quiet in (
        ("--dashboard_agent_command=", "dashboard", quiet_dashboard),
        ("--runtime_env_agent_command=", "runtime_env", quiet_runtime_env),
    ):
        before, after = _agent_command(command, flag), _agent_command(rewritten, flag)
        if not quiet:
            assert after == before
            continue
        assert after[:3] == [sys.executable, str(AGENT), kind]
        assert after[3:] == before[3:]  # Ray's own options, after its script


def test_agents_are_quiet_only_where_nothing_uses_them() -> None:
    plain = {"applications": [{"name": "fincoach", "deployments": [{"name": "CoachIngress"}]}]}
    with_env = {"applications": [{"name": "fincoach", "runtime_env": {"env_vars": {"A": "1"}}}]}
    in_deployment = {
        "applications": [
            {"deployments": [{"name": "X", "ray_actor_options": {"runtime_env": {"pip": ["x"]}}}]}
        ]
    }
    empty_env = {"applications": [{"name": "fincoach", "runtime_env": {}}]}
    lean = {"dashboard": False, "metrics_port": None}
    assert quiet_agents(lean, plain) == ("dashboard", "runtime_env")
    assert quiet_agents(lean, empty_env) == ("dashboard", "runtime_env")
    assert quiet_agents(lean, with_env) == ("dashboard",)
    assert quiet_agents(lean, in_deployment) == ("dashboard",)
    assert quiet_agents({"dashboard": True, "metrics_port": None}, plain) == ("runtime_env",)
    assert quiet_agents({"dashboard": False, "metrics_port": 9000}, plain) == ("runtime_env",)


def _wait_exit(proc: subprocess.Popen[bytes], seconds: float = 5.0) -> int | None:
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def test_it_writes_unserved_ports_and_stops_on_term(tmp_path: Path) -> None:
    args = ["dashboard", "--node-id=n1", f"--session-dir={tmp_path}", "--some-new-option=x"]
    proc = subprocess.Popen([sys.executable, str(AGENT), *args])
    try:
        deadline = time.monotonic() + 10
        names = quiet_agent.PORT_NAMES["dashboard"]
        while time.monotonic() < deadline and not all(
            (tmp_path / f"{n}_n1").exists() for n in names
        ):
            time.sleep(0.05)
        assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
            f"{n}_n1": "-1" for n in names
        }
        assert proc.poll() is None, "it stays while its parent lives"
        proc.send_signal(signal.SIGTERM)
        assert _wait_exit(proc) == 0
    finally:
        proc.kill()


def test_it_goes_when_the_raylet_that_started_it_goes(tmp_path: Path) -> None:
    # A stand-in raylet: starts the agent, prints its pid, waits to be killed.
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            f"p = subprocess.Popen([sys.executable, {str(AGENT)!r}, 'runtime_env', "
            f"'--node-id=n2', '--session-dir={tmp_path}'])\n"
            "print(p.pid, flush=True)\ntime.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
    )
    assert parent.stdout is not None
    agent = int(parent.stdout.readline())
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (tmp_path / "runtime_env_agent_port_n2").exists():
            time.sleep(0.05)
        assert (tmp_path / "runtime_env_agent_port_n2").read_text() == "-1"
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(agent):
            time.sleep(0.05)
        assert not _alive(agent), "the agent outlived the raylet"
    finally:
        parent.kill()
        if _alive(agent):
            os.kill(agent, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("args", [[], ["metrics"], ["dashboard", "--node-id=x"]])
def test_a_wrong_call_says_how_to_call_it(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, str(AGENT), *args], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "dashboard|runtime_env" in done.stderr


def test_an_agent_command_it_does_not_recognise_is_left_to_ray() -> None:
    odd = subprocess.list2cmdline(["/venv/bin/python", "-m", "ray.some_future_agent", "--x=1"])
    command = ["raylet", f"--dashboard_agent_command={odd}", "--head"]
    assert quiet_agent_args(command, ("dashboard", "runtime_env")) == command


def test_a_deploy_that_needs_the_runtime_env_agent_it_started_without_is_refused(
    tmp_path: Path,
) -> None:
    from fincoach.cli import runtime

    config = tmp_path / "serve_config.yaml"
    config.write_text(
        "applications:\n- name: fincoach\n  import_path: deployments.app:build_app\n"
        "  runtime_env:\n    env_vars:\n      A: '1'\n"
    )
    session = tmp_path / "ray" / "session_latest"
    session.mkdir(parents=True)
    (session / "runtime_env_agent_port_n1").write_text("-1")
    plan = {"config": str(config), "ray_dir": str(tmp_path / "ray")}
    with pytest.raises(SystemExit, match="runtime-env agent"):
        runtime.deploy(plan)
    (session / "runtime_env_agent_port_n1").write_text("41234")  # Ray's own agent
    assert not runtime._runtime_env_agent_quiet(plan)
