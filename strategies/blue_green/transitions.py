"""Blue-green's switch state machine: pure transitions on ``BlueGreenState``.

Every function takes ``now`` and returns a ``Transition``: a (checked) switch,
the router's ``switch_check`` result, rollback and promote (the ``ACTIONS``
table), and the post-switch analysis check. ``blue_green`` wires them into
``BlueGreenStrategy``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from strategies.analysis import (
    AnalysisSpec,
    Roles,
    analysis_event,
    count_failures,
    failure_trigger,
    judge,
    should_act,
)
from strategies.base import ActionRejectedError, Command, Event, Phase, Transition
from strategies.blue_green.model import BlueGreenSpec, BlueGreenState
from strategies.observation import Observation

__all__ = [
    "ACTIONS",
    "Handler",
    "apply_switch",
    "assess_switch",
    "backend_of",
    "complete_switch",
    "other",
    "pending_switch_target",
]

Handler = Callable[[BlueGreenSpec, BlueGreenState, float, str], Transition[BlueGreenState]]


def other(colour: str) -> str:
    """The other colour."""
    return "green" if colour == "blue" else "blue"


def backend_of(spec: BlueGreenSpec, colour: str) -> str:
    """The backend behind ``colour``."""
    return spec.blue if colour == "blue" else spec.green


def pending_switch_target(state: BlueGreenState) -> str | None:
    """The colour the router must ``switch_check`` before calling ``complete_switch``."""
    return state.pending_switch


def _watch_horizon(analysis: AnalysisSpec) -> float:
    """How long after a switch analysis watches the new colour."""
    return max(analysis.window_s, analysis.interval * analysis.failures_to_act * 2)


def _switch_event(
    kind: str, reason: str, spec: BlueGreenSpec, old: str, new: str, **extra: Any
) -> Event:
    fields = {
        "from": old,
        "to": new,
        "from_backend": backend_of(spec, old),
        "to_backend": backend_of(spec, new),
        **extra,
    }
    return Event(kind=kind, reason=reason, fields=fields)


def _switched(
    spec: BlueGreenSpec, state: BlueGreenState, target: str, now: float, phase: Phase = Phase.STEADY
) -> BlueGreenState:
    """Traffic on ``target``; a forward switch (``steady``) starts the analysis watch."""
    watch = spec.analysis is not None and phase == Phase.STEADY
    return replace(
        state,
        active=target,
        previous=state.active,
        phase=phase,
        since=now,
        last_switch_at=now,
        watch_until=now + _watch_horizon(spec.analysis) if watch and spec.analysis else None,
        last_check_at=None,
        last_verdict=None,
        consecutive_failures=0,
        mark=None,
        pending_switch=None,
        refused_reason=None,
    )


def apply_switch(
    spec: BlueGreenSpec, state: BlueGreenState, target: str, now: float, reason: str, trigger: str
) -> Transition[BlueGreenState]:
    """Switch at once, or leave it pending when a ``switch_check`` must pass first."""
    if spec.switch_check is not None:
        return Transition(replace(state, pending_switch=target, refused_reason=None))
    new = _switched(spec, state, target, now)
    return Transition(
        new, (_switch_event("switch", reason, spec, state.active, target, trigger=trigger),)
    )


def complete_switch(
    spec: BlueGreenSpec, state: BlueGreenState, ok: bool, reason: str, now: float
) -> Transition[BlueGreenState]:
    """The router's ``switch_check`` result: switch, or refuse and keep the old colour."""
    target = state.pending_switch
    if target is None:
        return Transition(state)
    if ok:
        new = _switched(spec, state, target, now)
        return Transition(
            new,
            (
                _switch_event(
                    "switch",
                    reason or "switch check passed",
                    spec,
                    state.active,
                    target,
                    trigger="check",
                ),
            ),
        )
    refused = replace(state, pending_switch=None, refused_reason=reason)
    return Transition(
        refused, (_switch_event("switch_refused", reason, spec, state.active, target),)
    )


def _rollback(
    spec: BlueGreenSpec, state: BlueGreenState, now: float, reason: str
) -> Transition[BlueGreenState]:
    """Cancel a pending switch, or switch back to the previous colour with no check."""
    reason = reason or "manual"
    if state.pending_switch is not None:
        new = replace(state, phase=Phase.ROLLED_BACK, since=now, pending_switch=None)
        event = _switch_event(
            "rollback",
            reason,
            spec,
            state.active,
            state.active,
            trigger="manual",
            cancelled=state.pending_switch,
        )
        return Transition(new, (event,))
    if state.phase == Phase.ROLLED_BACK:
        return Transition(state)
    if state.previous is None:
        raise ActionRejectedError("no previous colour to switch back to")
    new = _switched(spec, state, state.previous, now, Phase.ROLLED_BACK)
    return Transition(
        new, (_switch_event("rollback", reason, spec, state.active, new.active, trigger="manual"),)
    )


def _promote(
    spec: BlueGreenSpec, state: BlueGreenState, now: float, reason: str
) -> Transition[BlueGreenState]:
    """Switch to the other colour (checked first); a pending switch makes it a no-op."""
    if state.pending_switch is not None:
        return Transition(state)
    return apply_switch(spec, state, other(state.active), now, reason or "manual", "promote")


_NO_PAUSE = "blue-green has no ramp to pause"
_NO_RESUME = "blue-green has no ramp to resume"
_COMMANDS: dict[Command, Handler | str] = {
    Command.ROLLBACK: _rollback,
    Command.PROMOTE: _promote,
    Command.PAUSE: _NO_PAUSE,
    Command.RESUME: _NO_RESUME,
}
ACTIONS: dict[Phase, dict[Command, Handler | str]] = {
    Phase.STEADY: _COMMANDS,
    Phase.ROLLED_BACK: _COMMANDS,
}
"""Per phase, each command's handler, or the reason it is rejected (HTTP 409)."""


def assess_switch(
    spec: BlueGreenSpec, analysis: AnalysisSpec, state: BlueGreenState, obs: Observation, now: float
) -> Transition[BlueGreenState]:
    """Assess the new colour against the previous one; switch back on repeated failure."""
    previous = state.previous
    roles = Roles(state.active, previous, backend_of(spec, state.active))
    verdict, mark = judge(analysis, obs, roles, state.mark, now)
    failures = count_failures(verdict, state.consecutive_failures)
    checked = replace(state, last_check_at=now, last_verdict=verdict, consecutive_failures=failures,
                      mark=mark)
    events = [analysis_event(verdict, failures)]
    if should_act(analysis, verdict, failures) and previous is not None:
        back = replace(
            _switched(spec, checked, previous, now, Phase.ROLLED_BACK),
            last_verdict=verdict,
            consecutive_failures=failures,
        )
        events.append(
            _switch_event(
                "rollback",
                "; ".join(c.explanation for c in verdict.checks if c.outcome == "fail"),
                spec,
                state.active,
                previous,
                trigger=failure_trigger(verdict),
            )
        )
        checked = back
    return Transition(checked, tuple(events))
