"""The shadow-first stage of a canary: mirrored copies judged before any real traffic.

In phase ``shadowing`` every client is answered by stable; a ``percent`` share of
requests is also mirrored to the candidate and compared exactly as a ``shadow``
route does (``strategies.shadow.strategy.mirroring_picker``). The controller reads
the route's comparison counts; counting starts when the stage does (a mark in
the state). Once ``min_compared`` answers are compared, agreement at or above
``min_agreement`` (and label flips at or below ``max_label_flip_rate``) starts the
ramp (event ``shadow_passed``); below it, ``on_failure`` applies (``rollback`` or
``pause``, with the numbers).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from strategies.analysis import CheckResult, Verdict
from strategies.analysis.verdict import combine
from strategies.base import Decision, Phase, Picker, Transition
from strategies.canary.model import CanarySpec, CanaryState, ShadowFirstSpec
from strategies.canary.moves import changed, ramp_start, rollout_event
from strategies.observation import Observation, ShadowCounts
from strategies.shadow.strategy import mirroring_picker

__all__ = [
    "CHECK_EVERY_S",
    "counts_from_dict",
    "shadow_check",
    "shadow_status",
    "shadowing_picker",
    "shadowing_tick",
]

CHECK_EVERY_S = 1.0
RULE = "shadow_agreement"


def shadowing_picker(spec: CanarySpec) -> Picker:
    """Stable answers everyone; a share of requests is mirrored to the candidate."""
    first = spec.shadow_first
    assert first is not None
    return mirroring_picker(
        Decision("stable", spec.stable, reason="shadowing"), (spec.candidate,), first.percent,
        first.compare, max_body=first.max_body, max_in_flight=first.max_in_flight,
    )


def shadow_check(first: ShadowFirstSpec, counts: ShadowCounts) -> CheckResult:
    """Hold below ``min_compared``; then fail on low agreement or many label flips."""
    n = counts.compared
    agreement = counts.matched / n if n else None
    flips = counts.flips / counts.labelled if counts.labelled else None
    numbers = {"shadow_compared": n, "shadow_matched": counts.matched,
               "shadow_min_compared": first.min_compared, "shadow_agreement": agreement,
               "shadow_label_flip_rate": flips}
    if agreement is None or n < first.min_compared:
        text = f"{RULE}: {n:,} of {first.min_compared:,} comparisons made"
        return CheckResult(RULE, "hold", text, numbers, agreement, first.min_agreement)
    detail = f"{counts.matched:,} of {n:,} compared answers matched"
    if flips is not None:
        detail += f"; label flips {flips:.1%} of {counts.labelled:,}"
    too_many_flips = (
        first.max_label_flip_rate is not None and flips is not None
        and flips > first.max_label_flip_rate
    )
    if agreement < first.min_agreement or too_many_flips:
        limits = f"min {first.min_agreement:.1%}"
        if first.max_label_flip_rate is not None:
            limits += f", max flips {first.max_label_flip_rate:.1%}"
        text = f"{RULE} {agreement:.1%} ({limits}): {detail}"
        return CheckResult(RULE, "fail", text, numbers, agreement, first.min_agreement, True)
    text = f"{RULE} {agreement:.1%} >= {first.min_agreement:.1%} ({detail})"
    return CheckResult(RULE, "pass", text, numbers, agreement, first.min_agreement, True)


def _act(spec: CanarySpec, state: CanaryState, checked: CanaryState, verdict: Verdict,
         now: float) -> Transition[CanaryState]:
    """Start the ramp on a pass; apply ``on_failure`` on a failure."""
    (check,) = verdict.checks
    numbers = dict(check.numbers)
    if check.outcome == "pass":
        new = replace(ramp_start(spec, now), last_verdict=verdict)
        return changed("shadow_passed", spec, state, new, check.explanation, **numbers)
    if spec.on_failure == "rollback":
        new = replace(checked, phase=Phase.ROLLED_BACK, since=now, shadow_mark=None)
        return Transition(new, (rollout_event("rollback", check.explanation, spec, state, new,
                                              trigger="analysis", **numbers),))
    new = replace(checked, phase=Phase.PAUSED, paused_from=state.phase, paused_at=now)
    return Transition(new, (rollout_event("pause", check.explanation, spec, state, new,
                                          trigger="analysis", **numbers),))


def shadowing_tick(
    spec: CanarySpec, state: CanaryState, observation: Observation | None, now: float
) -> Transition[CanaryState]:
    """Mark where counting starts, then judge the comparisons about once a second."""
    first = spec.shadow_first
    if first is None or observation is None or observation.shadow is None:
        return Transition(state)
    current = observation.shadow
    counts = current.since(state.shadow_mark) if state.shadow_mark is not None else None
    if counts is None:  # the stage starts (or the router restarted): count from here
        return Transition(replace(state, shadow_mark=current))
    if state.last_check_at is not None and now - state.last_check_at < CHECK_EVERY_S:
        return Transition(state)
    verdict = combine([shadow_check(first, counts)], {}, now, 0.0)
    checked = replace(state, last_check_at=now, last_verdict=verdict)
    if verdict.outcome == "hold":
        return Transition(checked)
    return _act(spec, state, checked, verdict, now)


def shadow_status(first: ShadowFirstSpec, verdict: Verdict | None) -> dict[str, Any]:
    """The status's ``shadow_first`` object: the comparison so far against its thresholds."""
    check = verdict.checks[0] if verdict is not None and verdict.checks else None
    numbers = dict(check.numbers) if check is not None and check.rule == RULE else {}
    return {
        "compared": numbers.get("shadow_compared", 0),
        "min_compared": first.min_compared,
        "agreement": numbers.get("shadow_agreement"),
        "min_agreement": first.min_agreement,
        "label_flip_rate": numbers.get("shadow_label_flip_rate"),
        "max_label_flip_rate": first.max_label_flip_rate,
        "explanation": check.explanation if numbers and check is not None else None,
    }


def counts_from_dict(data: Any) -> ShadowCounts | None:
    """Rebuild a stored ``shadow_mark``; ValueError if unusable."""
    if data is None:
        return None
    try:
        return ShadowCounts(int(data["compared"]), int(data["matched"]),
                            int(data.get("labelled", 0)), int(data.get("flips", 0)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"bad shadow mark: {exc!r}") from exc
