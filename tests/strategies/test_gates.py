"""Model-quality gates and Prometheus checks: the same checks under both judges."""

from __future__ import annotations

import math

import pytest

from strategies.analysis import MIN_ANSWERS, MIN_PREDICTIONS, AnalysisSpec, Evidence, assess
from strategies.observation import Quality, VariantStats

BOTH = pytest.mark.parametrize("judge", ["threshold", "sequential"])
ENOUGH = VariantStats(requests=500, errors=0, p50_s=0.01, p99_s=0.02)


def run(judge: str, evidence: Evidence, **fields: object) -> tuple[str, list[str]]:
    spec = AnalysisSpec.model_validate({"judge": judge, **fields})
    verdict = assess(spec, evidence, now=0.0)
    return verdict.outcome, list(verdict.reasons)


@BOTH
def test_drift_fails_with_its_rule_and_numbers(judge: str) -> None:
    stable = Quality(answers=1980, labels={"setosa": 660, "versicolor": 660, "virginica": 660})
    cand = Quality(answers=2140, labels={"setosa": 1900, "versicolor": 120, "virginica": 120})
    outcome, reasons = run(judge, Evidence(ENOUGH, ENOUGH, candidate_quality=cand,
                                           baseline_quality=stable), max_prediction_drift=0.2)
    assert outcome == "fail"
    assert reasons[0].startswith("prediction_drift ")
    assert reasons[0].endswith(" > 0.2 (psi, 2,140 vs 1,980 predictions)")


@BOTH
def test_regressors_drift_over_bins_of_stable_values(judge: str) -> None:
    stable = Quality(answers=300, values=tuple(float(i % 100) for i in range(300)))
    same = Quality(answers=300, values=tuple(float((i * 7) % 100) for i in range(300)))
    moved = Quality(answers=300, values=tuple(float(50 + i % 100) for i in range(300)))
    ok = run(judge, Evidence(ENOUGH, ENOUGH, candidate_quality=same, baseline_quality=stable),
             max_prediction_drift=0.2)
    bad = run(judge, Evidence(ENOUGH, ENOUGH, candidate_quality=moved, baseline_quality=stable),
              max_prediction_drift=0.2)
    assert "prediction_drift" not in " ".join(ok[1])
    assert bad[0] == "fail" and bad[1][0].startswith("prediction_drift")


@BOTH
def test_too_few_predictions_hold(judge: str) -> None:
    few = Quality(answers=MIN_PREDICTIONS - 1, labels={"a": MIN_PREDICTIONS - 1})
    many = Quality(answers=5000, labels={"b": 5000})
    outcome, reasons = run(judge, Evidence(ENOUGH, ENOUGH, candidate_quality=few,
                                           baseline_quality=many), max_prediction_drift=0.2)
    assert outcome in ("hold", "fail") and any(
        r == f"prediction_drift: {MIN_PREDICTIONS - 1} vs 5,000 predictions, need "
             f"{MIN_PREDICTIONS} each" for r in reasons
    )


@BOTH
@pytest.mark.parametrize(
    ("cand_nulls", "outcome"), [(40, "fail"), (12, "pass")], ids=["worse", "within"]
)
def test_null_output_rate_increase(judge: str, cand_nulls: int, outcome: str) -> None:
    cand = Quality(answers=1000, null_outputs=cand_nulls)
    stable = Quality(answers=1000, null_outputs=10)
    spec = AnalysisSpec.model_validate({"judge": judge, "max_null_output_rate_increase": 0.01})
    verdict = assess(spec, Evidence(ENOUGH, ENOUGH, candidate_quality=cand,
                                    baseline_quality=stable), now=0.0)
    (check,) = [c for c in verdict.checks if c.rule == "null_output_rate_increase"]
    assert check.outcome == outcome
    assert f"{cand_nulls}/1,000 vs 10/1,000 null outputs" in check.explanation


def test_null_outputs_need_a_minimum_sample() -> None:
    thin = Quality(answers=MIN_ANSWERS - 1, null_outputs=MIN_ANSWERS - 1)
    outcome, reasons = run("threshold", Evidence(ENOUGH, ENOUGH, candidate_quality=thin,
                                                 baseline_quality=Quality(answers=1000)),
                           max_null_output_rate_increase=0.01)
    assert outcome == "hold" and reasons[0].startswith("null_output_rate_increase: 99 vs 1,000")


@pytest.mark.parametrize(
    ("reading", "outcome", "reason"),
    [
        (0.4, "pass", None),
        (2.5, "fail", "errors_per_s 2.5 > max 1 (prometheus)"),
        (math.nan, "hold", "errors_per_s: query returned NaN"),
        ("timeout after 5s", "hold", "errors_per_s: timeout after 5s"),
        (None, "hold", "errors_per_s: no reading yet"),
    ],
    ids=["within", "above", "nan", "error", "missing"],
)
def test_metric_checks_never_pass_without_a_number(
    reading: float | str | None, outcome: str, reason: str | None
) -> None:
    metrics = {} if reading is None else {"errors_per_s": reading}
    spec = {"metrics": [{"name": "errors_per_s", "query": "x", "max": 1}], "min_requests": 0}
    got, reasons = run("threshold", Evidence(ENOUGH, ENOUGH, metrics=metrics), **spec)
    assert got == outcome
    assert reasons == ([reason] if reason else [])


def test_metric_checks_need_a_bound_and_unique_names() -> None:
    with pytest.raises(ValueError, match="needs max or min"):
        AnalysisSpec.model_validate({"metrics": [{"name": "x", "query": "q"}]})
    with pytest.raises(ValueError, match="unique"):
        AnalysisSpec.model_validate({"metrics": [{"name": "x", "query": "q", "max": 1},
                                                 {"name": "x", "query": "r", "min": 0}]})
