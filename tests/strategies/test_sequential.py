"""The sequential judge, proved by simulation: seeded rollouts through the real ``assess``.

A candidate identical to stable, checked after every interval, is failed in at
most 1 - confidence of rollouts; a worse one is failed within a bounded number
of requests; a broken one within a few dozen; a quiet route holds.
"""

from __future__ import annotations

import math
import random

import pytest

from bench.judging import Traffic, peeking_fail_rate, simulate, simulate_latency
from strategies.analysis import AnalysisSpec, Evidence, Roles, assess, judge
from strategies.analysis.sequential import confidence_interval, log_mixture
from strategies.observation import LATENCY_BOUNDS, Observation, Tally, VariantStats


def seq(**fields: object) -> AnalysisSpec:
    return AnalysisSpec.model_validate({"judge": "sequential", **fields})


@pytest.mark.parametrize(("successes", "trials"), [(0, 10), (5, 100), (3.5, 20), (99, 100)])
def test_interval_ends_are_where_the_mixture_reaches_one_over_alpha(
    successes: float, trials: float
) -> None:
    low, high = confidence_interval(successes, trials, 0.05)
    assert low <= successes / trials <= high
    for end in (low, high):
        if 0.0 < end < 1.0:
            assert log_mixture(successes, trials, end) == pytest.approx(math.log(20), abs=1e-6)
    assert confidence_interval(0, 0, 0.05) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("limit", "rate"), [(0.0, 0.02), (0.01, 0.05)], ids=["no_margin_2pct", "margin_1pt_5pct"]
)
def test_identical_candidates_are_rarely_failed_however_often_checked(
    limit: float, rate: float
) -> None:
    spec = seq(max_error_rate_increase=limit, confidence=0.95)
    out = simulate(spec, Traffic(rate, rate, 200, 50), rollouts=2000, checks=20, seed=1)
    assert out.fail_rate <= 0.05


def test_the_simulation_catches_a_test_that_is_not_always_valid() -> None:
    # The draws of the ``no_margin_2pct`` case above, through a fixed 95 % z-test looked at
    # every interval: the harness that holds the sequential judge to 5 % sees this one fail
    # far more rollouts.
    traffic = Traffic(0.02, 0.02, 200, 50)
    assert peeking_fail_rate(traffic, rollouts=2000, checks=20, seed=1) > 0.1


def test_a_lower_confidence_fails_more_identical_candidates_but_within_its_bound() -> None:
    strict = seq(max_error_rate_increase=0.0, confidence=0.95)
    loose = seq(max_error_rate_increase=0.0, confidence=0.6)
    traffic = Traffic(0.05, 0.05, 40, 40)
    a = simulate(strict, traffic, rollouts=1000, checks=25, seed=2)
    b = simulate(loose, traffic, rollouts=1000, checks=25, seed=2)
    assert a.fail_rate <= b.fail_rate <= 0.4


def test_a_candidate_five_points_worse_fails_within_bounded_requests() -> None:
    spec = seq(max_error_rate_increase=0.01)
    out = simulate(spec, Traffic(0.01, 0.06, 200, 50), rollouts=300, checks=60, seed=3)
    assert out.failed == out.rollouts
    assert max(out.requests_to_fail) <= 2500
    assert out.to_fail(0.5) is not None and out.to_fail(0.5) <= 1000


def test_a_candidate_failing_every_request_fails_within_a_few_dozen() -> None:
    spec = seq(max_error_rate_increase=0.01)
    out = simulate(spec, Traffic(0.01, 1.0, 4, 1), rollouts=200, checks=100, seed=4)
    assert out.failed == out.rollouts
    assert max(out.requests_to_fail) <= 36


def test_a_quiet_route_holds() -> None:
    spec = seq(max_error_rate_increase=0.01, max_error_rate=0.05, max_latency_ratio=1.5)
    for cand, base in [(Tally(), Tally()), (Tally(5, 0), Tally(20, 0)), (None, None)]:
        verdict = assess(spec, Evidence(VariantStats(), candidate_tally=cand,
                                        baseline_tally=base), now=0.0)
        assert verdict.outcome == "hold", verdict.reasons
        assert all(c.outcome == "hold" for c in verdict.checks)


