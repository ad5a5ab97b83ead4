"""Canary's basic moves: where a ramp starts, the next step, and the events that record a move.

Shared by the state machine (``canary.strategy``) and the shadow-first stage
(``canary.shadow_first``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from strategies.base import Event, Phase, Transition
from strategies.canary.model import CanarySpec, CanaryState
from strategies.canary.picker import current_weight

__all__ = [
    "changed",
    "fit_state",
    "next_step",
    "ramp_start",
    "rollout_event",
    "start_state",
    "step_phase",
]


def step_phase(spec: CanarySpec, index: int) -> Phase:
    """``waiting`` for a manual hold, else ``progressing``."""
    assert spec.steps is not None
    return Phase.WAITING if spec.steps[index].hold == "manual" else Phase.PROGRESSING


def ramp_start(spec: CanarySpec, now: float) -> CanaryState:
    """Step 0 of the ramp, or ``steady`` at a fixed weight."""
    phase = Phase.STEADY if spec.steps is None else step_phase(spec, 0)
    return CanaryState(phase=phase, since=now)


def start_state(spec: CanarySpec, now: float) -> CanaryState:
    """A new rollout: ``shadowing`` first when ``shadow_first`` is set, else the ramp's start."""
    if spec.shadow_first is not None:
        return CanaryState(phase=Phase.SHADOWING, since=now)
    return ramp_start(spec, now)


def rollout_event(
    kind: str, reason: str, spec: CanarySpec, old: CanaryState, new: CanaryState, **extra: Any
) -> Event:
    """An event recording a move from ``old`` to ``new``, with both phases, steps and weights."""
    fields: dict[str, Any] = {
        "from_phase": old.phase,
        "to_phase": new.phase,
        "from_step": old.step,
        "to_step": new.step,
        "from_weight": current_weight(spec, old),
        "to_weight": current_weight(spec, new),
        **extra,
    }
    return Event(kind=kind, reason=reason, fields=fields)


def changed(
    kind: str, spec: CanarySpec, old: CanaryState, new: CanaryState, reason: str, **extra: Any
) -> Transition[CanaryState]:
    """The transition to ``new`` with its one event."""
    return Transition(new, (rollout_event(kind, reason, spec, old, new, **extra),))


def next_step(spec: CanarySpec, state: CanaryState, now: float) -> CanaryState:
    """The state after the current step completes: the next step, or ``promoted``."""
    assert spec.steps is not None
    if state.step >= len(spec.steps) - 1:
        return replace(state, phase=Phase.PROMOTED, step=len(spec.steps) - 1, since=now)
    index = state.step + 1
    return replace(state, phase=step_phase(spec, index), step=index, since=now)


def fit_state(spec: CanarySpec, state: CanaryState, now: float) -> CanaryState:
    """A kept state fitted to an edited spec (fixed weight vs steps, fewer steps)."""
    phase = Phase(state.phase)
    if phase == Phase.ROLLED_BACK:
        return state
    if phase == Phase.SHADOWING:
        return state if spec.shadow_first is not None else ramp_start(spec, now)
    if spec.steps is None:
        if phase in (Phase.PROGRESSING, Phase.WAITING, Phase.PROMOTED):
            return replace(state, phase=Phase.STEADY, step=0, since=now)
        if phase == Phase.PAUSED:
            return replace(state, paused_from=Phase.STEADY, step=0)
        return state
    if phase == Phase.STEADY:
        return replace(state, phase=step_phase(spec, 0), step=0, since=now)
    if phase == Phase.PROMOTED:
        return replace(state, step=len(spec.steps) - 1)
    index = min(state.step, len(spec.steps) - 1)
    since = state.since if index == state.step else now
    fitted = step_phase(spec, index)
    if phase == Phase.PAUSED:
        return replace(state, step=index, since=since, paused_from=fitted)
    return replace(state, phase=fitted, step=index, since=since)
