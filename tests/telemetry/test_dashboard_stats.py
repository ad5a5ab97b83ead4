"""build_stats: the dashboard's numbers from a WindowSet fed with known traffic."""

from __future__ import annotations

import pytest

from router.telemetry.dashboard_stats import build_stats
from router.telemetry.inspection import BodyInspector
from router.telemetry.metrics import Metrics
from router.telemetry.windows import WindowSet

NOW = 1_764_417_605.5  # 2025-11-29T12:00:05.500Z; int(NOW) % 10 == 5
ROUTES = [("iris", ("stable", "candidate"))]


def fed() -> WindowSet:
    """Stable: 2 req/s for the last minute at 100 ms, 6 errors. Candidate: one burst 10 min ago."""
    windows = WindowSet()
    for second in range(60):
        for n in range(2):
            error = second < 6 and n == 0
            windows.record("iris", "stable", NOW - second, 0.1, error)
    for n in range(50):
        windows.record("iris", "candidate", NOW - 600, 0.5 if n else 5.0, n < 5)
    return windows


def test_live_numbers() -> None:
    stats = build_stats(fed(), ROUTES, NOW, None)
    stable = stats["routes"]["iris"]["variants"]["stable"]
    assert stable["requests"] == 120
    assert stable["rps"] == 2.0
    assert stable["error_rate"] == 0.05
    assert stable["p50_ms"] == pytest.approx(100, rel=0.13)
    assert stable["p99_ms"] == pytest.approx(100, rel=0.13)
    candidate = stats["routes"]["iris"]["variants"]["candidate"]
    assert candidate == {
        "rps": 0.0, "error_rate": None, "p50_ms": None, "p99_ms": None, "requests": 0,
    }
    assert stats["generated_at"] == "2025-11-29T12:00:05.500Z"


@pytest.mark.parametrize("recent_s", [10.0, 30.0], ids=["10s", "30s"])
def test_recent_window_sets_the_rate(recent_s: float) -> None:
    stats = build_stats(fed(), ROUTES, NOW, None, recent_s=recent_s)
    assert stats["routes"]["iris"]["variants"]["stable"]["rps"] == 2.0
    assert stats["routes"]["iris"]["variants"]["stable"]["requests"] == 2 * recent_s


def test_series_shape_and_values() -> None:
    series = build_stats(fed(), ROUTES, NOW, None)["routes"]["iris"]["series"]
    stable, candidate = series["stable"], series["candidate"]
    assert len(stable["t"]) == 90
    assert stable["t"][-1] == 1_764_417_605  # the live, partial bucket ends now
    assert stable["t"][-2] == 1_764_417_600  # closed buckets end on multiples of 10 s
    assert all(b - a == 10 for a, b in zip(stable["t"][:-2], stable["t"][1:-1], strict=True))
    assert stable["rps"][-1] == 2.0  # 5 seconds, 10 requests
    assert stable["rps"][-2] == 2.0
    assert stable["rps"][:-7] == [0.0] * 83  # nothing before the last minute
    assert stable["error_rate"][-8:] == [None, 0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.5]
    burst = stable["t"].index(1_764_417_010)  # the bucket holding NOW - 600
    assert candidate["rps"][burst] == 5.0
    assert candidate["error_rate"][burst] == 0.1
    assert candidate["p99_ms"][burst] == pytest.approx(5000, rel=0.13)
    assert candidate["p99_ms"][burst - 1] is None


def test_later_calls_match_a_fresh_computation() -> None:
    windows = fed()
    build_stats(windows, ROUTES, NOW, None)
    for later in (NOW + 1, NOW + 7, NOW + 31):
        windows.record("iris", "candidate", later, 0.2, False)
        cached = build_stats(windows, ROUTES, later, None)
        fresh = build_stats(fed_plus(later), ROUTES, later, None)
        assert cached["routes"] == fresh["routes"]


def fed_plus(until: float) -> WindowSet:
    """``fed()`` plus the candidate requests the caching test added up to ``until``."""
    windows = fed()
    for later in (NOW + 1, NOW + 7, NOW + 31):
        if later <= until:
            windows.record("iris", "candidate", later, 0.2, False)
    return windows


def test_health_comes_from_the_inspector() -> None:
    inspector = BodyInspector(Metrics())
    inspector.observe(
        "iris", "candidate", "/v1/models/iris:predict", b'{"instances": [[1, null]]}', 26, 200,
        b'{"predictions": [2]}',
    )
    stats = build_stats(fed(), [*ROUTES, ("other", ("default",))], NOW, inspector)
    health = stats["routes"]["iris"]["health"]
    assert health["candidate"]["missing_values"] == 1
    assert health["candidate"]["labels"] == {"2": 1}
    assert stats["routes"]["other"]["health"] == {}
    assert build_stats(fed(), ROUTES, NOW, None)["routes"]["iris"]["health"] == {}


def test_no_routes() -> None:
    assert build_stats(WindowSet(), [], NOW, None)["routes"] == {}


def test_streaming_variants_show_time_to_first_token_and_tokens_per_second() -> None:
    windows = WindowSet()
    metrics = Metrics()
    for second in range(30):
        windows.record("iris", "stable", NOW - second, 2.0, False, ttfb_s=0.05)
        windows.record("iris", "candidate", NOW - second, 2.0, False, ttfb_s=0.4)
        metrics.stream_stats("iris", "candidate").add_tokens(10, 120, NOW - second)
    metrics.stream_stats("iris", "stable").events = 30
    stats = build_stats(windows, ROUTES, NOW, None, streams=metrics.streamed)
    live = stats["routes"]["iris"]["variants"]
    assert live["stable"]["stream"]["ttft_p50_ms"] == pytest.approx(50, rel=0.13)
    assert live["stable"]["stream"]["tokens_per_s"] == 0.0
    assert live["candidate"]["stream"]["ttft_p99_ms"] == pytest.approx(400, rel=0.13)
    assert live["candidate"]["stream"]["tokens_per_s"] == 60.0  # 30 x 120 over 60 s
    plain = build_stats(fed(), ROUTES, NOW, None, streams=Metrics().streamed)
    assert "stream" not in plain["routes"]["iris"]["variants"]["stable"]
