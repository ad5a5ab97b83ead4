"""Canary: a sticky, monotonic share of traffic to a candidate, ramped by steps.

The data lives in ``canary_model`` and the per-request picker in
``canary_picker``; this module is the state machine (actions as a table,
the controller's ``advance``) and the ``CanaryStrategy`` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar

from strategies.analysis import (
    AnalysisSpec,
    Roles,
    analysis_event,
    begin_mark,
    check_due,
    count_failures,
    failure_trigger,
    format_instant,
    judge,
    mark_from_dict,
    mark_to_dict,
    render_analysis,
    should_act,
    verdict_from_dict,
    verdict_to_dict,
)
from strategies.base import (
    ActionRejectedError,
    Command,
    Event,
    Phase,
    Picker,
    StrategySpec,
    Transition,
    dump_dataclass,
)
from strategies.canary.model import CanarySpec, CanaryState, StepSpec, StickySpec
from strategies.canary.moves import (
    changed,
    fit_state,
    next_step,
    ramp_start,
    rollout_event,
    start_state,
    step_phase,
)
from strategies.canary.picker import build_picker, current_weight, sticky_salt
from strategies.canary.shadow_first import (
    counts_from_dict,
    shadow_status,
    shadowing_picker,
    shadowing_tick,
)
from strategies.observation import Observation

__all__ = [
    "ACTIONS",
    "CanarySpec",
    "CanaryState",
    "CanaryStrategy",
    "StepSpec",
    "StickySpec",
    "build_picker",
    "current_weight",
    "sticky_salt",
]

Handler = Callable[[CanarySpec, CanaryState, float, str], Transition[CanaryState]]

_PHASES = frozenset(
    {
        Phase.STEADY, Phase.PROGRESSING, Phase.WAITING, Phase.PAUSED, Phase.PROMOTED,
        Phase.ROLLED_BACK, Phase.SHADOWING,
    }
)
_ANALYSED = frozenset({Phase.STEADY, Phase.PROGRESSING, Phase.WAITING})


def _phase(value: object) -> Phase:
    """A stored canary phase; ValueError for one a canary never has."""
    try:
        phase = Phase(str(value))
    except ValueError:
        phase = None
    if phase not in _PHASES:
        raise ValueError(f"unknown canary phase {value!r}")
    assert phase is not None
    return phase


def _resumed(spec: CanarySpec, state: CanaryState, now: float) -> CanaryState:
    """Leave a pause keeping the hold already served (``since`` moves by the pause)."""
    fallback = Phase.STEADY if spec.steps is None else Phase.PROGRESSING
    paused_for = now - (state.paused_at if state.paused_at is not None else now)
    return replace(
        state,
        phase=state.paused_from or fallback,
        since=state.since + paused_for,
        paused_from=None,
        paused_at=None,
        last_check_at=None,
        consecutive_failures=0,
    )


# Operator commands, one handler each; ``ACTIONS`` below says which applies where.

_FIXED_WEIGHT = "fixed weight: edit weight in the file"
_ROLLED_BACK = "candidate was rolled back; resume restarts the ramp"
_PROMOTED_NO_PAUSE = "candidate is promoted: nothing to pause"
_ROLLED_BACK_NO_PAUSE = "candidate was rolled back: nothing to pause"


def _noop(spec: CanarySpec, state: CanaryState, now: float, reason: str) -> Transition[CanaryState]:
    return Transition(state)


def _rollback(
    spec: CanarySpec, state: CanaryState, now: float, reason: str
) -> Transition[CanaryState]:
    new = replace(state, phase=Phase.ROLLED_BACK, since=now, paused_from=None, paused_at=None,
                  mark=None, shadow_mark=None)
    return changed("rollback", spec, state, new, reason or "manual", trigger="manual")


def _pause(
    spec: CanarySpec, state: CanaryState, now: float, reason: str
) -> Transition[CanaryState]:
    new = replace(state, phase=Phase.PAUSED, paused_from=state.phase, paused_at=now)
    return changed("pause", spec, state, new, reason or "manual")


def _resume(
    spec: CanarySpec, state: CanaryState, now: float, reason: str
) -> Transition[CanaryState]:
    return changed("resume", spec, state, _resumed(spec, state, now), reason or "manual")


def _restart(
    spec: CanarySpec, state: CanaryState, now: float, reason: str
) -> Transition[CanaryState]:
    new = start_state(spec, now)
    return changed("resume", spec, state, new, reason or "manual: ramp restarts at step 0")


def _promote(
    spec: CanarySpec, state: CanaryState, now: float, reason: str
) -> Transition[CanaryState]:
    """Skip the shadow stage; complete a manual hold; jump a ramp to its last step.

    A pause is left first.
    """
    base = _resumed(spec, state, now) if state.phase == Phase.PAUSED else state
    if base.phase == Phase.SHADOWING:
        skipped = ramp_start(spec, now)
        return changed("promote", spec, state, skipped, reason or "manual: shadow stage skipped")
    if spec.steps is None:
        raise ActionRejectedError(_FIXED_WEIGHT)
    last = len(spec.steps) - 1
    if base.phase == Phase.WAITING:
        new = next_step(spec, base, now)
    elif base.step < last:
        new = replace(base, phase=step_phase(spec, last), step=last, since=now)
    else:
        new = base
    if new == state:
        return Transition(state)
    return changed("promote", spec, state, new, reason or "manual")


_COLUMNS = (Command.ROLLBACK, Command.PROMOTE, Command.PAUSE, Command.RESUME)

# fmt: off
ACTIONS: dict[Phase, dict[Command, Handler | str]] = {
    phase: dict(zip(_COLUMNS, row, strict=True))
    for phase, row in (
        #                  rollback    promote          pause                   resume
        (Phase.STEADY,      (_rollback, _FIXED_WEIGHT,   _pause,                 _noop)),
        (Phase.PROGRESSING, (_rollback, _promote,        _pause,                 _noop)),
        (Phase.WAITING,     (_rollback, _promote,        _pause,                 _noop)),
        (Phase.PAUSED,      (_rollback, _promote,        _noop,                  _resume)),
        (Phase.PROMOTED,    (_rollback, _noop,           _PROMOTED_NO_PAUSE,     _noop)),
        (Phase.ROLLED_BACK, (_noop,     _ROLLED_BACK,    _ROLLED_BACK_NO_PAUSE,  _restart)),
        (Phase.SHADOWING,   (_rollback, _promote,        _pause,                 _noop)),
    )
}
"""Per phase, each command's handler, or the reason it is rejected (HTTP 409)."""
# fmt: on


