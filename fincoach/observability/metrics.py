"""Application metrics behind one facade: Ray's metrics inside Ray, prometheus_client elsewhere.

Inside a Ray process (a Serve replica, the bandit actor) the metrics are ``ray.serve.metrics``
objects: Ray's per-node metrics agent exports them with Serve's own metrics (``ray_serve_*``),
prefixed ``ray_`` (``ray_fincoach_cache_hits_total``). In a Serve replica Serve adds the
``deployment``, ``replica`` and ``application`` tags itself (``deployment`` is reserved there,
so ours is dropped: Serve's has the same value). Anywhere else (the in-process app, tests,
the CLI) they live in this process's own prometheus_client registry, rendered by
``GET /metrics``.

The backend is chosen on first use: Ray if ``ray`` is imported and initialized in this process.
This module never imports ray itself, and recording never raises: a broken metric is logged
once and skipped, it never fails a request.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

logger = logging.getLogger("fincoach.metrics")

Kind = Literal["counter", "histogram"]
# Seconds: in-process model calls take ~1 ms, a Serve hop ~5-50 ms, the timeout is 2 s.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True)
class MetricSpec:
    name: str  # without the "_total" a counter gets on export
    kind: Kind
    description: str
    tags: tuple[str, ...]


MODEL_LATENCY = MetricSpec(
    "fincoach_model_latency_seconds",
    "histogram",
    "Time one model prediction took inside its deployment (or in-process).",
    ("model", "deployment"),
)
CACHE_HITS = MetricSpec(
    "fincoach_cache_hits",
    "counter",
    "Predictions served from the prediction cache.",
    ("prediction_type",),
)
CACHE_MISSES = MetricSpec(
    "fincoach_cache_misses",
    "counter",
    "Predictions computed because the cache had no fresh entry (or the client said no-cache).",
    ("prediction_type",),
)
FALLBACKS = MetricSpec(
    "fincoach_fallbacks",
    "counter",
    "Answers that used the documented fallback because a model or the bandit was unavailable.",
    ("endpoint", "model"),
)
BANDIT_SELECTIONS = MetricSpec(
    "fincoach_bandit_selections",
    "counter",
    "Strategies the bandit chose.",
    ("strategy", "segment"),
)
BANDIT_UPDATES = MetricSpec(
    "fincoach_bandit_updates",
    "counter",
    "Feedbacks the bandit learned from (each counted once).",
    ("strategy", "segment"),
)
BANDIT_REWARDS = MetricSpec(
    "fincoach_bandit_rewards",
    "counter",
    "Sum of the rewards the bandit learned from (mean reward = rewards / updates).",
    ("strategy", "segment"),
)
EVENTS_ACCEPTED = MetricSpec(
    "fincoach_events_accepted",
    "counter",
    "Behavioral events committed (source: api = POST /events, tracking = page views).",
    ("source",),
)
EVENTS_REJECTED = MetricSpec(
    "fincoach_events_rejected",
    "counter",
    "Behavioral events not stored: validation (a 422 of /events, per request), duplicate "
    "(event_id stored before), write_failed (the database refused it), dropped (a tracking "
    "event refused by a full queue or during shutdown).",
    ("reason",),
)
ALL_METRICS = (
    MODEL_LATENCY,
    CACHE_HITS,
    CACHE_MISSES,
    FALLBACKS,
    BANDIT_SELECTIONS,
    BANDIT_UPDATES,
    BANDIT_REWARDS,
    EVENTS_ACCEPTED,
    EVENTS_REJECTED,
)
SERVE_RESERVED_TAGS = frozenset({"deployment", "replica", "application"})


def ray_is_running() -> bool:
    """Whether this process is a Ray worker or driver (never imports ray)."""
    ray = sys.modules.get("ray")
    if ray is None:
        return False
    try:
        return bool(ray.is_initialized())
    except Exception:  # noqa: BLE001 - a half-imported ray is "not running"
        return False


class PrometheusBackend:
    """A process-local prometheus_client registry (not the global one: no clashes)."""

    name = "prometheus"

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self._metrics: dict[str, Any] = {}
        for spec in ALL_METRICS:
            if spec.kind == "counter":
                metric: Any = Counter(
                    spec.name, spec.description, spec.tags, registry=self.registry
                )
            else:
                metric = Histogram(
                    spec.name,
                    spec.description,
                    spec.tags,
                    registry=self.registry,
                    buckets=LATENCY_BUCKETS_S,
                )
            self._metrics[spec.name] = metric

    def record(self, spec: MetricSpec, value: float, tags: dict[str, str]) -> None:
        child = self._metrics[spec.name].labels(**{k: tags.get(k, "") for k in spec.tags})
        if spec.kind == "counter":
            child.inc(value)
        else:
            child.observe(value)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RayBackend:
    """``ray.serve.metrics``: exported by Ray's metrics agent, with Serve's tags in replicas."""

    name = "ray"

    def __init__(self, module: Any | None = None) -> None:
        self._module = module  # ray.serve.metrics, imported on first use (tests pass a fake)
        self._metrics: dict[str, tuple[Any, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def _metric(self, spec: MetricSpec) -> tuple[Any, tuple[str, ...]]:
        found = self._metrics.get(spec.name)
        if found is not None:
            return found
        with self._lock:
            found = self._metrics.get(spec.name)
            if found is None:
                found = self._create(spec)
                self._metrics[spec.name] = found
            return found

    def _create(self, spec: MetricSpec) -> tuple[Any, tuple[str, ...]]:
        if self._module is None:
            self._module = importlib.import_module("ray.serve.metrics")
        serve_metrics = self._module

        def make(tags: tuple[str, ...]) -> Any:
            if spec.kind == "counter":
                return serve_metrics.Counter(spec.name, spec.description, tag_keys=tags)
            return serve_metrics.Histogram(
                spec.name, spec.description, boundaries=list(LATENCY_BUCKETS_S), tag_keys=tags
            )

        try:
            return make(spec.tags), spec.tags
        except ValueError:
            # Inside a Serve replica "deployment" is Serve's own tag (same value as ours).
            tags = tuple(t for t in spec.tags if t not in SERVE_RESERVED_TAGS)
            return make(tags), tags

    def record(self, spec: MetricSpec, value: float, tags: dict[str, str]) -> None:
        metric, keys = self._metric(spec)
        values = {k: tags.get(k, "") for k in keys}
        if spec.kind == "counter":
            metric.inc(value, tags=values)
        else:
            metric.observe(value, tags=values)

    def render(self) -> tuple[bytes, str]:
        raise RuntimeError("under Ray, metrics are exported by Ray's metrics agent")


_backend: PrometheusBackend | RayBackend | None = None
_backend_lock = threading.Lock()
_failed: set[str] = set()


def backend() -> PrometheusBackend | RayBackend:
    """This process's backend, chosen on first use."""
    global _backend
    if _backend is None:
        with _backend_lock:
            if _backend is None:
                _backend = RayBackend() if ray_is_running() else PrometheusBackend()
    return _backend


