"""Benchmark: one model deployment driven past its autoscaling target, and back.

Starts Ray and Serve in this process with the real graph (`deployments.app:build_app`, the
deployment options of serve_config.yaml) except that the forecasting deployment autoscales
(min 1, max 3 replicas, --target ongoing requests per replica, --upscale-delay and
--downscale-delay). Then --concurrency callers keep requests outstanding on it through a
DeploymentHandle (as the ingress calls it) for --load seconds, and nothing runs for --idle
seconds. Every second it records the replicas by state from `serve.status()` (RUNNING,
STARTING, STOPPING ...), the deployment's status, the requests in flight, answers per second,
latency and failures.

The verdict: the replica count rose above the minimum under load, fell again when idle, and no
request failed. Serve's handle pushes its metrics every 10 s by default
(RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S), so reactions lag by up to that much
beyond the delays.

Usage: .venv/bin/python bench/autoscaling.py [--quick] [--concurrency 8] [--load 45]
       [--idle 60] [--target 2] [--model-dir DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.serve_bench import (  # noqa: E402
    _interrupt,
    app_env,
    loadavg,
    prepare,
    serve_options,
    spare_port,
)

DEPLOYMENT = "ForecastingDeployment"
APP = "fincoach"


@dataclass
class Sample:
    t: float  # seconds since the load started
    phase: str  # "load" or "idle"
    load: int  # callers keeping a request outstanding
    in_flight: int  # requests outstanding when sampled
    replicas: dict[str, int] = field(default_factory=dict)  # state -> count
    status: str = ""  # the deployment's status (HEALTHY, UPSCALING, DOWNSCALING ...)
    answers: int = 0  # answers in the second before the sample
    rps: float = 0.0
    p50_ms: float | None = None
    failures: int = 0  # failures so far

    @property
    def running(self) -> int:
        return self.replicas.get("RUNNING", 0)

    @property
    def starting(self) -> int:
        return self.replicas.get("STARTING", 0)


def verdict(samples: list[Sample], min_replicas: int) -> dict[str, Any]:
    """Did the RUNNING replicas rise above the minimum under load and fall again after, with no
    failed request? With the times (s since the load started) of the first rise and fall."""
    out: dict[str, Any] = {
        "rose": False,
        "fell": False,
        "back_to_min": False,
        "failures": samples[-1].failures if samples else 0,
        "start_replicas": samples[0].running if samples else 0,
        "peak_replicas": 0,
        "end_replicas": samples[-1].running if samples else 0,
        "rose_at_s": None,
        "fell_at_s": None,
        "upscale_seen_at_s": None,  # first STARTING replica or UPSCALING status
        "downscale_seen_at_s": None,  # first STOPPING replica or DOWNSCALING status
    }
    if not samples:
        out["ok"] = False
        return out
    up = next((s for s in samples if s.starting or s.status == "UPSCALING"), None)
    out["upscale_seen_at_s"] = up.t if up else None
    down = next(
        (s for s in samples if s.replicas.get("STOPPING") or s.status == "DOWNSCALING"), None
    )
    out["downscale_seen_at_s"] = down.t if down else None
    running = [s.running for s in samples]
    peak = max(running)
    first_peak = running.index(peak)
    out["peak_replicas"] = peak
    base = max(min_replicas, 1)
    out["rose"] = peak > base
    rise = next((s for s in samples if s.running > base), None)
    out["rose_at_s"] = rise.t if rise else None
    after = samples[first_peak:]
    fall = next((s for s in after if s.running < peak), None)
    out["fell"] = out["rose"] and fall is not None
    out["fell_at_s"] = fall.t if out["fell"] and fall else None
    out["back_to_min"] = out["rose"] and min(s.running for s in after) <= base
    out["ok"] = bool(out["rose"] and out["fell"] and out["failures"] == 0)
    return out


def _states(replicas: dict[str, int]) -> str:
    order = ["RUNNING", "STARTING", "STOPPING"]
    keys = [k for k in order if replicas.get(k)] + sorted(k for k in replicas if k not in order)
    return ", ".join(f"{k} {replicas[k]}" for k in keys if replicas[k]) or "-"


def timeline_table(samples: list[Sample]) -> str:
    rows = [
        "| t (s) | phase | load (callers) | in flight | replicas | deployment status | "
        "answers/s | p50 ms | failures so far |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in samples:
        p50 = "-" if s.p50_ms is None else f"{s.p50_ms:.1f}"
        rows.append(
            f"| {s.t:.0f} | {s.phase} | {s.load} | {s.in_flight} | {_states(s.replicas)} | "
            f"{s.status} | {s.rps:.0f} | {p50} | {s.failures} |"
        )
    return "\n".join(rows)


def verdict_text(v: dict[str, Any], min_replicas: int, max_replicas: int) -> str:
    def yes(flag: bool) -> str:
        return "yes" if flag else "**no**"

    rose_at = "" if v["rose_at_s"] is None else f" at {v['rose_at_s']:.0f} s"
    fell_at = "" if v["fell_at_s"] is None else f" at {v['fell_at_s']:.0f} s"
    if v.get("upscale_seen_at_s") is not None and v["rose"]:
        rose_at += f" (upscaling from {v['upscale_seen_at_s']:.0f} s)"
    if v.get("downscale_seen_at_s") is not None and v["fell"]:
        fell_at += f" (downscaling from {v['downscale_seen_at_s']:.0f} s)"
    return (
        f"Verdict: {'PASS' if v['ok'] else '**FAIL**'} - replicas (min {min_replicas}, max "
        f"{max_replicas}) started at {v['start_replicas']}, rose: {yes(v['rose'])}{rose_at} "
        f"(peak {v['peak_replicas']}), fell: {yes(v['fell'])}{fell_at} (end "
        f"{v['end_replicas']}, back to the minimum: {yes(v['back_to_min'])}), failed requests: "
        f"{v['failures']}"
    )


def autoscaled_config(
    config_path: Path, out: Path, deployment: str, autoscaling: dict[str, Any]
) -> dict[str, Any]:
    """A copy of serve_config.yaml where ``deployment`` autoscales instead of a fixed count."""
    import yaml

    config, options = serve_options(config_path)
    if deployment not in options:
        raise SystemExit(f"{deployment} is not in {config_path}")
    (app_cfg,) = config["applications"]
    for d in app_cfg["deployments"]:
        if d["name"] == deployment:
            d.pop("num_replicas", None)
            d["autoscaling_config"] = autoscaling
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return config


class Load:
    """Callers that each keep one request outstanding while their index is below ``level``."""

    def __init__(self, handle: Any, history: Any, callers: int) -> None:
        self._handle, self._history = handle, history
        self.level = 0
        self.in_flight = 0
        self.latencies: list[tuple[float, float]] = []  # (finished at, seconds)
        self.failures: Counter[str] = Counter()
        self._stop = False
        self._tasks = [asyncio.create_task(self._caller(i)) for i in range(callers)]

    async def _caller(self, i: int) -> None:
        while not self._stop:
            if i >= self.level:
                await asyncio.sleep(0.05)
                continue
            self.in_flight += 1
            t0 = time.perf_counter()
            try:
                quantiles, _version = await self._handle.forecast.remote(self._history, None, 4, 20)
                if getattr(quantiles, "shape", (0,))[0] != 4:
                    self.failures["bad answer"] += 1
            except Exception as exc:  # noqa: BLE001 - every failure counts
                self.failures[type(exc).__name__] += 1
            finally:
                self.in_flight -= 1
            t1 = time.perf_counter()
            self.latencies.append((t1, t1 - t0))

    async def close(self) -> None:
        self._stop = True
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _deployment_status(deployment: str) -> tuple[dict[str, int], str]:
    from ray import serve

    status = serve.status()
    dep = status.applications[APP].deployments[deployment]
    replicas = {str(getattr(k, "value", k)): int(v) for k, v in dep.replica_states.items()}
    return replicas, str(getattr(dep.status, "value", dep.status))


async def drive(opts: argparse.Namespace, deployment: str) -> list[Sample]:
    import numpy as np
    from ray import serve

    from fincoach.features.spending import N_SPENDING

    handle = serve.get_deployment_handle(deployment, app_name=APP)
    rng = np.random.default_rng(13)
    history = rng.gamma(2.0, 40.0, size=(26, N_SPENDING))
    # One call first: the handle is connected and the replica answers.
    await handle.forecast.remote(history, None, 4, 20)
    load = Load(handle, history, opts.concurrency)
    samples: list[Sample] = []
    start = time.perf_counter()
    last = start
    idle_at_min = 0
    try:
        load.level = opts.concurrency
        while True:
            await asyncio.sleep(max(0.0, (len(samples) + 1) - (time.perf_counter() - start)))
            now = time.perf_counter()
            t = now - start
            phase = "load" if t <= opts.load else "idle"
            load.level = opts.concurrency if phase == "load" else 0
            replicas, status = await asyncio.to_thread(_deployment_status, deployment)
            window = [lat for done, lat in load.latencies if last < done <= now]
            sample = Sample(
                t=t,
                phase=phase,
                load=load.level,
                in_flight=load.in_flight,
                replicas=replicas,
                status=status,
                answers=len(window),
                rps=len(window) / max(now - last, 1e-9),
                p50_ms=statistics.median(window) * 1000 if window else None,
                failures=sum(load.failures.values()),
            )
            samples.append(sample)
            last = now
            print(
                f"t={t:5.1f}s {phase} load {sample.load} in flight {sample.in_flight} "
                f"replicas {_states(replicas)} ({status}) {sample.rps:.0f}/s "
                f"failures {sample.failures}",
                flush=True,
            )
            if phase == "idle":
                settled = sample.running <= opts.min_replicas and not sample.starting
                idle_at_min = idle_at_min + 1 if settled else 0
                fell = verdict(samples, opts.min_replicas)["fell"]
                if t >= opts.load + opts.idle or (fell and idle_at_min >= 5):
                    break
    finally:
        await load.close()
    if load.failures:
        print(f"failures by kind: {dict(load.failures)}")
    return samples


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[2:]),
    )
    p.add_argument("--quick", action="store_true", help="Short run: 30 s of load, up to 45 s idle")
    p.add_argument("--concurrency", type=int, default=8, help="Callers during the load (8)")
    p.add_argument("--load", type=float, help="Seconds of load (default 45)")
    p.add_argument(
        "--idle", type=float, help="Longest idle time after it (default 75; ends early when down)"
    )
    p.add_argument("--min-replicas", type=int, default=1)
    p.add_argument("--max-replicas", type=int, default=3)
    p.add_argument("--target", type=float, default=2.0, help="target_ongoing_requests (2)")
    p.add_argument("--upscale-delay", type=float, default=2.0, help="upscale_delay_s (2)")
    p.add_argument("--downscale-delay", type=float, default=10.0, help="downscale_delay_s (10)")
    p.add_argument("--look-back", type=float, default=15.0, help="look_back_period_s (15)")
    p.add_argument(
        "--num-cpus",
        type=float,
        default=None,
        help="CPUs Ray may schedule (default: the machine's; serve_config.yaml's sizing with "
        "3 forecasting replicas needs 2)",
    )
    p.add_argument(
        "--no-throughput",
        action="store_true",
        help="Without RAY_SERVE_THROUGHPUT_OPTIMIZED=1 (which `fincoach serve` sets)",
    )
    p.add_argument("--model-dir", help="Reuse this trained registry instead of training")
    p.add_argument("--config", default=str(ROOT / "serve_config.yaml"), help="Serve config")
    p.add_argument("--json", help="Also write the timeline and verdict to this file")
    p.add_argument("--keep", action="store_true", help="Keep the work directory")
    opts = p.parse_args(argv)
    opts.load = opts.load or (30.0 if opts.quick else 45.0)
    opts.idle = opts.idle or (45.0 if opts.quick else 75.0)
    if not 1 <= opts.min_replicas < opts.max_replicas:
        p.error("need 1 <= --min-replicas < --max-replicas")
    return opts


def main() -> None:
    opts = parse_args()
    command = " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    date = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    from bench.request_path import git_commit, header_line, machine

    head = header_line(command, machine(), date, git_commit())
    print(head, flush=True)
    flags = {} if opts.no_throughput else {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
    os.environ.update(flags)  # read when ray.serve is imported
    workdir = Path(tempfile.mkdtemp(prefix="fincoach-autoscaling-"))
    autoscaling = {
        "min_replicas": opts.min_replicas,
        "initial_replicas": opts.min_replicas,
        "max_replicas": opts.max_replicas,
        "target_ongoing_requests": opts.target,
        "upscale_delay_s": opts.upscale_delay,
        "downscale_delay_s": opts.downscale_delay,
        "look_back_period_s": opts.look_back,
    }
    samples: list[Sample] = []
    v: dict[str, Any] = {}
    error = None
    try:
        url, model_dir = prepare(workdir, opts.model_dir, users=2)
        config_path = workdir / "serve_config.autoscaling.yaml"
        config = autoscaled_config(Path(opts.config), config_path, DEPLOYMENT, autoscaling)
        import ray
        from ray import serve

        from bench.serve_bench import build_configured_app

        env = {**app_env(url, model_dir), **flags}
        ray.init(
            address="local",
            num_cpus=opts.num_cpus or os.cpu_count(),
            namespace="fincoach-bench-autoscaling",
            include_dashboard=False,
            runtime_env={"env_vars": env},
            log_to_driver=False,
        )
        signal.signal(signal.SIGTERM, _interrupt)  # after ray.init, which installs its own
        try:
            app, _ = build_configured_app(config_path, model_dir)
            http = {**config.get("http_options", {}), "host": "127.0.0.1", "port": spare_port()}
            serve.start(http_options=http, proxy_location="HeadOnly")
            t0 = time.perf_counter()
            serve.run(app, name=APP, route_prefix="/")
            print(f"deployed in {time.perf_counter() - t0:.0f} s (load {loadavg()})", flush=True)
            samples = asyncio.run(drive(opts, DEPLOYMENT))
        finally:
            with contextlib.suppress(Exception):
                serve.shutdown()
            ray.shutdown()
    except Exception as exc:  # noqa: BLE001 - report what was recorded, then the error
        error = f"{type(exc).__name__}: {exc}"
    finally:
        v = verdict(samples, opts.min_replicas)
        print(f"\n## autoscaling ({head})\n")
        print(
            f"{DEPLOYMENT} with autoscaling_config {json.dumps(autoscaling)}; {opts.concurrency} "
            f"callers through a DeploymentHandle for {opts.load:.0f} s, then idle.\n"
        )
        if samples:
            print(timeline_table(samples))
            print()
        print(verdict_text(v, opts.min_replicas, opts.max_replicas))
        if error:
            print(f"ERROR: {error}")
        if opts.json:
            Path(opts.json).write_text(
                json.dumps(
                    {
                        "command": command,
                        "date": date,
                        "machine": machine(),
                        "commit": git_commit(),
                        "deployment": DEPLOYMENT,
                        "autoscaling_config": autoscaling,
                        "options": vars(opts),
                        "samples": [asdict(s) for s in samples],
                        "verdict": v,
                        "error": error,
                    },
                    indent=2,
                    default=str,
                )
            )
        if not opts.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if v.get("ok") and not error else 1)


if __name__ == "__main__":
    main()
