"""min_accuracy_ratio: candidate accuracy over the baseline's, on joined true labels."""

from __future__ import annotations

import pytest

from strategies.analysis import AnalysisSpec, Evidence, assess
from strategies.feedback import LabelTally
from strategies.observation import VariantStats

SPEC = AnalysisSpec(min_requests=0, min_accuracy_ratio=0.95, min_feedback=100)
TRAFFIC = VariantStats(requests=500)


def verdict(candidate: LabelTally, baseline: LabelTally, spec: AnalysisSpec = SPEC) -> object:
    evidence = Evidence(candidate=TRAFFIC, baseline=TRAFFIC, candidate_labels=candidate,
                        baseline_labels=baseline)
    return assess(spec, evidence, now=0.0)


@pytest.mark.parametrize(
    ("candidate", "baseline", "outcome", "reason"),
    [
        (LabelTally(80, 20), LabelTally(95, 5), "fail", "accuracy_ratio 0.84 < 0.95"),
        (LabelTally(94, 6), LabelTally(95, 5), "pass", None),
        (LabelTally(99, 1), LabelTally(0, 100), "pass", None),
        (LabelTally(50, 49), LabelTally(95, 5), "hold", "accuracy_ratio: 99 vs 100 labels"),
        (LabelTally(80, 20, scored=500), LabelTally(scored=500), "hold", "100 vs 0 labels"),
    ],
)
def test_accuracy_ratio(
    candidate: LabelTally, baseline: LabelTally, outcome: str, reason: str | None
) -> None:
    found = verdict(candidate, baseline)
    assert found.outcome == outcome  # type: ignore[attr-defined]
    if reason is not None:
        assert any(reason in r for r in found.reasons)  # type: ignore[attr-defined]


def test_without_the_rule_labels_change_nothing() -> None:
    found = verdict(LabelTally(0, 100), LabelTally(100, 0), AnalysisSpec(min_requests=0))
    assert found.outcome == "pass"  # type: ignore[attr-defined]
