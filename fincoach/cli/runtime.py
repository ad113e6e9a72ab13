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
    prestarted idle workers. Its processes outlive this one (the supervisor adopts them)."""
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


def _connect(plan: dict[str, Any]) -> None:
    import ray

    ray.init(address=plan["gcs_address"], namespace=NAMESPACE, log_to_driver=False)


def deploy(plan: dict[str, Any]) -> None:
    """Start Serve (if it is not running) and apply the config file, as `serve run` does."""
    from ray.serve._private import api as serve_api
    from ray.serve.config import gRPCOptions
    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(_config(plan))
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
