"""Live analysis: thresholds from YAML, assessed against a window's numbers.

Shared by canary and blue-green (one implementation, not a copy). ``assess``
turns one window's numbers into a ``Verdict``: ``pass``, ``fail`` or
``no_data``. No data means hold — never pass, never fail — so a thin window
(fewer than ``min_requests`` candidate requests) cannot abort nor advance a
rollout. The helpers below keep the check cadence, the failure count, the
verdict's store format and its status rendering in this one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from strategies.base import Event, VariantStats
from strategies.units import Duration

__all__ = [
    "HEALTH_DOWN_REASON",
    "AnalysisSpec",
    "Outcome",
    "Verdict",
    "analysis_event",
    "assess",
    "check_due",
    "count_failures",
    "failure_trigger",
    "format_instant",
    "render_analysis",
    "verdict_from_dict",
    "verdict_to_dict",
]

Outcome = Literal["pass", "fail", "no_data"]
HEALTH_DOWN_REASON = "candidate backend is down (health checks)"
Number = float | int | None


class AnalysisSpec(BaseModel):
    """The ``analysis`` section of a canary or blue-green route."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: Annotated[Duration, Field(gt=0)] = 30.0
    window: Annotated[Duration, Field(gt=0)] | None = None
    min_requests: Annotated[int, Field(ge=0)] = 50
    max_error_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    max_error_rate_increase: Annotated[float, Field(ge=0, le=1)] | None = None
    max_p99_latency: Duration | None = None
    max_latency_ratio: Annotated[float, Field(gt=0)] | None = None
    failures_to_act: Annotated[int, Field(ge=1)] = 2

    @property
    def window_s(self) -> float:
        """The trailing window the checks read; defaults to the interval."""
        return self.window if self.window is not None else self.interval


@dataclass(frozen=True, slots=True)
class Verdict:
    """One check's outcome, the reasons for a failure, and every number behind it."""

    outcome: Outcome
    reasons: tuple[str, ...] = ()
    numbers: Mapping[str, Number] = field(default_factory=dict)
    at: float = 0.0
    window_s: float = 0.0


def _numbers(candidate: VariantStats, baseline: VariantStats | None) -> dict[str, Number]:
    base = baseline or VariantStats()
    return {
        "candidate_requests": candidate.requests,
        "candidate_errors": candidate.errors,
        "candidate_error_rate": candidate.error_rate,
        "candidate_p99_s": candidate.p99_s,
        "baseline_requests": base.requests,
        "baseline_error_rate": base.error_rate,
        "baseline_p99_s": base.p99_s,
    }


def _threshold_reasons(
    spec: AnalysisSpec, cand: VariantStats, base: VariantStats | None, numbers: dict[str, Number]
) -> list[str]:
    """Check each configured threshold; record derived numbers; return the failures."""
    reasons: list[str] = []
    rate = cand.error_rate
    if spec.max_error_rate is not None and rate is not None and rate > spec.max_error_rate:
        reasons.append(f"error rate {rate:.3f} > max {spec.max_error_rate:g}")
    base_rate = base.error_rate if base is not None else None
    if rate is not None and base_rate is not None:
        increase = rate - base_rate
        numbers["error_rate_increase"] = increase
        limit = spec.max_error_rate_increase
        if limit is not None and increase > limit:
            reasons.append(f"error rate increase {increase:.3f} > max {limit:g}")
    p99 = cand.p99_s
    if spec.max_p99_latency is not None and p99 is not None and p99 > spec.max_p99_latency:
        reasons.append(f"p99 latency {p99 * 1000:.0f}ms > max {spec.max_p99_latency * 1000:g}ms")
    base_p99 = base.p99_s if base is not None and base.requests else None
    if p99 is not None and base_p99:
        ratio = p99 / base_p99
        numbers["latency_ratio"] = ratio
        limit_ratio = spec.max_latency_ratio
        if limit_ratio is not None and ratio > limit_ratio:
            reasons.append(f"p99 latency ratio {ratio:.2f} > max {limit_ratio:g}")
    return reasons


