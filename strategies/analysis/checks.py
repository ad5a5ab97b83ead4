"""The checks of the analysis: each reads the ``Evidence`` and gives a ``CheckResult``.

A check is a function ``(spec, evidence) -> CheckResult | None`` (``None``: its
rule is not configured, or does not apply). The threshold judge runs
``THRESHOLD_CHECKS``, the sequential judge ``strategies.analysis.sequential``'s;
both run ``GATES`` (model quality, time to first byte) and the Prometheus
``metric_checks``. A new rule is one function here plus its field in
``AnalysisSpec``, listed where it applies.

Model-quality gates compare the candidate with the baseline in the same window
and need ``MIN_ANSWERS`` answers (null outputs) or ``MIN_PREDICTIONS``
predictions (drift) on each side; fewer hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from strategies.analysis.spec import AnalysisSpec
from strategies.analysis.verdict import HEALTH_DOWN_REASON, CheckResult, Number
from strategies.feedback import LabelTally
from strategies.observation import Quality, Tally, VariantStats
from strategies.psi import label_psi, value_psi

__all__ = [
    "GATES",
    "MIN_ANSWERS",
    "MIN_PREDICTIONS",
    "THRESHOLD_CHECKS",
    "Check",
    "Evidence",
    "base_numbers",
    "health_check",
    "metric_checks",
]

MIN_ANSWERS = 100
MIN_PREDICTIONS = 100


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the checks read: the window's numbers, answers, tallies and metric readings.

    ``candidate_tally``/``baseline_tally`` count since the sequential test began
    (``None``: no running totals). ``metrics`` maps a metric check's name to its
    latest reading: a number, or why there is none.
    """

    candidate: VariantStats
    baseline: VariantStats | None = None
    candidate_up: bool = True
    candidate_quality: Quality | None = None
    baseline_quality: Quality | None = None
    candidate_tally: Tally | None = None
    baseline_tally: Tally | None = None
    metrics: Mapping[str, float | str] = field(default_factory=dict)
    candidate_labels: LabelTally | None = None
    baseline_labels: LabelTally | None = None


Check = Callable[[AnalysisSpec, Evidence], CheckResult | None]


def base_numbers(evidence: Evidence) -> dict[str, Number]:
    """The window's headline numbers, recorded with every verdict."""
    cand, base = evidence.candidate, evidence.baseline or VariantStats()
    numbers: dict[str, Number] = {
        "candidate_requests": cand.requests,
        "candidate_errors": cand.errors,
        "candidate_error_rate": cand.error_rate,
        "candidate_p99_s": cand.p99_s,
        "baseline_requests": base.requests,
        "baseline_error_rate": base.error_rate,
        "baseline_p99_s": base.p99_s,
    }
    if cand.error_rate is not None and base.error_rate is not None:
        numbers["error_rate_increase"] = cand.error_rate - base.error_rate
    if cand.p99_s is not None and base.p99_s:
        numbers["latency_ratio"] = cand.p99_s / base.p99_s
    return numbers


def health_check(spec: AnalysisSpec, evidence: Evidence) -> CheckResult | None:
    """The candidate's backend failed its active health checks: fail."""
    if evidence.candidate_up:
        return None
    return CheckResult("health", "fail", HEALTH_DOWN_REASON)


def _over(rule: str, value: float, limit: float, shown: str, detail: str,
          numbers: Mapping[str, Number] | None = None, unit: str = "") -> CheckResult:
    """A threshold result: fail above ``limit``, else pass; ``shown`` renders the value."""
    failed = value > limit
    sign = ">" if failed else "<="
    text = f"{rule} {shown} {sign} {limit:g}{unit} ({detail})"
    return CheckResult(
        rule, "fail" if failed else "pass", text, numbers or {}, statistic=value, boundary=limit
    )


def _min_requests(spec: AnalysisSpec, evidence: Evidence) -> CheckResult | None:
    """The threshold judge's wait: fewer than ``min_requests`` candidate requests hold."""
    n = evidence.candidate.requests
    if n >= spec.min_requests:
        return None
    return CheckResult(
        "min_requests", "hold",
        f"{n} candidate requests in {spec.window_s:g}s window, need {spec.min_requests}",
        {"min_requests": spec.min_requests}, statistic=n, boundary=spec.min_requests,
    )


def _enough(spec: AnalysisSpec, evidence: Evidence) -> bool:
    return evidence.candidate.requests >= spec.min_requests


def _error_rate(spec: AnalysisSpec, evidence: Evidence) -> CheckResult | None:
    rate, limit = evidence.candidate.error_rate, spec.max_error_rate
    if limit is None or rate is None or not _enough(spec, evidence):
        return None
    detail = f"{evidence.candidate.errors:,} of {evidence.candidate.requests:,} requests"
    return _over("error_rate", rate, limit, f"{rate:.3f}", detail, {})


