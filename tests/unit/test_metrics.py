"""The metrics facade (api/metrics.py) on its prometheus_client backend, and its Ray backend's
handling of Serve's reserved tags (with a stand-in for ray.serve.metrics: no Ray is started)."""

from __future__ import annotations

import re
import sys
import types
from typing import Any

import pytest

from fincoach.observability import metrics


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh in-process backend for this test; its prometheus_client registry."""
    backend = metrics.PrometheusBackend()
    monkeypatch.setattr(metrics, "_backend", backend)
    return backend.registry


def test_counters_increase_per_tag(registry: Any) -> None:
    metrics.count_cache("spending", hit=True)
    metrics.count_cache("spending", hit=True)
    metrics.count_cache("spending", hit=False)
    metrics.count_fallback("cql_legacy", endpoint="/coaching/recommendation")
    metrics.count_events_accepted("api", 3)
    metrics.count_events_rejected("duplicate")

    def value(name: str, **tags: str) -> float | None:
        return registry.get_sample_value(name, tags)

    assert value("fincoach_cache_hits_total", prediction_type="spending") == 2
    assert value("fincoach_cache_misses_total", prediction_type="spending") == 1
    assert value("fincoach_cache_hits_total", prediction_type="goal") is None
    assert (
        value("fincoach_fallbacks_total", endpoint="/coaching/recommendation", model="cql_legacy")
        == 1
    )
    assert value("fincoach_events_accepted_total", source="api") == 3
    assert value("fincoach_events_rejected_total", reason="duplicate") == 1


def test_histogram_observes_latency_in_buckets(registry: Any) -> None:
    metrics.observe_model_latency("forecast", "in_process", 0.003)
    metrics.observe_model_latency("forecast", "in_process", 0.2)
    tags = {"model": "forecast", "deployment": "in_process"}
    assert registry.get_sample_value("fincoach_model_latency_seconds_count", tags) == 2
    assert registry.get_sample_value("fincoach_model_latency_seconds_sum", tags) == pytest.approx(
        0.203
    )
    assert (
        registry.get_sample_value("fincoach_model_latency_seconds_bucket", {**tags, "le": "0.005"})
        == 1
    )
    assert (
        registry.get_sample_value("fincoach_model_latency_seconds_bucket", {**tags, "le": "0.25"})
        == 2
    )


def test_bandit_rewards_sum_and_a_zero_reward_still_counts_the_update(registry: Any) -> None:
    metrics.count_bandit_selection("cql_greedy", "2")
    metrics.count_bandit_update("cql_greedy", "2", 1.0)
    metrics.count_bandit_update("cql_greedy", "2", 0.0)
    tags = {"strategy": "cql_greedy", "segment": "2"}
    assert registry.get_sample_value("fincoach_bandit_selections_total", tags) == 1
    assert registry.get_sample_value("fincoach_bandit_updates_total", tags) == 2
    assert registry.get_sample_value("fincoach_bandit_rewards_total", tags) == 1.0


def test_a_failing_metric_never_raises(registry: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any) -> None:
        raise RuntimeError("exporter down")

    monkeypatch.setattr(metrics.backend(), "record", broken)
    metrics.count_cache("goal", hit=True)  # logged once, not raised
    metrics.observe_model_latency("segmentation", "in_process", 0.01)


def test_render_is_prometheus_text_with_every_metric(registry: Any) -> None:
    metrics.count_cache("recommendation", hit=False)
    rendered = metrics.render_prometheus()
    assert rendered is not None
    body, content_type = rendered
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert 'fincoach_cache_misses_total{prediction_type="recommendation"} 1.0' in text
    for spec in metrics.ALL_METRICS:
        assert re.search(rf"^# TYPE {spec.name}(_total)? {spec.kind}$", text, re.M), spec.name


def test_ray_is_running_only_when_ray_is_imported_and_initialized(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = types.ModuleType("ray")
    fake.is_initialized = lambda: False  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ray", fake)
    assert metrics.ray_is_running() is False
    fake.is_initialized = lambda: True  # type: ignore[attr-defined]
    assert metrics.ray_is_running() is True
    monkeypatch.delitem(sys.modules, "ray")
    assert metrics.ray_is_running() is False


class _FakeServeMetric:
    """ray.serve.metrics' behaviour inside a replica: "deployment" is Serve's own tag."""

    def __init__(self, name: str, description: str = "", **kwargs: Any) -> None:
        tag_keys = kwargs.get("tag_keys") or ()
        if "deployment" in tag_keys:
            raise ValueError("'deployment' tag is reserved for Ray Serve metrics")
        self.name, self.tag_keys, self.kwargs = name, tag_keys, kwargs
        self.records: list[tuple[float, dict[str, str]]] = []

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        if value <= 0:
            raise ValueError("value must be >0")
        self.records.append((value, dict(tags or {})))

    observe = inc


def test_ray_backend_leaves_the_deployment_tag_to_serve_in_a_replica() -> None:
    fake = types.SimpleNamespace(Counter=_FakeServeMetric, Histogram=_FakeServeMetric)
    backend = metrics.RayBackend(fake)
    backend.record(
        metrics.MODEL_LATENCY, 0.01, {"model": "forecast", "deployment": "ForecastingDeployment"}
    )
    backend.record(metrics.CACHE_HITS, 1, {"prediction_type": "goal"})
    latency, keys = backend._metric(metrics.MODEL_LATENCY)
    assert keys == ("model",) and latency.records == [(0.01, {"model": "forecast"})]
    assert latency.kwargs["boundaries"] == list(metrics.LATENCY_BUCKETS_S)
    hits, keys = backend._metric(metrics.CACHE_HITS)
    assert keys == ("prediction_type",) and hits.records == [(1, {"prediction_type": "goal"})]