def _record(spec: MetricSpec, value: float, **tags: str) -> None:
    if spec.kind == "counter" and value <= 0:  # Ray's counters refuse 0 (a reward of 0)
        return
    try:
        backend().record(spec, value, tags)
    except Exception as exc:  # noqa: BLE001 - metrics never fail a request
        if spec.name not in _failed:
            _failed.add(spec.name)
            logger.warning("metric %s not recorded: %s", spec.name, exc)


def observe_model_latency(model: str, deployment: str, seconds: float) -> None:
    _record(MODEL_LATENCY, seconds, model=model, deployment=deployment)


def count_cache(prediction_type: str, *, hit: bool) -> None:
    _record(CACHE_HITS if hit else CACHE_MISSES, 1, prediction_type=prediction_type)


# What is being served, for the fallback counter: the HTTP layer sets the route template, a
# background job its name; the use case that falls back reads it.
ENDPOINT: ContextVar[str] = ContextVar("fincoach_endpoint", default="unknown")


def count_fallback(model: str, endpoint: str | None = None) -> None:
    """Count an answer that used its fallback (``endpoint``: the current one by default)."""
    _record(FALLBACKS, 1, endpoint=endpoint or ENDPOINT.get(), model=model)


def count_bandit_selection(strategy: str, segment: str) -> None:
    _record(BANDIT_SELECTIONS, 1, strategy=strategy, segment=segment)


def count_bandit_update(strategy: str, segment: str, reward: float) -> None:
    _record(BANDIT_UPDATES, 1, strategy=strategy, segment=segment)
    _record(BANDIT_REWARDS, float(reward), strategy=strategy, segment=segment)


def count_events_accepted(source: str, n: int = 1) -> None:
    _record(EVENTS_ACCEPTED, n, source=source)


def count_events_rejected(reason: str, n: int = 1) -> None:
    _record(EVENTS_REJECTED, n, reason=reason)


def render_prometheus() -> tuple[bytes, str] | None:
    """(Prometheus text, its content type) of this process's registry; None under Ray."""
    current = backend()
    if isinstance(current, RayBackend):
        return None
    return current.render()