def _error_rate_increase(spec: AnalysisSpec, evidence: Evidence) -> CheckResult | None:
    rate = evidence.candidate.error_rate
    base_rate = evidence.baseline.error_rate if evidence.baseline else None
    if rate is None or base_rate is None or not _enough(spec, evidence):
        return None
    limit = spec.max_error_rate_increase
    if limit is None:
        return None
    increase = rate - base_rate
    detail = f"{rate:.3f} vs {base_rate:.3f}"
    return _over("error_rate_increase", increase, limit, f"{increase:.3f}", detail)


def _p99_latency(spec: AnalysisSpec, evidence: Evidence) -> CheckResult | None:
    p99, limit = evidence.candidate.p99_s, spec.max_p99_latency
    if limit is None or p99 is None or not _enough(spec, evidence):
        return None
    detail = f"{evidence.candidate.requests:,} candidate requests"
    return _over("p99_latency", p99 * 1000, limit * 1000, f"{p99 * 1000:.0f}ms", detail, unit="ms")


def _latency_ratio(spec: AnalysisSpec, evidence: Evidence) -> CheckResult | None:
    p99, base = evidence.candidate.p99_s, evidence.baseline
    base_p99 = base.p99_s if base is not None and base.requests else None
    if p99 is None or not base_p99 or not _enough(spec, evidence):
        return None
    if spec.max_latency_ratio is None:
        return None
    ratio = p99 / base_p99
    detail = f"p99 {p99 * 1000:.0f}ms vs {base_p99 * 1000:.0f}ms"
    return _over("latency_ratio", ratio, spec.max_latency_ratio, f"{ratio:.2f}", detail)


def _ttfb_samples(spec: AnalysisSpec, evidence: Evidence, rule: str,
                  baseline: bool) -> CheckResult | None:
    """A hold while either side has fewer than ``min_requests`` answers with a first byte."""
    n_cand = evidence.candidate.ttfb_count
    n_base = evidence.baseline.ttfb_count if evidence.baseline is not None else 0
    need = max(spec.min_requests, 1)
    if n_cand >= need and (not baseline or n_base >= need):
        return None
    if baseline:
        text = f"{rule}: {n_cand:,} vs {n_base:,} answers with a first byte, need {need} each"
    else:
        text = f"{rule}: {n_cand:,} candidate answers with a first byte, need {need}"
    return CheckResult(rule, "hold", text, statistic=n_cand, boundary=need)


TtfbRule = Callable[[float, VariantStats, VariantStats], CheckResult]


def _ttfb(rule: str, limit_of: Callable[[AnalysisSpec], float | None], baseline: bool,
          body: TtfbRule) -> Check:
    """A time-to-first-byte rule: absent without its limit, holding on too few answers."""

    def check(spec: AnalysisSpec, evidence: Evidence) -> CheckResult | None:
        limit = limit_of(spec)
        if limit is None:
            return None
        held = _ttfb_samples(spec, evidence, rule, baseline)
        return held or body(limit, evidence.candidate, evidence.baseline or VariantStats())

    check.__name__ = rule
    return check


def _ttfb_p99(limit: float, cand: VariantStats, base: VariantStats) -> CheckResult:
    p99 = cand.ttfb_p99_s or 0.0
    return _over("ttfb_p99", p99 * 1000, limit * 1000, f"{p99 * 1000:.0f}ms",
                 f"{cand.ttfb_count:,} candidate answers", {"candidate_ttfb_p99_s": p99},
                 unit="ms")


def _ttfb_ratio(limit: float, cand: VariantStats, base: VariantStats) -> CheckResult:
    p99, base_p99 = cand.ttfb_p99_s or 0.0, base.ttfb_p99_s or 0.0
    ratio = p99 / base_p99 if base_p99 else math.inf
    detail = f"ttfb p99 {p99 * 1000:.0f}ms vs {base_p99 * 1000:.0f}ms"
    numbers = {"candidate_ttfb_p99_s": p99, "baseline_ttfb_p99_s": base_p99, "ttfb_ratio": ratio}
    return _over("ttfb_ratio", ratio, limit, f"{ratio:.2f}", detail, numbers)


Gate = Callable[[AnalysisSpec, float, Quality, Quality], CheckResult]


def _gate(rule: str, limit_of: Callable[[AnalysisSpec], float | None],
          size_of: Callable[[Quality], int], minimum: int, noun: str, body: Gate) -> Check:
    """A model-quality gate: absent without its limit, holding below ``minimum`` per side."""

    def check(spec: AnalysisSpec, evidence: Evidence) -> CheckResult | None:
        limit = limit_of(spec)
        if limit is None:
            return None
        cand = evidence.candidate_quality or Quality()
        base = evidence.baseline_quality or Quality()
        n_cand, n_base = size_of(cand), size_of(base)
        if min(n_cand, n_base) < minimum:
            text = f"{rule}: {n_cand:,} vs {n_base:,} {noun}, need {minimum} each"
            return CheckResult(rule, "hold", text, boundary=limit)
        return body(spec, limit, cand, base)

    check.__name__ = rule
    return check