def _check(
    spec: CanarySpec, analysis: AnalysisSpec, state: CanaryState, obs: Observation, now: float
) -> Transition[CanaryState]:
    """Run one analysis check; act on failures (``should_act``)."""
    roles = Roles("candidate", "stable", spec.candidate)
    verdict, mark = judge(analysis, obs, roles, state.mark, now)
    failures = count_failures(verdict, state.consecutive_failures)
    checked = replace(state, last_check_at=now, last_verdict=verdict, consecutive_failures=failures,
                      mark=mark)
    events = [analysis_event(verdict, failures)]
    if should_act(analysis, verdict, failures):
        reason = "; ".join(c.explanation for c in verdict.checks if c.outcome == "fail")
        trigger = failure_trigger(verdict)
        if spec.on_failure == "rollback":
            new = replace(checked, phase=Phase.ROLLED_BACK, since=now, mark=None)
            events.append(rollout_event("rollback", reason, spec, state, new, trigger=trigger))
        else:
            new = replace(checked, phase=Phase.PAUSED, paused_from=state.phase, paused_at=now)
            events.append(rollout_event("pause", reason, spec, state, new, trigger=trigger))
        checked = new
    return Transition(checked, tuple(events))


def _step_due(spec: CanarySpec, state: CanaryState, now: float) -> bool:
    """A timed hold has passed and, with analysis, a check passed during this step."""
    if spec.steps is None or state.phase != Phase.PROGRESSING:
        return False
    hold = spec.steps[min(state.step, len(spec.steps) - 1)].hold
    if hold == "manual" or now - state.since < hold:
        return False
    if spec.analysis is None:
        return True
    verdict = state.last_verdict
    return verdict is not None and verdict.outcome == "pass" and verdict.at > state.since


