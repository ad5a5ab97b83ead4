"""The two judges: which checks run, on what evidence, and the verdict they make.

``assess`` runs the health check, then the judge's own rules (``threshold``:
``min_requests`` and the fixed limits; ``sequential``: the confidence
sequences), then the model-quality gates and the Prometheus checks, and
combines them. ``judge`` builds the evidence from an ``Observation``: the
sequential judge reads the running tallies since a ``Mark`` — the totals when
its rollout (or switch) began — kept in the strategy's state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from strategies.analysis.checks import (
    GATES,
    THRESHOLD_CHECKS,
    Evidence,
    base_numbers,
    health_check,
    metric_checks,
)
from strategies.analysis.sequential import SEQUENTIAL_CHECKS
from strategies.analysis.spec import AnalysisSpec
from strategies.analysis.verdict import CheckResult, Verdict, combine
from strategies.observation import Observation, Tally, VariantStats

__all__ = ["Mark", "Roles", "assess", "begin_mark", "judge", "mark_from_dict", "mark_to_dict"]

Mark = Mapping[str, Tally]
"""Per variant, the running totals when the sequential test began."""


@dataclass(frozen=True, slots=True)
class Roles:
    """Which variant is judged, against which, and the judged one's backend."""

    candidate: str
    baseline: str | None
    candidate_backend: str


def assess(spec: AnalysisSpec, evidence: Evidence, *, now: float) -> Verdict:
    """Run every check that applies and combine them (see the module docstring)."""
    checks: list[CheckResult | None] = [health_check(spec, evidence)]
    rules = SEQUENTIAL_CHECKS if spec.judge == "sequential" else THRESHOLD_CHECKS
    checks.extend(check(spec, evidence) for check in rules)
    checks.extend(gate(spec, evidence) for gate in GATES)
    checks.extend(metric_checks(spec, evidence))
    found = [c for c in checks if c is not None]
    numbers = base_numbers(evidence)
    if spec.judge == "threshold":
        numbers["min_requests"] = spec.min_requests
    return combine(found, numbers, now, spec.window_s)


def begin_mark(spec: AnalysisSpec, observation: Observation) -> Mark | None:
    """Where the sequential judge's evidence starts: the totals now (``None`` otherwise)."""
    if spec.judge != "sequential" or not observation.totals:
        return None
    return dict(observation.totals)


def _since(totals: Mapping[str, Tally], mark: Mark, variant: str | None) -> Tally | None:
    if variant is None:
        return None
    current = totals.get(variant, Tally())
    return current.since(mark.get(variant, Tally()))


def judge(
    spec: AnalysisSpec, observation: Observation, roles: Roles, mark: Mark | None, now: float
) -> tuple[Verdict, Mark | None]:
    """The verdict on ``observation`` and the mark to keep.

    Totals that went backwards (a restarted router) restart the evidence: the
    mark moves to the current totals and the sequential rules hold meanwhile.
    """
    cand_tally = base_tally = None
    if mark is not None:
        cand_tally = _since(observation.totals, mark, roles.candidate)
        base_tally = _since(observation.totals, mark, roles.baseline)
        if cand_tally is None or (roles.baseline is not None and base_tally is None):
            mark, cand_tally, base_tally = begin_mark(spec, observation), None, None
    quality = observation.quality
    evidence = Evidence(
        candidate=observation.variants.get(roles.candidate, VariantStats()),
        baseline=observation.variants.get(roles.baseline) if roles.baseline else None,
        candidate_up=observation.backend_up.get(roles.candidate_backend, True),
        candidate_quality=quality.get(roles.candidate),
        baseline_quality=quality.get(roles.baseline) if roles.baseline else None,
        candidate_tally=cand_tally,
        baseline_tally=base_tally,
        metrics=observation.metrics,
        candidate_labels=observation.feedback.get(roles.candidate),
        baseline_labels=observation.feedback.get(roles.baseline) if roles.baseline else None,
    )
    return assess(spec, evidence, now=now), mark


def mark_to_dict(mark: Mark | None) -> dict[str, Any] | None:
    """A mark as JSON-able data for the state store."""
    if mark is None:
        return None
    return {
        variant: {"requests": t.requests, "errors": t.errors, "latency": list(t.latency)}
        for variant, t in mark.items()
    }


def mark_from_dict(data: Any) -> Mark | None:
    """Rebuild a mark from ``mark_to_dict``'s output; ValueError if unusable."""
    if data is None:
        return None
    try:
        return {
            str(variant): Tally(
                int(t["requests"]), int(t["errors"]), tuple(int(n) for n in t.get("latency", ()))
            )
            for variant, t in dict(data).items()
        }
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"bad analysis mark: {exc!r}") from exc
