"""Verdicts: what each check concluded, what the analysis concluded, and how that is shown.

A check (``strategies.analysis.checks``, ``.sequential``) gives a ``CheckResult``:
``pass``, ``fail`` or ``hold`` with its rule name, its numbers and one line a
person can read. The analysis combines them into a ``Verdict``: any failure
fails, else any hold holds, else it passes. Hold means no verdict yet — never
pass, never fail — so thin or missing data can neither abort nor advance a
rollout. The helpers here keep the cadence, the failure count, the store
format and the status rendering of verdicts in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from strategies.analysis.spec import AnalysisSpec
from strategies.base import Event

__all__ = [
    "HEALTH_DOWN_REASON",
    "CheckResult",
    "Number",
    "Outcome",
    "Verdict",
    "analysis_event",
    "check_due",
    "combine",
    "count_failures",
    "failure_trigger",
    "format_instant",
    "render_analysis",
    "should_act",
    "verdict_from_dict",
    "verdict_to_dict",
]

Outcome = Literal["pass", "fail", "hold"]
Number = float | int | None
HEALTH_DOWN_REASON = "candidate backend is down (health checks)"
_OUTCOMES = ("pass", "fail", "hold")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One rule's conclusion.

    ``statistic`` and ``boundary`` place the running evidence against the
    limit it is judged by (the dashboard draws one against the other);
    ``decisive`` marks a result that is already sure at the configured
    confidence, so a failure acts at once instead of after ``failures_to_act``.
    """

    rule: str
    outcome: Outcome
    explanation: str
    numbers: Mapping[str, Number] = field(default_factory=dict)
    statistic: float | None = None
    boundary: float | None = None
    decisive: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """The analysis's outcome, the reasons behind it, every number, and each check."""

    outcome: Outcome
    reasons: tuple[str, ...] = ()
    numbers: Mapping[str, Number] = field(default_factory=dict)
    at: float = 0.0
    window_s: float = 0.0
    checks: tuple[CheckResult, ...] = ()

    @property
    def decisive(self) -> bool:
        """A failed check was sure at the configured confidence."""
        return any(c.decisive and c.outcome == "fail" for c in self.checks)


def combine(
    checks: Sequence[CheckResult], numbers: Mapping[str, Number], now: float, window_s: float
) -> Verdict:
    """Any failure fails, else any hold holds, else pass; reasons list failures then holds."""
    failed = [c for c in checks if c.outcome == "fail"]
    held = [c for c in checks if c.outcome == "hold"]
    outcome: Outcome = "fail" if failed else "hold" if held else "pass"
    merged: dict[str, Number] = dict(numbers)
    for check in checks:
        merged.update(check.numbers)
    reasons = tuple(c.explanation for c in (*failed, *held))
    return Verdict(outcome, reasons, merged, now, window_s, tuple(checks))


def check_due(spec: AnalysisSpec, last_check_at: float | None, started: float, now: float) -> bool:
    """Whether a check is due: an ``interval`` since the last one, or since ``started``."""
    reference = started if last_check_at is None else last_check_at
    return now - reference >= spec.interval


def count_failures(verdict: Verdict, consecutive: int) -> int:
    """The consecutive-failure count after ``verdict``: a hold leaves it as it was."""
    if verdict.outcome == "fail":
        return consecutive + 1
    if verdict.outcome == "pass":
        return 0
    return consecutive


def should_act(spec: AnalysisSpec, verdict: Verdict, consecutive_failures: int) -> bool:
    """Act on failure: ``failures_to_act`` in a row, or one failure that is already sure."""
    if verdict.outcome != "fail":
        return False
    return verdict.decisive or consecutive_failures >= spec.failures_to_act


def failure_trigger(verdict: Verdict) -> str:
    """``health`` when the backend's health checks failed the verdict, else ``analysis``."""
    return "health" if HEALTH_DOWN_REASON in verdict.reasons else "analysis"


def analysis_event(verdict: Verdict, consecutive_failures: int) -> Event:
    """The ``analysis`` event recording a verdict, its reasons and its numbers."""
    return Event(
        kind="analysis",
        reason="; ".join(verdict.reasons) or verdict.outcome,
        fields={
            "outcome": verdict.outcome,
            "window_s": verdict.window_s,
            "consecutive_failures": consecutive_failures,
            "checks": [_check_to_dict(c) for c in verdict.checks],
            **verdict.numbers,
        },
    )


def format_instant(ts: float | None) -> str | None:
    """A Unix time as ISO-8601 UTC to the second (``2026-11-29T12:00:00Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_analysis(verdict: Verdict | None, consecutive_failures: int) -> dict[str, Any]:
    """The status's ``analysis`` object (docs/http.md), with each check's conclusion."""
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
            "checks": [_check_to_dict(c) for c in verdict.checks],
        }
    return {"last": last, "consecutive_failures": consecutive_failures}


def _check_to_dict(check: CheckResult) -> dict[str, Any]:
    return {
        "rule": check.rule,
        "outcome": check.outcome,
        "explanation": check.explanation,
        "numbers": dict(check.numbers),
        "statistic": check.statistic,
        "boundary": check.boundary,
        "decisive": check.decisive,
    }


def _check_from_dict(data: Mapping[str, Any]) -> CheckResult:
    outcome = _outcome(data["outcome"])
    return CheckResult(
        rule=str(data["rule"]),
        outcome=outcome,
        explanation=str(data.get("explanation", "")),
        numbers={str(k): v for k, v in dict(data.get("numbers") or {}).items()},
        statistic=_opt_float(data.get("statistic")),
        boundary=_opt_float(data.get("boundary")),
        decisive=bool(data.get("decisive", False)),
    )


def _outcome(value: Any) -> Outcome:
    if value == "no_data":  # written by routers before checks had names
        return "hold"
    if value not in _OUTCOMES:
        raise ValueError(f"unknown outcome {value!r}")
    result: Outcome = value
    return result


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


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
        "checks": [_check_to_dict(c) for c in verdict.checks],
    }


def verdict_from_dict(data: Any) -> Verdict | None:
    """Rebuild a verdict from ``verdict_to_dict``'s output; ValueError if unusable."""
    if data is None:
        return None
    try:
        numbers = {str(k): v for k, v in dict(data.get("numbers") or {}).items()}
        return Verdict(
            outcome=_outcome(data["outcome"]),
            reasons=tuple(str(r) for r in data.get("reasons") or ()),
            numbers=numbers,
            at=float(data["at"]),
            window_s=float(data.get("window_s", 0.0)),
            checks=tuple(_check_from_dict(c) for c in data.get("checks") or ()),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"bad verdict: {exc!r}") from exc