def assess(
    spec: AnalysisSpec,
    candidate: VariantStats,
    baseline: VariantStats | None,
    *,
    candidate_up: bool = True,
    now: float,
) -> Verdict:
    """Judge the candidate's window: ``fail`` on a breached threshold or a down
    backend, ``no_data`` below ``min_requests``, else ``pass``.

    Comparisons with the baseline are skipped while the baseline has no data.
    """
    window = spec.window_s
    numbers = _numbers(candidate, baseline)
    numbers["min_requests"] = spec.min_requests
    if not candidate_up:
        _threshold_reasons(spec, candidate, baseline, numbers)
        return Verdict("fail", (HEALTH_DOWN_REASON,), numbers, now, window)
    if candidate.requests < spec.min_requests:
        reason = (
            f"{candidate.requests} candidate requests in {window:g}s window, "
            f"need {spec.min_requests}"
        )
        return Verdict("no_data", (reason,), numbers, now, window)
    reasons = _threshold_reasons(spec, candidate, baseline, numbers)
    return Verdict("fail" if reasons else "pass", tuple(reasons), numbers, now, window)


def check_due(spec: AnalysisSpec, last_check_at: float | None, started: float, now: float) -> bool:
    """Whether a check is due: an ``interval`` since the last one, or since ``started``."""
    reference = started if last_check_at is None else last_check_at
    return now - reference >= spec.interval


def count_failures(verdict: Verdict, consecutive: int) -> int:
    """The consecutive-failure count after ``verdict``: no data leaves it as it was."""
    if verdict.outcome == "fail":
        return consecutive + 1
    if verdict.outcome == "pass":
        return 0
    return consecutive


def failure_trigger(verdict: Verdict) -> str:
    """``health`` when the backend's health checks failed the verdict, else ``analysis``."""
    return "health" if HEALTH_DOWN_REASON in verdict.reasons else "analysis"


def analysis_event(verdict: Verdict, consecutive_failures: int) -> Event:
    """The ``analysis`` event recording a verdict and its numbers."""
    return Event(
        kind="analysis",
        reason="; ".join(verdict.reasons) or verdict.outcome,
        fields={
            "outcome": verdict.outcome,
            "window_s": verdict.window_s,
            "consecutive_failures": consecutive_failures,
            **verdict.numbers,
        },
    )


def format_instant(ts: float | None) -> str | None:
    """A Unix time as ISO-8601 UTC to the second (``2026-11-29T12:00:00Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_analysis(verdict: Verdict | None, consecutive_failures: int) -> dict[str, Any]:
    """The status's ``analysis`` object (SPEC §8)."""
    last: dict[str, Any] | None = None
    if verdict is not None:
        ok = {"pass": True, "fail": False}.get(verdict.outcome)
        last = {
            "ok": ok,
            "outcome": verdict.outcome,
            "at": format_instant(verdict.at),
            "reasons": list(verdict.reasons),
            "numbers": dict(verdict.numbers),
            "window_s": verdict.window_s,
        }
    return {"last": last, "consecutive_failures": consecutive_failures}


def verdict_to_dict(verdict: Verdict | None) -> dict[str, Any] | None:
    """A verdict as JSON-able data for the state store."""
    if verdict is None:
        return None
    return {
        "outcome": verdict.outcome,
        "reasons": list(verdict.reasons),
        "numbers": dict(verdict.numbers),
        "at": verdict.at,
        "window_s": verdict.window_s,
    }


def verdict_from_dict(data: Any) -> Verdict | None:
    """Rebuild a verdict from ``verdict_to_dict``'s output; ValueError if unusable."""
    if data is None:
        return None
    try:
        outcome = data["outcome"]
        if outcome not in ("pass", "fail", "no_data"):
            raise ValueError(f"unknown outcome {outcome!r}")
        numbers = {str(k): v for k, v in dict(data.get("numbers") or {}).items()}
        return Verdict(
            outcome=outcome,
            reasons=tuple(str(r) for r in data.get("reasons") or ()),
            numbers=numbers,
            at=float(data["at"]),
            window_s=float(data.get("window_s", 0.0)),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"bad verdict: {exc!r}") from exc
