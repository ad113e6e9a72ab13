"""bench/autoscaling.py's pure parts: the verdict over the timeline, and its table."""

from __future__ import annotations

from pathlib import Path

import yaml

from bench.autoscaling import Sample, autoscaled_config, timeline_table, verdict, verdict_text

ROOT = Path(__file__).resolve().parents[2]


def _timeline(running: list[int], failures: int = 0, load_until: int = 5) -> list[Sample]:
    return [
        Sample(
            t=float(i),
            phase="load" if i <= load_until else "idle",
            load=8 if i <= load_until else 0,
            in_flight=8 if i <= load_until else 0,
            replicas={"RUNNING": n, **({"STARTING": 1} if i == 2 else {})},
            failures=failures if i == len(running) - 1 else 0,
        )
        for i, n in enumerate(running)
    ]


def test_rose_and_fell_without_failures_passes() -> None:
    v = verdict(_timeline([1, 1, 1, 2, 3, 3, 3, 2, 1, 1]), min_replicas=1)
    assert v["ok"] and v["rose"] and v["fell"] and v["back_to_min"]
    assert (v["start_replicas"], v["peak_replicas"], v["end_replicas"]) == (1, 3, 1)
    assert v["rose_at_s"] == 3.0 and v["fell_at_s"] == 7.0
    assert v["upscale_seen_at_s"] == 2.0  # the sample with a STARTING replica
    assert "rose: yes at 3 s (upscaling from 2 s)" in verdict_text(v, 1, 3)


def test_never_rose_fails() -> None:
    v = verdict(_timeline([1] * 10), min_replicas=1)
    assert not v["ok"] and not v["rose"] and not v["fell"]
    assert v["rose_at_s"] is None and v["fell_at_s"] is None


def test_rose_but_stayed_up_fails() -> None:
    v = verdict(_timeline([1, 2, 3, 3, 3, 3]), min_replicas=1)
    assert v["rose"] and not v["fell"] and not v["ok"]


def test_fell_only_partly_still_fell() -> None:
    v = verdict(_timeline([1, 3, 3, 2, 2]), min_replicas=1)
    assert v["ok"] and v["fell"] and not v["back_to_min"]


def test_a_failed_request_fails_it() -> None:
    v = verdict(_timeline([1, 2, 3, 1], failures=1), min_replicas=1)
    assert v["rose"] and v["fell"] and v["failures"] == 1 and not v["ok"]
    assert "**FAIL**" in verdict_text(v, 1, 3)


def test_no_samples() -> None:
    v = verdict([], min_replicas=1)
    assert not v["ok"]
    assert "**FAIL**" in verdict_text(v, 1, 3)


def test_timeline_table() -> None:
    samples = _timeline([1, 1, 2, 3])
    samples[1].rps, samples[1].p50_ms, samples[1].status = 350.4, 2.25, "UPSCALING"
    rows = timeline_table(samples).splitlines()
    assert rows[0].startswith("| t (s) | phase | load (callers) | in flight | replicas |")
    assert rows[3] == "| 1 | load | 8 | 8 | RUNNING 1 | UPSCALING | 350 | 2.2 | 0 |"
    assert "| RUNNING 2, STARTING 1 |" in rows[4]
    text = verdict_text(verdict(samples, 1), 1, 3)
    assert "rose: yes at 2 s (upscaling from 1 s) (peak 3)" in text
    assert "fell: **no**" in text


def test_autoscaled_config_replaces_the_fixed_count(tmp_path: Path) -> None:
    auto = {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 2}
    out = tmp_path / "cfg.yaml"
    autoscaled_config(ROOT / "serve_config.yaml", out, "ForecastingDeployment", auto)
    (app,) = yaml.safe_load(out.read_text())["applications"]
    deps = {d["name"]: d for d in app["deployments"]}
    assert "num_replicas" not in deps["ForecastingDeployment"]
    assert deps["ForecastingDeployment"]["autoscaling_config"] == auto
    assert deps["ForecastingDeployment"]["max_ongoing_requests"] == 16  # the rest as it was
    assert deps["CoachIngress"]["num_replicas"] == 2