def test_the_failure_explains_itself() -> None:
    spec = seq(max_error_rate_increase=0.01)
    verdict = assess(spec, Evidence(VariantStats(), candidate_tally=Tally(64, 64),
                                    baseline_tally=Tally(1000, 10)), now=0.0)
    assert verdict.outcome == "fail" and verdict.decisive
    (reason,) = verdict.reasons
    assert reason.startswith("error rate: candidate worse by >= ")
    assert "at 95% confidence after 64 requests" in reason
    check = verdict.checks[0]
    assert check.rule == "error_rate_increase" and check.boundary == 0.01
    assert check.statistic == pytest.approx(1.0 - 0.01)  # the running estimate of the difference
    low, high = check.numbers["error_rate_increase_low"], check.numbers["error_rate_increase_high"]
    assert low is not None and high is not None and 0.01 < low <= 0.99 <= high


def _latencies(rng: random.Random, n: int, scale: float) -> tuple[int, ...]:
    hist = [0] * (len(LATENCY_BOUNDS) + 1)
    for _ in range(n):
        value = scale * rng.lognormvariate(math.log(0.05), 0.5)
        hist[sum(1 for b in LATENCY_BOUNDS if b < value)] += 1
    return tuple(hist)


@pytest.mark.parametrize(
    ("scale", "outcome"), [(1.0, "pass"), (3.0, "fail"), (1.3, "hold")],
    ids=["same_latency", "three_times_slower", "slower_but_within_ratio_unsure"],
)
def test_latency_rank_test(scale: float, outcome: str) -> None:
    rng = random.Random(5)
    base = Tally(2000, 0, _latencies(rng, 2000, 1.0))
    n = 400 if outcome != "hold" else 60
    cand = Tally(n, 0, _latencies(rng, n, scale))
    verdict = assess(seq(max_latency_ratio=1.5), Evidence(VariantStats(), candidate_tally=cand,
                                                          baseline_tally=base), now=0.0)
    assert [c.outcome for c in verdict.checks] == [outcome]
    assert "rank test" in verdict.checks[0].explanation


def test_rank_test_rarely_fails_identical_latency_and_fails_a_slow_candidate_fast() -> None:
    strict = seq(max_latency_ratio=1.0)
    same = simulate_latency(strict, 1.0, rollouts=1000, checks=20, per_check=25, seed=8)
    assert same.fail_rate <= 0.05
    lenient = seq(max_latency_ratio=1.5)
    fine = simulate_latency(lenient, 1.0, rollouts=100, checks=20, per_check=25, seed=9)
    assert fine.failed == 0 and fine.passed == fine.rollouts
    slow = simulate_latency(lenient, 3.0, rollouts=100, checks=20, per_check=25, seed=10)
    assert slow.failed == slow.rollouts and max(slow.requests_to_fail) <= 100


def test_judge_reads_tallies_since_the_mark_and_restarts_when_they_go_back() -> None:
    spec = seq(max_error_rate_increase=0.01)
    roles = Roles("candidate", "stable", "v2")
    mark = {"candidate": Tally(1000, 1000), "stable": Tally(5000, 50)}
    later = Observation(60.0, totals={"candidate": Tally(1010, 1000),
                                      "stable": Tally(5100, 51)})
    verdict, kept = judge(spec, later, roles, mark, 100.0)
    assert kept == mark
    # 10 clean requests since the mark: the 1000 errors before it do not count
    assert verdict.outcome == "hold"
    restarted = Observation(60.0, totals={"candidate": Tally(3, 3), "stable": Tally(9, 0)})
    verdict, kept = judge(spec, restarted, roles, mark, 200.0)
    assert kept == dict(restarted.totals) and verdict.outcome == "hold"
    assert "no evidence yet" in verdict.reasons[0]
