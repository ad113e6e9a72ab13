"""bench/request_path.py's pure parts: the wrk script, wrk's output, the tables and targets."""

from __future__ import annotations

import pytest

from bench.request_path import (
    CELL_BY_KEY,
    NO_CACHE,
    TARGETS,
    WRK_MARK,
    CellResult,
    WrkStats,
    check_target,
    classify,
    heavy_table,
    heavy_vs_light,
    index,
    lua_script,
    parse_wrk,
    settle_text,
    short_labels,
    side_by_side,
    targets_table,
)

# Real output of `wrk --latency -s <lua_script(...)>` (wrk 4.1.0, Debian) against a small server.
WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:18931
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.88ms    5.29ms  32.47ms   66.86%
    Req/Sec   526.80    262.57     1.12k    65.00%
  Latency Distribution
     50%    7.20ms
     75%   11.00ms
     90%   15.84ms
     99%   23.66ms
  1050 requests in 2.01s, 207.32KB read
  Non-2xx or 3xx responses: 50
  Socket errors: connect 0, read 2, write 0, timeout 3
Requests/sec:    522.97
Transfer/sec:    103.26KB
"""
JSON_LINE = (
    'WRK_JSON {"duration_us": 2007745, "requests": 1050, "bytes": 212299, "non2xx": 50, '
    '"connect": 0, "read": 2, "write": 0, "timeout": 3, "p50_us": 7199.0, "p90_us": 15840.0, '
    '"p99_us": 23657.0, "mean_us": 7876.1, "max_us": 32475.0}\n'
)


def test_lua_script_rotates_tokens_and_sets_headers() -> None:
    script = lua_script("/coaching/enhanced-recommendation", ["t.a.1", "t.b.2"], NO_CACHE)
    assert 'local tokens = {"t.a.1", "t.b.2"}' in script
    assert 'local path = "/coaching/enhanced-recommendation"' in script
    assert '["Cache-Control"] = "no-cache"' in script
    assert '"Bearer " .. tokens[(counter % #tokens) + 1]' in script
    assert WRK_MARK.strip() in script and "latency:percentile(99)" in script
    assert "%%" not in script  # the template's escapes are all resolved


def test_lua_script_refuses_what_would_break_it() -> None:
    with pytest.raises(ValueError):
        lua_script("/users/me", [])
    with pytest.raises(ValueError):
        lua_script("/users/me", ["tok\nen"])


def test_parse_wrk_prefers_the_json_line() -> None:
    stats = parse_wrk(WRK_OUTPUT + JSON_LINE)
    assert stats.source == "json"
    assert stats.requests == 1050 and stats.non2xx == 50 and stats.ok == 1000
    assert stats.read == 2 and stats.timeout == 3 and stats.socket_errors == 5
    assert stats.seconds == pytest.approx(2.007745)
    assert stats.p50_ms == pytest.approx(7.199) and stats.p99_ms == pytest.approx(23.657)
    assert stats.rps == pytest.approx(1000 / 2.007745)


def test_parse_wrk_falls_back_to_the_text_report() -> None:
    stats = parse_wrk(WRK_OUTPUT)
    assert stats.source == "text"
    assert stats.requests == 1050 and stats.non2xx == 50
    assert (stats.connect, stats.read, stats.write, stats.timeout) == (0, 2, 0, 3)
    assert stats.seconds == pytest.approx(2.01)
    assert stats.p50_ms == pytest.approx(7.20)
    assert stats.p90_ms == pytest.approx(15.84)
    assert stats.p99_ms == pytest.approx(23.66)
    assert stats.mean_ms == pytest.approx(7.88) and stats.max_ms == pytest.approx(32.47)


def test_parse_wrk_units() -> None:
    text = "  10 requests in 1.00m, 1KB read\n     50%  850.00us\n     99%    2.50s\n"
    stats = parse_wrk(text)
    assert stats.seconds == pytest.approx(60.0)
    assert stats.p50_ms == pytest.approx(0.85) and stats.p99_ms == pytest.approx(2500.0)


def test_nothing_parsed_is_not_a_crash() -> None:
    stats = parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")
    assert stats.source == "none" and stats.rps == 0.0
    assert classify(stats) == "no wrk report"


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        (WrkStats(seconds=5, requests=0, connect=40), "no answers"),
        (WrkStats(seconds=5, requests=100, non2xx=60), "mostly errors"),
        (WrkStats(seconds=5, requests=40, timeout=60), "mostly errors"),
        (WrkStats(seconds=5, requests=100, non2xx=10), "ok"),
    ],
)
def test_classify(stats: WrkStats, expected: str) -> None:
    assert classify(stats) == expected


def _cell(
    key: str, setup: str, db: str, rps: float, p50: float = 5.0, p99: float = 50.0, **kw: object
) -> CellResult:
    spec = CELL_BY_KEY[key]
    r = CellResult(key, spec.name, setup, db, spec.concurrency, spec.path, status="ok")
    r.rps, r.p50_ms, r.p99_ms, r.requests = rps, p50, p99, kw.pop("requests", 1000)  # type: ignore[assignment]
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def test_side_by_side_table_has_both_databases_and_ratios() -> None:
    results = [
        _cell("users-me-32", "serve", "sqlite", 700, 30, 120),
        _cell("users-me-32", "peer", "sqlite", 1000, 20, 100),
        _cell("users-me-32", "serve", "postgresql", 500),
    ]
    table = side_by_side(results, ["sqlite", "postgresql"])
    lines = table.splitlines()
    assert lines[0] == (
        "| endpoint | c | Serve sqlite | peer sqlite | Serve / peer | Serve postgresql "
        "| peer postgresql | Serve / peer |"
    )
    assert lines[2].startswith("| /users/me | 32 | 700 req/s, p50 30.0 ms, p99 120 ms")
    assert "| 0.70 |" in lines[2]
    assert "not measured | - |" in lines[2]  # no peer on PostgreSQL: no ratio


def test_a_failed_cell_is_reported_not_divided() -> None:
    bad = _cell("enhanced-32", "serve", "sqlite", 3, requests=10, failures=400)
    bad.status = "mostly errors"
    peer = _cell("enhanced-32", "peer", "sqlite", 100)
    table = side_by_side([bad, peer], ["sqlite"])
    assert "**mostly errors**: 3 req/s" in table
    assert table.splitlines()[2].endswith("| - |")
    by = index([bad, peer])
    target = next(t for t in TARGETS if t.kind == "peer_min" and t.cell == "enhanced-32")
    assert check_target(target, by, "sqlite") == "**missed** (mostly errors)"


def test_targets() -> None:
    results = [
        _cell("enhanced-32", "serve", "sqlite", 210, 100, 280),
        _cell("enhanced-32", "peer", "sqlite", 250),
        _cell("enhanced-1", "serve", "sqlite", 150, 7.5),
        _cell("prediction-1", "serve", "sqlite", 300, 4.5),
        _cell("prediction-32", "serve", "sqlite", 400),
        _cell("prediction-32", "peer", "sqlite", 450),
        _cell("users-me-32", "serve", "sqlite", 600),
        _cell("users-me-32", "peer", "sqlite", 1000),
        _cell("heavy-1", "serve", "sqlite", 40, 25, server_cpu_s=11.0, requests=1000),
        _cell("light-1", "serve", "sqlite", 45, 22, server_cpu_s=10.0, requests=1000),
    ]
    rows = targets_table(results, ["sqlite", "postgresql"]).splitlines()
    assert rows[0] == "| target (through Serve) | sqlite | postgresql |"
    text = {row.split(" | ")[0].lstrip("| "): row.split(" | ")[1] for row in rows[2:]}
    assert text["uncached enhanced, c=32: >= 200 req/s"] == "met (210 req/s)"
    assert text["uncached enhanced, c=32: p99 <= 300 ms"] == "met (280 ms)"
    assert text["uncached enhanced, c=1: p50 <= 8 ms"] == "met (7.5 ms)"
    assert text["uncached enhanced, c=32: >= 90% of the peer"] == "**missed** (84%)"
    assert text["cached prediction, c=1: p50 <= 4 ms"] == "**missed** (4.5 ms)"
    assert text["cached prediction, c=32: >= 80% of the peer"] == "met (89%)"
    assert text["/users/me, c=32: >= 70% of the peer"] == "**missed** (60%)"
    heavy = next(v for k, v in text.items() if k.startswith("heavy user"))
    assert heavy == "met (CPU x1.10)"
    assert all(row.endswith("| not measured |") for row in rows[2:])  # nothing on PostgreSQL


def test_heavy_vs_light() -> None:
    h = _cell("heavy-1", "serve", "sqlite", 20, 50, server_cpu_s=30.0, requests=1000)
    lt = _cell("light-1", "serve", "sqlite", 40, 25, server_cpu_s=20.0, requests=1000)
    assert heavy_vs_light(h, lt) == {"cpu": pytest.approx(1.5), "p50": pytest.approx(2.0)}
    assert heavy_vs_light(h, None) == {"cpu": None, "p50": None}
    table = heavy_table([h, lt], ["sqlite"])
    assert "| sqlite | serve | 25.0, 20.0 | 50.0, 30.0 | 1.50 | 2.00 |" in table


def test_short_labels_group_uvicorn_workers() -> None:
    cpu = {
        "python from multiprocessing.spawn import spawn_main; spawn_main(pipe_handle=9)": {
            "cpu_s": 2.0,
            "procs": 1,
        },
        "python from multiprocessing.spawn import spawn_main; spawn_main(pipe_handle=13)": {
            "cpu_s": 3.0,
            "procs": 1,
        },
        "ray::ServeReplica:fincoach:CoachIngress": {"cpu_s": 4.0, "procs": 2},
    }
    out = short_labels(cpu)
    assert list(out) == ["uvicorn worker", "ray::ServeReplica:fincoach:CoachIngress"]
    assert out["uvicorn worker"] == {"cpu_s": 5.0, "procs": 2}


def test_settle_text() -> None:
    assert settle_text({}) == "-"
    assert settle_text({"settle_s": 0.0, "before": {}}) == "0.0"
    assert settle_text({"settle_s": 12.5, "before": {"503": 2}}) == "12.5 (503 x2 before)"
    assert settle_text({"settle_s": None, "before": {"ReadTimeout": 3}}) == (
        "**not within the wait** (ReadTimeout x3 before)"
    )
