"""Behavior analysis of one user's events: a window summary, a 0-100 engagement score and a
statistical test for a change in activity.

Windows follow the feature convention (``features/state.py``): they end at ``as_of``, which is
exclusive, and start ``days`` days before it, which is inclusive. So an event exactly at
``as_of - days`` is in the window, and an event at or after ``as_of`` is not. "Days" are
24-hour buckets counted back from ``as_of`` (calendar days when ``as_of`` is midnight UTC).

``engagement_score_100`` is a separate, explainable score for the API. It does not replace
``features.state.engagement_score``: the trained models depend on that one's exact meaning.

Pure numpy and the standard library: the exact binomial test is computed here in log space, and
the unit tests check it against ``scipy.stats.binomtest``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final, Literal

import numpy as np

from fincoach.features.frames import EventFrame, to_datetime64
from fincoach.features.vocab import EVENT_TYPES

DAY_SECONDS: Final = 86_400
SESSION_GAP_SECONDS: Final = 30 * 60  # a gap longer than this starts a new session

# engagement_score_100: component weights (they sum to 1) and saturation points.
ENGAGEMENT_WEIGHTS: Final = {"activity": 0.35, "volume": 0.25, "diversity": 0.20, "recency": 0.20}
VOLUME_SATURATION_PER_DAY: Final = 10.0  # events per day of window at which volume reaches 1
RECENCY_HALF_LIFE_DAYS: Final = 7.0

CHANGE_TEST_NAME: Final = "exact conditional binomial test of two Poisson rates"
MIN_CHANGE_EVENTS: Final = 10  # fewer events (recent + baseline) are never called significant
_PMF_TIE_TOLERANCE: Final = 1e-7  # scipy.stats.binomtest's relative tolerance for ties

Direction = Literal["increase", "decrease", "none"]


@dataclass(frozen=True)
class BehaviorSummary:
    """What a user did in the ``window_days`` days before ``as_of``."""

    window_days: int
    total_events: int
    events_by_type: dict[str, int]  # every name of EVENT_TYPES, in that order
    active_days: int  # day buckets with at least one event
    events_per_active_day: float  # 0 without active days
    sessions: int
    avg_session_events: float  # 0 without sessions
    last_event_at: datetime | None  # aware, UTC
    most_common_type: str | None  # ties go to the earlier name in EVENT_TYPES
    recommendation_interaction_rate: float  # per page view; 0 without page views
    daily_counts: list[int]  # window_days buckets, oldest first, the last one ending at as_of


@dataclass(frozen=True)
class TypeChange:
    """The change test restricted to one event type."""

    event_type: str
    recent_count: int
    baseline_count: int
    rate_ratio: float | None
    direction: Direction
    p_value: float
    significant: bool  # Holm-adjusted across the tested types


@dataclass(frozen=True)
class BehaviorChange:
    """Whether the event rate of the last ``recent_days`` differs from the ``baseline_days``
    before them."""

    recent_days: int
    baseline_days: int
    recent_count: int
    baseline_count: int
    recent_rate_per_day: float
    baseline_rate_per_day: float
    rate_ratio: float | None  # recent rate / baseline rate; None when the baseline is empty
    direction: Direction  # "none" unless significant
    p_value: float
    significant: bool
    alpha: float
    test: str = CHANGE_TEST_NAME
    # Types with at least MIN_CHANGE_EVENTS events, tested separately.
    by_type: tuple[TypeChange, ...] = ()


def _as_seconds(value: np.datetime64 | datetime | date) -> np.datetime64:
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[s]")
    return to_datetime64(value)


def _in_window(events: EventFrame, start: np.datetime64, end: np.datetime64) -> np.ndarray:
    ts = events.timestamp.astype("datetime64[s]")
    return np.asarray((ts >= start) & (ts < end), dtype=bool)


def _gap_sessions(timestamps: np.ndarray) -> int:
    """Sessions among ``timestamps``: one, plus one for each gap over SESSION_GAP_SECONDS."""
    if timestamps.size == 0:
        return 0
    seconds = np.sort(timestamps.astype("datetime64[s]").astype(np.int64))
    return 1 + int(np.count_nonzero(np.diff(seconds) > SESSION_GAP_SECONDS))


def behavior_summary(
    events: EventFrame,
    as_of: np.datetime64 | datetime,
    *,
    days: int = 30,
    session_ids: np.ndarray | None = None,
) -> BehaviorSummary:
    """Summarise the events in ``[as_of - days, as_of)``.

    ``session_ids`` (optional) is aligned with ``events``; each distinct id is one session.
    Events without an id (``None``), and all events when no ids are given, are split into
    sessions by inactivity gaps longer than 30 minutes (a gap of exactly 30 minutes continues
    the session).
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    if session_ids is not None and session_ids.shape[0] != len(events):
        raise ValueError("session_ids must be aligned with events")
    end = _as_seconds(as_of)
    start = end - np.timedelta64(days * DAY_SECONDS, "s")
    mask = _in_window(events, start, end)
    ts = events.timestamp.astype("datetime64[s]")[mask]
    types = np.asarray(events.event_type)[mask].astype(int)
    total = int(ts.size)

    by_type_counts = np.bincount(types, minlength=len(EVENT_TYPES))[: len(EVENT_TYPES)]
    events_by_type = {name: int(by_type_counts[i]) for i, name in enumerate(EVENT_TYPES)}

    offset = (ts - start).astype("timedelta64[s]").astype(np.int64)
    daily = np.bincount(offset // DAY_SECONDS, minlength=days)[:days]
    active_days = int(np.count_nonzero(daily))

    if session_ids is None:
        sessions = _gap_sessions(ts)
    else:
        ids = session_ids[mask].tolist()
        with_id = {s for s in ids if s is not None}
        without_id = ts[np.array([s is None for s in ids], dtype=bool)]
        sessions = len(with_id) + _gap_sessions(without_id)

    last_event_at = None
    most_common_type = None
    if total:
        last = int(ts.astype(np.int64).max())
        last_event_at = datetime.fromtimestamp(last, tz=UTC)
        most_common_type = EVENT_TYPES[int(np.argmax(by_type_counts))]
    views = events_by_type["page_view"]
    return BehaviorSummary(
        window_days=days,
        total_events=total,
        events_by_type=events_by_type,
        active_days=active_days,
        events_per_active_day=total / active_days if active_days else 0.0,
        sessions=sessions,
        avg_session_events=total / sessions if sessions else 0.0,
        last_event_at=last_event_at,
        most_common_type=most_common_type,
        recommendation_interaction_rate=(
            events_by_type["recommendation_interaction"] / views if views else 0.0
        ),
        daily_counts=[int(c) for c in daily],
    )


def engagement_components(summary: BehaviorSummary) -> dict[str, float]:
    """The four components of ``engagement_score_100``, each in [0, 1]:

    - activity = active_days / window_days;
    - volume = min(1, log(1 + r) / log(1 + VOLUME_SATURATION_PER_DAY)), r = events per day of
      window (log-scaled: the first events a day count most);
    - diversity = H(p) / log(6), the entropy of the event-type shares normalised by its maximum
      (1 only for an even spread over all six types, 0 for a single type);
    - recency = 0.5 ** (d / RECENCY_HALF_LIFE_DAYS), d = whole days since the last active day
      bucket (1 with an event in the last 24 hours), 0 without events.
    """
    days = max(summary.window_days, 1)
    if summary.total_events <= 0:
        return dict.fromkeys(ENGAGEMENT_WEIGHTS, 0.0)
    activity = min(summary.active_days / days, 1.0)
    rate = summary.total_events / days
    volume = min(math.log1p(rate) / math.log1p(VOLUME_SATURATION_PER_DAY), 1.0)
    counts = np.array([c for c in summary.events_by_type.values() if c > 0], dtype=float)
    shares = counts / counts.sum()
    entropy = float(-(shares * np.log(shares)).sum())
    diversity = min(max(entropy / math.log(len(EVENT_TYPES)), 0.0), 1.0)
    active = np.flatnonzero(np.asarray(summary.daily_counts))
    recency = 0.0
    if active.size:
        since = len(summary.daily_counts) - 1 - int(active[-1])
        recency = 0.5 ** (since / RECENCY_HALF_LIFE_DAYS)
    return {"activity": activity, "volume": volume, "diversity": diversity, "recency": recency}


def engagement_score_100(summary: BehaviorSummary) -> float:
    """0-100: ``100 * sum(weight_c * component_c)`` over the components of
    ``engagement_components`` with ENGAGEMENT_WEIGHTS (activity 0.35, volume 0.25, diversity
    0.20, recency 0.20).

    The weights are positive and sum to 1, so the score is non-decreasing in each component,
    0 without events, and 100 only when every component saturates: an event on every day, at
    least VOLUME_SATURATION_PER_DAY events a day on average, an even spread over all six types
    and an event in the last 24 hours. Note that diversity is a share, not a count: more events
    of an already dominant type can lower it, while an event of a type not seen yet raises it.
    """
    parts = engagement_components(summary)
    score = 100.0 * sum(ENGAGEMENT_WEIGHTS[k] * parts[k] for k in ENGAGEMENT_WEIGHTS)
    return float(min(max(score, 0.0), 100.0))


def _binom_log_pmf(n: int, p: float) -> np.ndarray:
    k = np.arange(n + 1, dtype=float)
    log_comb = math.lgamma(n + 1) - np.array(
        [math.lgamma(i + 1) + math.lgamma(n - i + 1) for i in range(n + 1)]
    )
    return np.asarray(log_comb + k * math.log(p) + (n - k) * math.log1p(-p))


def binom_two_sided_p(k: int, n: int, p: float) -> float:
    """Exact two-sided binomial p-value: the probability, under Binomial(n, p), of every
    outcome no more likely than ``k`` (the "minlike" rule of ``scipy.stats.binomtest``, with
    its relative tolerance of 1e-7 for ties). Summed in log space, so large n cannot
    overflow."""
    if not 0 <= k <= n:
        raise ValueError("k must be between 0 and n")
    if not 0.0 < p < 1.0:
        raise ValueError("p must be strictly between 0 and 1")
    if n == 0:
        return 1.0
    log_pmf = _binom_log_pmf(n, p)
    limit = log_pmf[k] + math.log1p(_PMF_TIE_TOLERANCE)
    tail = log_pmf[log_pmf <= limit]
    top = float(tail.max())
    log_p = top + math.log(float(np.exp(tail - top).sum()))
    return float(min(1.0, math.exp(log_p)))


def _direction(recent: int, baseline: int, p0: float, significant: bool) -> Direction:
    if not significant:
        return "none"
    return "increase" if recent > p0 * (recent + baseline) else "decrease"


def _ratio(recent: int, baseline: int, recent_days: int, baseline_days: int) -> float | None:
    if baseline == 0:
        return None
    return (recent / recent_days) / (baseline / baseline_days)


def _holm(p_values: list[float], alpha: float) -> list[bool]:
    """Holm-Bonferroni: which hypotheses are rejected at family-wise level ``alpha``."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] >= alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected


def detect_behavior_change(
    events: EventFrame,
    as_of: np.datetime64 | datetime,
    *,
    recent_days: int = 7,
    baseline_days: int = 23,
    alpha: float = 0.05,
) -> BehaviorChange:
    """Test whether the event rate in ``[as_of - recent_days, as_of)`` differs from the rate in
    the ``baseline_days`` before it.

    Model: counts are Poisson with rates lambda_r and lambda_b per day. Given n = recent +
    baseline, the recent count is Binomial(n, p0) with p0 = recent_days / (recent_days +
    baseline_days) under H0: lambda_r = lambda_b, so the exact two-sided binomial test of
    p = p0 is an exact test of equal rates (the conditional test of two Poisson rates).

    ``significant`` needs p < alpha and n >= MIN_CHANGE_EVENTS (10). The test stays valid for
    small n, but there it flags changes nobody can act on (four app opens after a silent
    baseline give p = 0.003); the rule only makes flags rarer, so the false-positive rate
    stays at most alpha. ``by_type`` repeats the test for each type with at least 10 events,
    with Holm's correction across those types.
    """
    if recent_days < 1 or baseline_days < 1:
        raise ValueError("recent_days and baseline_days must be at least 1")
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be between 0 and 1")
    end = _as_seconds(as_of)
    split = end - np.timedelta64(recent_days * DAY_SECONDS, "s")
    start = split - np.timedelta64(baseline_days * DAY_SECONDS, "s")
    recent_mask = _in_window(events, split, end)
    baseline_mask = _in_window(events, start, split)
    p0 = recent_days / (recent_days + baseline_days)

    recent, baseline = int(recent_mask.sum()), int(baseline_mask.sum())
    p_value = binom_two_sided_p(recent, recent + baseline, p0)
    significant = p_value < alpha and recent + baseline >= MIN_CHANGE_EVENTS

    codes = np.asarray(events.event_type).astype(int)
    tested: list[tuple[str, int, int, float]] = []
    for code, name in enumerate(EVENT_TYPES):
        r = int((recent_mask & (codes == code)).sum())
        b = int((baseline_mask & (codes == code)).sum())
        if r + b >= MIN_CHANGE_EVENTS:
            tested.append((name, r, b, binom_two_sided_p(r, r + b, p0)))
    rejected = _holm([t[3] for t in tested], alpha)
    by_type = tuple(
        TypeChange(
            event_type=name,
            recent_count=r,
            baseline_count=b,
            rate_ratio=_ratio(r, b, recent_days, baseline_days),
            direction=_direction(r, b, p0, sig),
            p_value=p,
            significant=sig,
        )
        for (name, r, b, p), sig in zip(tested, rejected, strict=True)
    )
    return BehaviorChange(
        recent_days=recent_days,
        baseline_days=baseline_days,
        recent_count=recent,
        baseline_count=baseline,
        recent_rate_per_day=recent / recent_days,
        baseline_rate_per_day=baseline / baseline_days,
        rate_ratio=_ratio(recent, baseline, recent_days, baseline_days),
        direction=_direction(recent, baseline, p0, significant),
        p_value=p_value,
        significant=significant,
        alpha=alpha,
        by_type=by_type,
    )
