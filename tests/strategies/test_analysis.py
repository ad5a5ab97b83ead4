"""Analysis verdicts: thin data holds, each threshold fails, health down fails."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from strategies.analysis import (
    HEALTH_DOWN_REASON,
    AnalysisSpec,
    Evidence,
    Verdict,
    assess,
    check_due,
    count_failures,
    failure_trigger,
    format_instant,
    render_analysis,
    verdict_from_dict,
    verdict_to_dict,
)
from strategies.observation import VariantStats

NOW = 1_800_000_000.0


def stats(requests: int, errors: int = 0, p99: float | None = 0.1) -> VariantStats:
    return VariantStats(requests=requests, errors=errors, p50_s=p99, p99_s=p99)


def first_bytes(answers: int, ttfb_p99: float, requests: int = 100) -> VariantStats:
    """A window where ``answers`` of the requests had a body, first byte p99 ``ttfb_p99``."""
    return VariantStats(requests=requests, p50_s=1.0, p99_s=2.0, ttfb_count=answers,
                        ttfb_p50_s=ttfb_p99 / 2, ttfb_p99_s=ttfb_p99)


CASES: list[tuple[str, dict[str, Any], VariantStats, VariantStats | None, bool, str, list[str]]] = [
    ("thin_data", {"interval": "30s"}, stats(12), stats(500), True,
     "hold", ["12 candidate requests in 30s window, need 50"]),
    ("no_requests_at_all", {"window": "2m"}, VariantStats(), None, True,
     "hold", ["0 candidate requests in 120s window, need 50"]),
    ("health_down_wins_over_thin_data", {}, stats(3), stats(100), False,
     "fail", [HEALTH_DOWN_REASON, "3 candidate requests in 30s window, need 50"]),
    ("no_thresholds_pass", {}, stats(100, 50), stats(100), True, "pass", []),
    ("error_rate", {"min_requests": 10, "max_error_rate": 0.02}, stats(60, 5), None, True,
     "fail", ["error_rate 0.083 > 0.02 (5 of 60 requests)"]),
    ("error_rate_at_limit_passes", {"max_error_rate": 0.02}, stats(100, 2), None, True,
     "pass", []),
    ("error_rate_increase", {"max_error_rate_increase": 0.01}, stats(100, 5), stats(100, 1),
     True, "fail", ["error_rate_increase 0.040 > 0.01 (0.050 vs 0.010)"]),
    ("increase_within_limit", {"max_error_rate_increase": 0.05}, stats(100, 5), stats(100, 1),
     True, "pass", []),
    ("increase_without_baseline", {"max_error_rate_increase": 0.0}, stats(100, 5), None, True,
     "pass", []),
    ("increase_with_idle_baseline", {"max_error_rate_increase": 0.0}, stats(100, 5),
     VariantStats(), True, "pass", []),
    ("p99", {"max_p99_latency": "500ms"}, stats(100, p99=0.734), None, True,
     "fail", ["p99_latency 734ms > 500ms (100 candidate requests)"]),
    ("p99_ok", {"max_p99_latency": "500ms"}, stats(100, p99=0.2), None, True, "pass", []),
    ("latency_ratio", {"max_latency_ratio": 1.5}, stats(100, p99=0.3), stats(100, p99=0.1),
     True, "fail", ["latency_ratio 3.00 > 1.5 (p99 300ms vs 100ms)"]),
    ("ratio_without_baseline_data", {"max_latency_ratio": 1.5}, stats(100, p99=0.3),
     VariantStats(), True, "pass", []),
    ("ttfb_p99", {"max_ttfb_p99": "800ms"}, first_bytes(100, 1.25), None, True,
     "fail", ["ttfb_p99 1250ms > 800ms (100 candidate answers)"]),
    ("ttfb_p99_ok", {"max_ttfb_p99": "800ms"}, first_bytes(100, 0.3), None, True, "pass", []),
    ("ttfb_p99_few_answers", {"max_ttfb_p99": "800ms"}, first_bytes(20, 2.0), None, True,
     "hold", ["ttfb_p99: 20 candidate answers with a first byte, need 50"]),
    ("ttfb_ratio", {"max_ttfb_ratio": 2}, first_bytes(80, 0.9), first_bytes(400, 0.3), True,
     "fail", ["ttfb_ratio 3.00 > 2 (ttfb p99 900ms vs 300ms)"]),
    ("ttfb_ratio_ok", {"max_ttfb_ratio": 2}, first_bytes(80, 0.5), first_bytes(400, 0.3),
     True, "pass", []),
    ("ttfb_ratio_thin_baseline", {"max_ttfb_ratio": 2}, first_bytes(80, 0.9),
     first_bytes(10, 0.3), True, "hold",
     ["ttfb_ratio: 80 vs 10 answers with a first byte, need 50 each"]),
    ("ttfb_ratio_sequential_judge", {"max_ttfb_ratio": 2, "judge": "sequential"},
     first_bytes(80, 0.9), first_bytes(400, 0.3), True,
     "fail", ["ttfb_ratio 3.00 > 2 (ttfb p99 900ms vs 300ms)"]),
    ("every_threshold_at_once",
     {"max_error_rate": 0.01, "max_error_rate_increase": 0.01, "max_p99_latency": 0.2,
      "max_latency_ratio": 2},
     stats(100, 10, p99=0.9), stats(100, 0, p99=0.1), True, "fail",
     ["error_rate 0.100 > 0.01 (10 of 100 requests)",
      "error_rate_increase 0.100 > 0.01 (0.100 vs 0.000)",
      "p99_latency 900ms > 200ms (100 candidate requests)",
      "latency_ratio 9.00 > 2 (p99 900ms vs 100ms)"]),
]


@pytest.mark.parametrize(
    ("spec_args", "candidate", "baseline", "up", "outcome", "reasons"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_assess(
    spec_args: dict[str, Any],
    candidate: VariantStats,
    baseline: VariantStats | None,
    up: bool,
    outcome: str,
    reasons: list[str],
) -> None:
    spec = AnalysisSpec.model_validate(spec_args)
    verdict = assess(spec, Evidence(candidate, baseline, up), now=NOW)
    assert (verdict.outcome, list(verdict.reasons)) == (outcome, reasons)
    assert verdict.at == NOW
    assert verdict.window_s == spec.window_s


def test_assess_records_all_numbers() -> None:
    spec = AnalysisSpec(max_error_rate=0.5)
    verdict = assess(spec, Evidence(stats(100, 4, p99=0.3), stats(200, 2, p99=0.1)), now=NOW)
    numbers = dict(verdict.numbers)
    assert numbers["candidate_requests"] == 100
    assert numbers["candidate_error_rate"] == pytest.approx(0.04)
    assert numbers["baseline_error_rate"] == pytest.approx(0.01)
    assert numbers["error_rate_increase"] == pytest.approx(0.03)
    assert numbers["latency_ratio"] == pytest.approx(3.0)
    assert numbers["min_requests"] == 50


@pytest.mark.parametrize(
    ("outcome", "before", "after"),
    [("fail", 0, 1), ("fail", 1, 2), ("pass", 3, 0), ("hold", 1, 1), ("hold", 0, 0)],
    ids=["first_fail", "second_fail", "pass_resets", "hold_keeps", "hold_at_zero"],
)
def test_count_failures(outcome: str, before: int, after: int) -> None:
    assert count_failures(Verdict(outcome), before) == after  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("last", "now", "due"),
    [(None, 1029.0, False), (None, 1030.0, True), (1040.0, 1069.0, False), (1040.0, 1070.0, True)],
    ids=["first_not_yet", "first_due", "next_not_yet", "next_due"],
)
def test_check_due(last: float | None, now: float, due: bool) -> None:
    assert check_due(AnalysisSpec(interval=30), last, 1000.0, now) is due


def test_failure_trigger() -> None:
    assert failure_trigger(Verdict("fail", (HEALTH_DOWN_REASON,))) == "health"
    assert failure_trigger(Verdict("fail", ("error rate 0.5 > max 0.1",))) == "analysis"


def test_format_instant() -> None:
    ts = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC).timestamp()
    assert format_instant(ts) == "2026-11-29T12:00:00Z"
    assert format_instant(None) is None


@pytest.mark.parametrize(
    ("outcome", "ok"), [("pass", True), ("fail", False), ("hold", None)],
    ids=["pass", "fail", "hold"],
)
def test_render_analysis(outcome: str, ok: bool | None) -> None:
    verdict = Verdict(outcome, ("why",), {"candidate_requests": 3}, NOW, 30.0)  # type: ignore[arg-type]
    rendered = render_analysis(verdict, 1)
    assert rendered["consecutive_failures"] == 1
    assert rendered["last"]["ok"] is ok
    assert rendered["last"]["reasons"] == ["why"]
    assert rendered["last"]["at"] == format_instant(NOW)
    assert render_analysis(None, 0) == {"last": None, "consecutive_failures": 0}


def test_verdict_round_trip() -> None:
    verdict = assess(AnalysisSpec(max_error_rate=0.01), Evidence(stats(100, 9), stats(100)),
                     now=NOW)
    assert verdict.checks and verdict_from_dict(verdict_to_dict(verdict)) == verdict
    assert verdict_from_dict(None) is None


def test_verdict_written_before_named_checks_loads_as_hold() -> None:
    loaded = verdict_from_dict({"outcome": "no_data", "at": NOW, "reasons": ["thin"]})
    assert loaded is not None and loaded.outcome == "hold"


@pytest.mark.parametrize(
    "data",
    [{"outcome": "maybe", "at": 1}, {"outcome": "pass"}, {"outcome": "pass", "at": "x"}, [1]],
    ids=["unknown_outcome", "no_time", "bad_time", "not_a_mapping"],
)
def test_verdict_from_garbage(data: Any) -> None:
    with pytest.raises(ValueError):
        verdict_from_dict(data)
