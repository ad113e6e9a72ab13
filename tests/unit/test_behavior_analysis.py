"""Behavior analysis: hand-checked summaries and window edges, the engagement score's formula
and bounds, and the change test's p-values (against scipy), error rate and power."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from fincoach.features.frames import EventFrame
from fincoach.features.vocab import EVENT_TYPES
from fincoach.tracking.analysis import (
    CHANGE_TEST_NAME,
    MIN_CHANGE_EVENTS,
    BehaviorSummary,
    behavior_summary,
    binom_two_sided_p,
    detect_behavior_change,
    engagement_components,
    engagement_score_100,
)

AS_OF = datetime(2026, 3, 2)  # naive UTC, midnight: day buckets are calendar days
AS_OF64 = np.datetime64(AS_OF, "s")
P0 = 7 / 30

# Inside the 30-day window [2026-01-31 00:00, 2026-03-02 00:00).
INSIDE = [
    (datetime(2026, 1, 31, 0, 0), "page_view"),  # exactly as_of - 30 days: included
    (datetime(2026, 2, 10, 20, 0), "goal_modification"),
    (datetime(2026, 2, 25, 9, 0), "page_view"),
    (datetime(2026, 2, 25, 9, 5), "search"),
    (datetime(2026, 3, 1, 10, 0), "page_view"),
    (datetime(2026, 3, 1, 10, 10), "recommendation_interaction"),
    (datetime(2026, 3, 1, 10, 45), "page_view"),  # 35 min gap: a new session
    (datetime(2026, 3, 1, 11, 15), "purchase"),  # exactly 30 min gap: same session
]
OUTSIDE = [
    (datetime(2026, 1, 30, 23, 59, 59), "filter"),  # one second before the window
    (datetime(2026, 3, 2, 0, 0), "filter"),  # at as_of: excluded (as_of is exclusive)
    (datetime(2026, 3, 5, 12, 0), "filter"),  # after as_of
]


def _frame(rows: list[tuple[datetime, str]]) -> EventFrame:
    return EventFrame.from_rows([(t.replace(tzinfo=UTC), e) for t, e in rows])


def _days(n_days: int, types: list[str]) -> list[tuple[datetime, str]]:
    """Events of ``types`` (one each, a minute apart) at noon on each of the last n_days."""
    return [
        (AS_OF - timedelta(days=d) + timedelta(hours=12, minutes=i), t)
        for d in range(1, n_days + 1)
        for i, t in enumerate(types)
    ]


# --- behavior_summary -------------------------------------------------------------------------


def test_summary_matches_hand_counts() -> None:
    s = behavior_summary(_frame(INSIDE + OUTSIDE), AS_OF64)
    daily = [0] * 30
    daily[0], daily[10], daily[25], daily[29] = 1, 1, 2, 4
    assert s == BehaviorSummary(
        window_days=30,
        total_events=8,
        events_by_type={
            "page_view": 4,
            "recommendation_interaction": 1,
            "purchase": 1,
            "goal_modification": 1,
            "search": 1,
            "filter": 0,
        },
        active_days=4,
        events_per_active_day=2.0,
        # {01-31}, {02-10}, {02-25 09:00, 09:05}, {03-01 10:00, 10:10}, {10:45, 11:15}
        sessions=5,
        avg_session_events=1.6,
        last_event_at=datetime(2026, 3, 1, 11, 15, tzinfo=UTC),
        most_common_type="page_view",
        recommendation_interaction_rate=0.25,
        daily_counts=daily,
    )
    assert list(s.events_by_type) == list(EVENT_TYPES)


def test_summary_window_edges() -> None:
    start = AS_OF - timedelta(days=30)
    at_start = behavior_summary(_frame([(start, "filter")]), AS_OF64)
    assert at_start.total_events == 1 and at_start.daily_counts[0] == 1
    for t in (start - timedelta(seconds=1), AS_OF, AS_OF + timedelta(days=1)):
        assert behavior_summary(_frame([(t, "filter")]), AS_OF64).total_events == 0
    last = behavior_summary(_frame([(AS_OF - timedelta(seconds=1), "search")]), AS_OF64)
    assert last.daily_counts[-1] == 1 and last.active_days == 1
    # A shorter window, and an aware datetime as_of instead of a datetime64.
    week = behavior_summary(_frame(INSIDE), AS_OF.replace(tzinfo=UTC), days=7)
    assert week.window_days == 7 and week.total_events == 6
    assert week.daily_counts == [0, 0, 2, 0, 0, 0, 4]


def test_summary_window_does_not_follow_midnight() -> None:
    # as_of at 06:00: buckets run 06:00 to 06:00, so 05:59 and 06:00 fall in different days.
    as_of = np.datetime64("2026-03-02T06:00:00")
    rows = [(datetime(2026, 3, 2, 5, 59), "search"), (datetime(2026, 3, 1, 6, 0), "search")]
    s = behavior_summary(_frame(rows), as_of, days=2)
    assert s.daily_counts == [0, 2]
    s = behavior_summary(_frame([(datetime(2026, 3, 1, 5, 59), "search")]), as_of, days=2)
    assert s.daily_counts == [1, 0]


def test_summary_empty() -> None:
    s = behavior_summary(EventFrame.empty(), AS_OF64, days=5)
    assert s.total_events == 0 and s.active_days == 0 and s.sessions == 0
    assert s.events_per_active_day == 0.0 and s.avg_session_events == 0.0
    assert s.last_event_at is None and s.most_common_type is None
    assert s.recommendation_interaction_rate == 0.0 and s.daily_counts == [0] * 5
    assert set(s.events_by_type.values()) == {0} and len(s.events_by_type) == 6


def test_sessions_split_on_gaps_over_30_minutes() -> None:
    base = AS_OF - timedelta(days=1)
    offsets = [0, 30, 60, 91, 121, 200]  # minutes: gaps 30, 30, 31, 30, 79
    rows = [(base + timedelta(minutes=m), "page_view") for m in offsets]
    s = behavior_summary(_frame(rows), AS_OF64)
    assert s.sessions == 3 and s.avg_session_events == 2.0
    one = behavior_summary(_frame(rows[:1]), AS_OF64)
    assert one.sessions == 1 and one.avg_session_events == 1.0


def test_sessions_from_ids_and_gaps_for_missing_ids() -> None:
    frame = _frame(INSIDE + OUTSIDE)  # sorted by time: ids follow that order
    ids = np.array(["x", "old", "a", "b", "b", None, None, "c", "c", "y", "z"], dtype=object)
    s = behavior_summary(frame, AS_OF64, session_ids=ids)
    # Window ids {old, a, b, c} = 4, plus the two id-less events 10 minutes apart = 1.
    assert s.sessions == 5 and s.avg_session_events == 8 / 5
    ids = np.array(["s"] * 11, dtype=object)
    assert behavior_summary(frame, AS_OF64, session_ids=ids).sessions == 1
    with pytest.raises(ValueError, match="aligned"):
        behavior_summary(frame, AS_OF64, session_ids=ids[:3])


def test_summary_ties_go_to_the_earlier_type_and_rate_counts_page_views() -> None:
    rows = _days(1, ["search", "recommendation_interaction", "recommendation_interaction"])
    rows += _days(2, ["page_view", "search"])
    s = behavior_summary(_frame(rows), AS_OF64)
    assert s.events_by_type["search"] == 3 and s.events_by_type["recommendation_interaction"] == 2
    assert s.most_common_type == "search"
    assert s.recommendation_interaction_rate == 1.0  # 2 interactions / 2 page views
    tie = behavior_summary(_frame(_days(1, ["filter", "page_view"])), AS_OF64)
    assert tie.most_common_type == "page_view"


def test_summary_rejects_empty_window() -> None:
    with pytest.raises(ValueError, match="days"):
        behavior_summary(EventFrame.empty(), AS_OF64, days=0)


# --- engagement_score_100 ---------------------------------------------------------------------


def test_engagement_zero_without_events() -> None:
    assert engagement_score_100(behavior_summary(EventFrame.empty(), AS_OF64)) == 0.0
    old = _frame([(AS_OF - timedelta(days=40), "page_view")])
    assert engagement_score_100(behavior_summary(old, AS_OF64)) == 0.0


def test_engagement_follows_the_documented_formula() -> None:
    s = behavior_summary(_frame(INSIDE), AS_OF64)
    shares = np.array([4, 1, 1, 1, 1]) / 8
    parts = {
        "activity": 4 / 30,
        "volume": math.log1p(8 / 30) / math.log1p(10.0),
        "diversity": float(-(shares * np.log(shares)).sum()) / math.log(6),
        "recency": 1.0,  # an event in the last day bucket
    }
    assert engagement_components(s) == pytest.approx(parts)
    expected = 100 * (
        0.35 * parts["activity"]
        + 0.25 * parts["volume"]
        + 0.20 * parts["diversity"]
        + 0.20 * parts["recency"]
    )
    assert engagement_score_100(s) == pytest.approx(expected)
    # Recency halves every 7 days without events.
    week_ago = behavior_summary(_frame(_days(7, ["page_view"])[-1:]), AS_OF64)
    assert engagement_components(week_ago)["recency"] == pytest.approx(0.5 ** (6 / 7))


def test_engagement_reaches_100_only_at_saturation() -> None:
    full = _days(30, list(EVENT_TYPES) * 2)  # 12 events a day, all types evenly, every day
    assert engagement_score_100(behavior_summary(_frame(full), AS_OF64)) == pytest.approx(100.0)
    near_misses = [
        _days(29, list(EVENT_TYPES) * 2),  # one day without events (the oldest)
        _days(30, list(EVENT_TYPES[:5]) * 2),  # one type never used
        _days(30, list(EVENT_TYPES)),  # 6 events a day: below volume saturation
        [r for r in full if r[0] < AS_OF - timedelta(days=1)]
        + _days(30, list(EVENT_TYPES) * 2)[-12:],  # nothing in the last 24 hours
    ]
    for rows in near_misses:
        assert engagement_score_100(behavior_summary(_frame(rows), AS_OF64)) < 99.0


def test_engagement_monotone_in_active_days_and_types() -> None:
    mix = ["page_view", "page_view", "search"]
    scores = [
        engagement_score_100(behavior_summary(_frame(_days(n, mix)), AS_OF64)) for n in range(31)
    ]
    assert scores[0] == 0.0 and all(a < b for a, b in zip(scores, scores[1:], strict=False))
    scores = [
        engagement_score_100(behavior_summary(_frame(_days(5, list(EVENT_TYPES[:k]))), AS_OF64))
        for k in range(7)
    ]
    assert scores[0] == 0.0 and all(a < b for a, b in zip(scores, scores[1:], strict=False))
    # One event of an unseen type never lowers the score, whatever the history.
    rng = np.random.default_rng(0)
    for _ in range(50):
        rows = _random_rows(rng, int(rng.integers(1, 60)), n_types=3)
        t = AS_OF - timedelta(days=int(rng.integers(1, 31)), minutes=1)
        before = engagement_score_100(behavior_summary(_frame(rows), AS_OF64))
        after = engagement_score_100(behavior_summary(_frame([*rows, (t, "filter")]), AS_OF64))
        assert after >= before


def test_engagement_bounded() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        rows = _random_rows(rng, int(rng.integers(0, 2000)), n_types=6)
        score = engagement_score_100(behavior_summary(_frame(rows), AS_OF64))
        assert 0.0 <= score <= 100.0


def _random_rows(rng: np.random.Generator, n: int, n_types: int) -> list[tuple[datetime, str]]:
    seconds = rng.integers(1, 35 * 86_400, size=n)  # some before the window
    types = rng.integers(0, n_types, size=n)
    return [
        (AS_OF - timedelta(seconds=int(s)), EVENT_TYPES[int(c)])
        for s, c in zip(seconds, types, strict=True)
    ]


# --- detect_behavior_change -------------------------------------------------------------------


def _stream(
    rng: np.random.Generator, baseline_rate: float, recent_rate: float, n_types: int = 1
) -> EventFrame:
    """A Poisson process: ``baseline_rate`` events a day for days 30..8 before as_of, then
    ``recent_rate`` for the last 7 days; times uniform within each day."""
    start = AS_OF64 - np.timedelta64(30, "D")
    stamps = []
    for day in range(30):
        rate = recent_rate if day >= 23 else baseline_rate
        k = int(rng.poisson(rate))
        offsets = rng.integers(0, 86_400, size=k)
        stamps.append(start + np.timedelta64(day, "D") + offsets.astype("timedelta64[s]"))
    ts = np.sort(np.concatenate(stamps).astype("datetime64[s]"))
    return EventFrame(ts, rng.integers(0, n_types, size=ts.size))


def test_change_constant_rate_false_positive_rate_near_alpha() -> None:
    flags = [
        detect_behavior_change(_stream(np.random.default_rng(seed), 5.0, 5.0), AS_OF64).significant
        for seed in range(200)
    ]
    rate = float(np.mean(flags))
    # The exact test is conservative (discrete), so at most about alpha; not degenerate either.
    assert 0.01 <= rate <= 0.08


@pytest.mark.parametrize(("recent_rate", "direction"), [(15.0, "increase"), (5 / 3, "decrease")])
def test_change_detects_threefold_shift(recent_rate: float, direction: str) -> None:
    results = [
        detect_behavior_change(_stream(np.random.default_rng(seed), 5.0, recent_rate), AS_OF64)
        for seed in range(200)
    ]
    power = np.mean([r.significant and r.direction == direction for r in results])
    assert power >= 0.9
    assert all(r.significant or r.direction == "none" for r in results)


def test_change_fields_on_a_hand_case() -> None:
    # 21 events in the last 7 days (3/day) against 23 in the 23 before (1/day).
    rows = _days(7, ["page_view"] * 3) + [
        (AS_OF - timedelta(days=8 + d) + timedelta(hours=1), "search") for d in range(23)
    ]
    c = detect_behavior_change(_frame(rows), AS_OF64)
    assert (c.recent_count, c.baseline_count) == (21, 23)
    assert c.recent_rate_per_day == 3.0 and c.baseline_rate_per_day == 1.0
    assert c.rate_ratio == pytest.approx(3.0)
    assert c.p_value == pytest.approx(binom_two_sided_p(21, 44, P0))
    assert c.significant and c.direction == "increase" and c.alpha == 0.05
    assert c.test == CHANGE_TEST_NAME == "exact conditional binomial test of two Poisson rates"
    # Per type: page views only recent (21 >= 10), searches only baseline (23 >= 10).
    by_type = {t.event_type: t for t in c.by_type}
    assert set(by_type) == {"page_view", "search"}
    assert by_type["page_view"].direction == "increase" and by_type["page_view"].rate_ratio is None
    assert by_type["search"].direction == "decrease" and by_type["search"].rate_ratio == 0.0
    assert by_type["page_view"].significant and by_type["search"].significant


def test_change_window_edges() -> None:
    split = AS_OF - timedelta(days=7)
    start = AS_OF - timedelta(days=30)
    rows = [
        (split, "page_view"),  # first second of the recent window
        (split - timedelta(seconds=1), "page_view"),  # last second of the baseline
        (start, "page_view"),  # first second of the baseline
        (start - timedelta(seconds=1), "page_view"),  # too old
        (AS_OF, "page_view"),  # as_of is exclusive
    ]
    c = detect_behavior_change(_frame(rows), AS_OF64)
    assert (c.recent_count, c.baseline_count) == (1, 2)


def test_change_empty_and_small_counts_never_significant() -> None:
    empty = detect_behavior_change(EventFrame.empty(), AS_OF64)
    assert empty.p_value == 1.0 and not empty.significant and empty.rate_ratio is None
    assert empty.direction == "none" and empty.by_type == ()
    # Every split of fewer than 10 events, with nothing older to compare.
    for n in range(MIN_CHANGE_EVENTS):
        for recent in range(n + 1):
            rows = _days(1, ["page_view"] * recent) + [
                (AS_OF - timedelta(days=10, minutes=i), "page_view") for i in range(n - recent)
            ]
            c = detect_behavior_change(_frame(rows), AS_OF64)
            assert (c.recent_count, c.baseline_count) == (recent, n - recent)
            assert not c.significant and c.direction == "none"
    # The rule matters: 4 events after a silent baseline are p = (7/30)^4 + ... < alpha.
    burst = detect_behavior_change(_frame(_days(1, ["page_view"] * 4)), AS_OF64)
    assert burst.p_value == pytest.approx(P0**4) and not burst.significant


def test_change_by_type_uses_holm_and_skips_rare_types() -> None:
    # Page views triple; searches stay at 2/day; filters are too rare to test.
    rng = np.random.default_rng(7)
    views = _stream(rng, 4.0, 12.0)
    searches = _stream(rng, 2.0, 2.0)
    ts = np.concatenate(
        [views.timestamp, searches.timestamp, np.array([AS_OF64 - np.timedelta64(1, "D")])]
    )
    codes = np.concatenate([np.zeros(len(views), int), np.full(len(searches), 4), np.array([5])])
    order = np.argsort(ts, kind="stable")
    c = detect_behavior_change(EventFrame(ts[order], codes[order]), AS_OF64)
    by_type = {t.event_type: t for t in c.by_type}
    assert set(by_type) == {"page_view", "search"}
    assert by_type["page_view"].significant and by_type["page_view"].direction == "increase"
    assert not by_type["search"].significant and by_type["search"].direction == "none"


def test_change_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="days"):
        detect_behavior_change(EventFrame.empty(), AS_OF64, recent_days=0)
    with pytest.raises(ValueError, match="alpha"):
        detect_behavior_change(EventFrame.empty(), AS_OF64, alpha=1.0)


# --- the exact binomial p-value ---------------------------------------------------------------


def test_binomial_p_value_by_hand() -> None:
    # n = 3, p = 1/2: pmf = 1/8, 3/8, 3/8, 1/8.
    assert binom_two_sided_p(0, 3, 0.5) == pytest.approx(0.25)
    assert binom_two_sided_p(1, 3, 0.5) == pytest.approx(1.0)
    # n = 2, p = 0.25: pmf = 9/16, 6/16, 1/16; k = 1 sums 6/16 + 1/16.
    assert binom_two_sided_p(1, 2, 0.25) == pytest.approx(7 / 16)
    assert binom_two_sided_p(2, 2, 0.25) == pytest.approx(1 / 16)
    assert binom_two_sided_p(0, 0, P0) == 1.0
    # Large n stays finite (log space) and tiny.
    assert 0.0 <= binom_two_sided_p(5000, 5000, P0) < 1e-300
    with pytest.raises(ValueError):
        binom_two_sided_p(3, 2, P0)


CASES = [
    (0, 10, P0),
    (5, 10, P0),
    (2, 10, P0),
    (3, 10, P0),
    (21, 44, P0),
    (10, 150, P0),
    (35, 150, P0),
    (60, 150, P0),
    (7, 30, P0),
    (5, 10, 0.5),
    (3, 10, 0.5),
    (300, 1000, 0.25),
    (1200, 5000, P0),
    (1, 3, 1 / 3),
]


@pytest.mark.parametrize(("k", "n", "p"), CASES)
def test_binomial_p_value_matches_scipy(k: int, n: int, p: float) -> None:
    stats = pytest.importorskip("scipy.stats")
    expected = stats.binomtest(k, n, p, alternative="two-sided").pvalue
    assert binom_two_sided_p(k, n, p) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_change_p_values_match_scipy_on_random_streams() -> None:
    stats = pytest.importorskip("scipy.stats")
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        c = detect_behavior_change(
            _stream(rng, float(rng.uniform(0.2, 6)), float(rng.uniform(0.2, 6))), AS_OF64
        )
        n = c.recent_count + c.baseline_count
        expected = stats.binomtest(c.recent_count, n, P0).pvalue if n else 1.0
        assert c.p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)