def _null_outputs(spec: AnalysisSpec, limit: float, cand: Quality, base: Quality
                  ) -> CheckResult:
    increase = cand.null_outputs / cand.answers - base.null_outputs / base.answers
    detail = (f"{cand.null_outputs:,}/{cand.answers:,} vs {base.null_outputs:,}/{base.answers:,}"
              " null outputs")
    numbers = {"null_output_rate_increase": increase}
    return _over("null_output_rate_increase", increase, limit, f"{increase:.3f}", detail, numbers)


def _predictions(quality: Quality) -> int:
    return sum(quality.labels.values()) or len(quality.values)


def _drift(spec: AnalysisSpec, limit: float, cand: Quality, base: Quality) -> CheckResult:
    if cand.labels or base.labels:
        index = label_psi(base.labels, cand.labels)
    else:
        index = value_psi(base.values, cand.values)
    detail = f"psi, {_predictions(cand):,} vs {_predictions(base):,} predictions"
    return _over("prediction_drift", index, limit, f"{index:.2f}", detail,
                 {"prediction_drift_psi": index})


def _accuracy_ratio(spec: AnalysisSpec, evidence: Evidence) -> CheckResult | None:
    """Candidate accuracy over the baseline's, on true labels received over the feedback
    window; fewer than ``min_feedback`` classified labels on either side hold."""
    limit = spec.min_accuracy_ratio
    if limit is None:
        return None
    rule = "accuracy_ratio"
    cand, base = evidence.candidate_labels or LabelTally(), evidence.baseline_labels or LabelTally()
    n_cand, n_base = cand.correct + cand.wrong, base.correct + base.wrong
    if min(n_cand, n_base) < spec.min_feedback:
        text = f"{rule}: {n_cand:,} vs {n_base:,} labels, need {spec.min_feedback} each"
        return CheckResult(rule, "hold", text, boundary=limit)
    assert cand.accuracy is not None and base.accuracy is not None
    # A baseline that is never right cannot be beaten: the ratio is taken as the limit.
    ratio = cand.accuracy / base.accuracy if base.accuracy else max(limit, 1.0)
    failed = ratio < limit
    text = (f"{rule} {ratio:.2f} {'<' if failed else '>='} {limit:g} (accuracy "
            f"{cand.accuracy:.3f} vs {base.accuracy:.3f}, {n_cand:,} vs {n_base:,} labels)")
    numbers = {"candidate_accuracy": cand.accuracy, "baseline_accuracy": base.accuracy}
    return CheckResult(rule, "fail" if failed else "pass", text, numbers,
                       statistic=ratio, boundary=limit)


def metric_checks(spec: AnalysisSpec, evidence: Evidence) -> list[CheckResult]:
    """One result per Prometheus check: no reading, NaN or an error holds (never passes)."""
    results = []
    for check in spec.metrics:
        reading = evidence.metrics.get(check.name, "no reading yet")
        if isinstance(reading, str) or math.isnan(reading):
            why = reading if isinstance(reading, str) else "query returned NaN"
            results.append(CheckResult(check.name, "hold", f"{check.name}: {why}"))
            continue
        numbers = {check.name: reading}
        if check.max is not None and reading > check.max:
            text = f"{check.name} {reading:g} > max {check.max:g} (prometheus)"
            results.append(CheckResult(check.name, "fail", text, numbers, reading, check.max))
        elif check.min is not None and reading < check.min:
            text = f"{check.name} {reading:g} < min {check.min:g} (prometheus)"
            results.append(CheckResult(check.name, "fail", text, numbers, reading, check.min))
        else:
            bound = check.max if check.max is not None else check.min
            text = f"{check.name} {reading:g} within bounds (prometheus)"
            results.append(CheckResult(check.name, "pass", text, numbers, reading, bound))
    return results


THRESHOLD_CHECKS: tuple[Check, ...] = (
    _min_requests, _error_rate, _error_rate_increase, _p99_latency, _latency_ratio,
)
"""The fixed rules of the threshold judge, after ``min_requests``."""

GATES: tuple[Check, ...] = (
    _gate("null_output_rate_increase", lambda s: s.max_null_output_rate_increase,
          lambda q: q.answers, MIN_ANSWERS, "predictions read", _null_outputs),
    _gate("prediction_drift", lambda s: s.max_prediction_drift, _predictions,
          MIN_PREDICTIONS, "predictions", _drift),
    _accuracy_ratio,
    _ttfb("ttfb_p99", lambda s: s.max_ttfb_p99, False, _ttfb_p99),
    _ttfb("ttfb_ratio", lambda s: s.max_ttfb_ratio, True, _ttfb_ratio),
)
"""Checks run by both judges: model quality (and accuracy), and time to first byte
(window p99s; fewer than ``min_requests`` answers with a body on a side hold)."""
