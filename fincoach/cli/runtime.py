"""The Ray side of `fincoach serve`, run as short-lived child processes of its supervisor.

    python fincoach/cli/runtime.py launch PLAN_JSON    start the Ray head; on "deploy" (stdin):
                                                       start Serve, deploy
    python fincoach/cli/runtime.py deploy PLAN_JSON    apply the Serve config again (a swap)
    python fincoach/cli/runtime.py shutdown PLAN_JSON  stop Serve (its replicas, HAProxy)

Each connects as a Ray driver, does its step and exits, so no Python driver idles beside the
cluster. Run by path (not ``-m``), it imports Ray, Serve and YAML only, never the application:
the supervisor keeps its stop short.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

NAMESPACE = "serve"  # Serve's own namespace, as `serve run` uses


def _config(plan: dict[str, Any]) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(Path(plan["config"]).read_text())


def start_head(plan: dict[str, Any]) -> None:
    """`ray start --head` with the embedded profile: no autoscaler monitor (one machine), no log
    monitor (the logs stay in files), no Ray client server, the dashboard only when asked, no
    prestarted idle workers, the raylet's agents only where something uses them (quiet_agents).
    Its processes outlive this one (the supervisor adopts them)."""
    from ray._private.authentication.authentication_token_setup import (
        ensure_token_if_auth_enabled,
    )
    from ray.scripts import scripts

    # Token authentication (RAY_AUTH_MODE=token, as for a local `ray.init()`): make the token
    # (~/.ray/auth_token) on a machine that has none, as `ray.init()` does; `ray start` would
    # refuse to start without one.
    ensure_token_if_auth_enabled(None, create_token_if_missing=True)

    # `ray start --head` runs a Ray client server (port 10001) whenever its dependencies are
    # installed, and accepts no option to leave it out; nothing here uses Ray client.
    scripts.get_ray_client_dependency_error = lambda: ImportError("not used by fincoach serve")
    if not plan["dashboard"]:
        # Without the dashboard, `ray start --head` still runs dashboard.py (about 120 MB) for
        # the usage-stats module alone, and usage stats are off: leave it out.
        from ray._private.node import Node

        Node.start_api_server = lambda self, **_: None  # type: ignore[method-assign]
    if quiet := quiet_agents(plan, _config(plan)):
        _start_raylet_with_quiet_agents(quiet)
    args = [
        "--head",
        f"--node-ip-address={plan['node_ip']}",
        f"--port={plan['gcs_port']}",
        f"--temp-dir={plan['ray_dir']}",
        f"--include-dashboard={'true' if plan['dashboard'] else 'false'}",
        f"--dashboard-port={plan['dashboard_port']}",
        f"--dashboard-agent-listen-port={plan['agent_port']}",
        "--include-log-monitor=false",
        "--no-monitor",
        "--disable-usage-stats",
        f"--system-config={json.dumps(plan['system_config'])}",
        "--log-style=record",
    ]
    if plan.get("num_cpus"):
        args.append(f"--num-cpus={plan['num_cpus']}")
    if plan.get("metrics_port"):
        args.append(f"--metrics-export-port={plan['metrics_port']}")
    scripts.start.main(args=args, standalone_mode=False)


AGENT_COMMANDS = {
    "dashboard": ("--dashboard_agent_command=", "agent.py"),
    "runtime_env": ("--runtime_env_agent_command=", "main.py"),
}


def quiet_agent_args(raylet_command: list[str], kinds: tuple[str, ...]) -> list[str]:
    """The raylet's command with the agents of `kinds` replaced by quiet_agent.py, which gets
    the same options (it reads the session directory and the node id from them)."""
    out = []
    for arg in raylet_command:
        for kind in kinds:
            flag, script_name = AGENT_COMMANDS[kind]
            if arg.startswith(flag):
                agent = shlex.split(arg[len(flag) :])
                script = next((i for i, a in enumerate(agent) if a.endswith(script_name)), None)
                if script is None:  # not the command this Ray version wrote: keep Ray's agent
                    continue
                quiet = [sys.executable, str(Path(__file__).with_name("quiet_agent.py")), kind]
                arg = flag + subprocess.list2cmdline(quiet + agent[script + 1 :])
        out.append(arg)
    return out


def quiet_agents(plan: dict[str, Any], config: dict[str, Any]) -> tuple[str, ...]:
    """The raylet's agents this run does not use, to be replaced by quiet_agent.py: the
    dashboard agent unless the dashboard or Ray's metrics port is asked for (it serves the
    dashboard's node API and exports Ray's metrics), and the runtime-env agent unless the Serve
    config gives a runtime_env (the raylet asks it only to build a non-empty one). Each is a
    Ray process of 80-130 MB; the dashboard agent also takes a few percent of a core at idle
    (bench/RESULTS.md, issue 17)."""
    quiet = []
    if not plan["dashboard"] and not plan.get("metrics_port"):
        quiet.append("dashboard")
    if not _gives_runtime_env(config):
        quiet.append("runtime_env")
    return tuple(quiet)


def _gives_runtime_env(node: object) -> bool:
    if isinstance(node, dict):
        return any(
            (key == "runtime_env" and bool(value)) or _gives_runtime_env(value)
            for key, value in node.items()
        )
    return isinstance(node, list) and any(_gives_runtime_env(item) for item in node)


def _runtime_env_agent_quiet(plan: dict[str, Any]) -> bool:
    session = Path(plan["ray_dir"]) / "session_latest"
    ports = session.glob("runtime_env_agent_port_*") if session.is_dir() else ()
    return any(p.read_text().strip() == "-1" for p in ports)


def _start_raylet_with_quiet_agents(kinds: tuple[str, ...]) -> None:
    from ray._private import services

    start = services.start_ray_process

    def start_ray_process(command: list[str], process_type: str, *args: Any, **kw: Any) -> Any:
        if process_type == "raylet":
            command = quiet_agent_args(command, kinds)
        return start(command, process_type, *args, **kw)

    services.start_ray_process = start_ray_process


def _connect(plan: dict[str, Any]) -> None:
    import ray

    ray.init(address=plan["gcs_address"], namespace=NAMESPACE, log_to_driver=False)


def deploy(plan: dict[str, Any]) -> None:
    """Start Serve (if it is not running) and apply the config file, as `serve run` does."""
    from ray.serve._private import api as serve_api
    from ray.serve.config import gRPCOptions
    from ray.serve.schema import ServeDeploySchema

    raw = _config(plan)
    if _gives_runtime_env(raw) and _runtime_env_agent_quiet(plan):
        raise SystemExit(
            "this config gives a runtime_env, and this run's Ray started without its runtime-env "
            "agent (the config it started with gave none): restart fincoach serve with it"
        )
    config = ServeDeploySchema.model_validate(raw)
    client = serve_api.serve_start(
        http_options=config.http_options.model_dump(),
        proxy_location=config.proxy_location,
        grpc_options=gRPCOptions(**config.grpc_options.model_dump()),
        controller_options=config.controller_options,
    )
    client.deploy_apps(config, _blocking=False)


def shutdown(plan: dict[str, Any]) -> None:
    """Delete the applications and stop Serve: replicas drain, HAProxy and the controller go."""
    from ray import serve

    serve.shutdown()


def main(argv: list[str]) -> int:
    step, plan = argv[0], json.loads(argv[1])
    t0 = time.monotonic()
    if step == "launch":
        start_head(plan)
        # Deploy once the supervisor says so (the database and the models are ready then); an
        # end of input means `fincoach serve` stopped before that.
        if sys.stdin.readline().strip() != "deploy":
            print("[fincoach serve] launch: stopped before the deploy", flush=True)
            return 1
    _connect(plan)
    if step in ("launch", "deploy"):
        deploy(plan)
    elif step == "shutdown":
        shutdown(plan)
    else:
        raise SystemExit(f"unknown step {step!r}")
    print(f"[fincoach serve] {step}: done in {time.monotonic() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