def _walk(spec: CanarySpec, state: CanaryState, now: float) -> Transition[CanaryState]:
    """Take the next ramp step when it is due."""
    if not _step_due(spec, state, now):
        return Transition(state)
    new = next_step(spec, state, now)
    if new.phase == Phase.PROMOTED:
        reason = f"ramp complete: make {spec.candidate} the new stable in the file"
        return changed("promote", spec, state, new, reason, trigger="ramp")
    reason = "hold passed" + ("; analysis passed" if spec.analysis else "")
    if new.phase == Phase.WAITING:
        reason += "; waiting for promote"
    return changed("rollout_step", spec, state, new, reason)


def _percent(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 6)


class CanaryStrategy:
    """A sticky, monotonic share of traffic on a candidate, ramped and gated by analysis."""

    name: ClassVar[str] = "canary"
    spec_type: ClassVar[type[StrategySpec]] = CanarySpec
    backend_fields: ClassVar[tuple[str, ...]] = ("stable", "candidate")
    variants: ClassVar[tuple[str, ...]] = ("stable", "candidate")

    def backend_refs(self, spec: CanarySpec) -> Mapping[str, str]:
        """The two backend fields."""
        return {"stable": spec.stable, "candidate": spec.candidate}

    def backends(self, spec: CanarySpec, state: CanaryState) -> Mapping[str, str]:
        """Stable and candidate roles."""
        return {"stable": spec.stable, "candidate": spec.candidate}

    def identity(self, spec: CanarySpec, backend_urls: Mapping[str, str]) -> str:
        """The candidate's name and URL: a new candidate starts a new rollout."""
        return f"{spec.candidate}={backend_urls.get(spec.candidate, '')}"

    def initial_state(self, spec: CanarySpec, now: float) -> CanaryState:
        """A ramp at step 0 (``waiting`` if it is manual), or ``steady`` at a fixed weight."""
        return start_state(spec, now)

    def reconcile(
        self, spec: CanarySpec, state: CanaryState, now: float
    ) -> Transition[CanaryState]:
        """Fit a kept state to an edited spec; a rolled-back canary stays rolled back."""
        fitted = fit_state(spec, state, now)
        if fitted == state:
            return Transition(state)
        return changed("rollout_step", spec, state, fitted, "config changed", trigger="reload")

    def picker(self, spec: CanarySpec, state: CanaryState) -> Picker:
        """Compile the split: forced header, then sticky bucket, then the random draw.

        While shadowing, stable answers everyone and the candidate gets copies.
        """
        if state.phase == Phase.SHADOWING and spec.shadow_first is not None:
            return shadowing_picker(spec)
        return build_picker(spec, state)

    def apply(
        self, spec: CanarySpec, state: CanaryState, command: Command, now: float, reason: str
    ) -> Transition[CanaryState]:
        """Look the command up in ``ACTIONS``; rejections raise ``ActionRejectedError``."""
        entry = ACTIONS[Phase(state.phase)][command]
        if isinstance(entry, str):
            raise ActionRejectedError(entry)
        return entry(spec, state, now, reason)

    def active(self, spec: CanarySpec, state: CanaryState) -> bool:
        """While it ramps or waits at a step, or while its analysis runs."""
        return state.phase in (Phase.PROGRESSING, Phase.WAITING) or (
            self.analysis_window(spec, state) is not None
        )

    def analysis_window(self, spec: CanarySpec, state: CanaryState) -> float | None:
        """The analysis window while traffic is split (1 s while shadowing), else ``None``."""
        if state.phase == Phase.SHADOWING:
            return spec.analysis.window_s if spec.analysis is not None else 1.0
        if spec.analysis is None or state.phase not in _ANALYSED:
            return None
        return spec.analysis.window_s

    def advance(
        self, spec: CanarySpec, state: CanaryState, observation: Observation | None, now: float
    ) -> Transition[CanaryState]:
        """Judge the shadow stage; or run a due analysis check (acting on failures), then
        take a due ramp step."""
        if state.phase == Phase.SHADOWING:
            return shadowing_tick(spec, state, observation, now)
        events: list[Event] = []
        analysis = spec.analysis
        if analysis is None or observation is None or state.phase not in _ANALYSED:
            return _walk(spec, state, now)
        if state.mark is None:
            state = replace(state, mark=begin_mark(analysis, observation))
        if check_due(analysis, state.last_check_at, state.since, now):
            checked = _check(spec, analysis, state, observation, now)
            state, events = checked.state, list(checked.events)
        walked = _walk(spec, state, now)
        return Transition(walked.state, (*events, *walked.events))

    def status(self, spec: CanarySpec, state: CanaryState, now: float) -> dict[str, Any]:
        """Phase, weights, step, since, analysis, and a hint once promoted (docs/http.md)."""
        weight = current_weight(spec, state)
        paused = state.phase == Phase.PAUSED and state.paused_at is not None
        out: dict[str, Any] = {
            "phase": state.phase,
            "weights": {"stable": _percent(100.0 - weight), "candidate": _percent(weight)},
            "since": format_instant(state.paused_at if paused else state.since),
        }
        if spec.steps is not None:
            out["step"] = state.step
            out["steps"] = len(spec.steps)
        if state.phase == Phase.PAUSED:
            out["paused_from"] = state.paused_from
        if spec.analysis is not None:
            out["analysis"] = render_analysis(state.last_verdict, state.consecutive_failures)
        if state.phase == Phase.PROMOTED:
            out["message"] = f"all traffic on {spec.candidate}: make it the new stable in the file"
        elif state.phase == Phase.WAITING:
            out["message"] = "waiting for promote"
        elif state.phase == Phase.SHADOWING and spec.shadow_first is not None:
            out["message"] = "shadowing: stable answers every client, the candidate gets copies"
            out["shadow_first"] = shadow_status(spec.shadow_first, state.last_verdict)
        return out

    def dump_state(self, state: CanaryState) -> dict[str, Any]:
        """JSON-able state."""
        data = dump_dataclass(state)
        data["last_verdict"] = verdict_to_dict(state.last_verdict)
        data["mark"] = mark_to_dict(state.mark)
        return data

    def load_state(self, data: Mapping[str, Any]) -> CanaryState:
        """Rebuild the state; ValueError on anything unusable."""
        try:
            phase = _phase(data["phase"])
            paused = data.get("paused_from")
            paused_from = None if paused is None else _phase(paused)
            step = int(data.get("step", 0))
            if step < 0:
                raise ValueError(f"negative step {step}")
            return CanaryState(
                phase=phase,
                since=float(data["since"]),
                step=step,
                paused_from=paused_from,
                paused_at=_opt_float(data.get("paused_at")),
                last_check_at=_opt_float(data.get("last_check_at")),
                last_verdict=verdict_from_dict(data.get("last_verdict")),
                consecutive_failures=int(data.get("consecutive_failures", 0)),
                mark=mark_from_dict(data.get("mark")),
                shadow_mark=counts_from_dict(data.get("shadow_mark")),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"bad canary state: {exc!r}") from exc


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
