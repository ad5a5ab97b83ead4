"""Blue-green: all traffic to the active colour; a checked, atomic, undoable switch.

The spec and state live in ``blue_green_model`` and the switch state machine
in ``blue_green_transitions``; this module is the ``BlueGreenStrategy``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar, TypeVar

from strategies.analysis import (
    begin_mark,
    check_due,
    format_instant,
    mark_from_dict,
    mark_to_dict,
    render_analysis,
    verdict_from_dict,
    verdict_to_dict,
)
from strategies.base import (
    ActionRejectedError,
    CheckRequest,
    Command,
    Decision,
    Phase,
    Picker,
    RequestView,
    StrategySpec,
    Transition,
    dump_dataclass,
)
from strategies.blue_green.model import BlueGreenSpec, BlueGreenState, SwitchCheckSpec
from strategies.blue_green.transitions import (
    ACTIONS,
    apply_switch,
    assess_switch,
    backend_of,
    complete_switch,
    other,
    pending_switch_target,
)
from strategies.observation import Observation

__all__ = [
    "ACTIONS",
    "BlueGreenSpec",
    "BlueGreenState",
    "BlueGreenStrategy",
    "SwitchCheckSpec",
    "backend_of",
    "complete_switch",
    "other",
    "pending_switch_target",
]

_COLOURS = ("blue", "green")


class BlueGreenStrategy:
    """All traffic on the active colour; checked switches, instant rollback, optional analysis."""

    name: ClassVar[str] = "blue_green"
    spec_type: ClassVar[type[StrategySpec]] = BlueGreenSpec
    backend_fields: ClassVar[tuple[str, ...]] = ("blue", "green")
    variants: ClassVar[tuple[str, ...]] = _COLOURS

    def backend_refs(self, spec: BlueGreenSpec) -> Mapping[str, str]:
        """The two colour fields."""
        return {"blue": spec.blue, "green": spec.green}

    def backends(self, spec: BlueGreenSpec, state: BlueGreenState) -> Mapping[str, str]:
        """The backend behind each colour."""
        return {"blue": spec.blue, "green": spec.green}

    def identity(self, spec: BlueGreenSpec, backend_urls: Mapping[str, str]) -> str:
        """Both colours' names and URLs."""
        blue, green = spec.blue, spec.green
        return f"{blue}={backend_urls.get(blue, '')}|{green}={backend_urls.get(green, '')}"

    def initial_state(self, spec: BlueGreenSpec, now: float) -> BlueGreenState:
        """A new route serves the file's ``active`` colour at once (nothing to switch from)."""
        return BlueGreenState(active=spec.active, since=now, spec_active=spec.active)

    def reconcile(
        self, spec: BlueGreenSpec, state: BlueGreenState, now: float
    ) -> Transition[BlueGreenState]:
        """An edit of ``active`` to a new value: a (checked) switch, and the end of a rollback."""
        if state.pending_switch is not None and spec.switch_check is None:
            return complete_switch(spec, state, True, "switch_check removed", now)
        if spec.active == state.spec_active:
            return Transition(state)
        base = replace(
            state,
            spec_active=spec.active,
            phase=Phase.STEADY,
            pending_switch=None,
            refused_reason=None,
        )
        if spec.active == state.active:
            return Transition(base)
        return apply_switch(spec, base, spec.active, now, "active edited in the file", "config")

    def picker(self, spec: BlueGreenSpec, state: BlueGreenState) -> Picker:
        """All to the active colour; requests carrying ``preview_header`` to the other one."""
        active = Decision(state.active, backend_of(spec, state.active), reason="active")
        inactive = other(state.active)
        preview = Decision(inactive, backend_of(spec, inactive), reason="preview")
        header = spec.preview_header.lower() if spec.preview_header else None
        if header is None:
            return lambda request, rand: active

        def pick(request: RequestView, rand: float) -> Decision:
            return active if request.headers.get(header) is None else preview

        return pick

    def apply(
        self,
        spec: BlueGreenSpec,
        state: BlueGreenState,
        command: Command,
        now: float,
        reason: str,
    ) -> Transition[BlueGreenState]:
        """Look the command up in ``ACTIONS``; rejections raise ``ActionRejectedError``."""
        entry = ACTIONS[Phase(state.phase)][command]
        if isinstance(entry, str):
            raise ActionRejectedError(entry)
        return entry(spec, state, now, reason)

    def active(self, spec: BlueGreenSpec, state: BlueGreenState) -> bool:
        """While a switch waits for its check, or a switch is being watched."""
        return pending_switch_target(state) is not None or (
            self.analysis_window(spec, state) is not None
        )

    def analysis_window(self, spec: BlueGreenSpec, state: BlueGreenState) -> float | None:
        """The analysis window while a forward switch is being watched, else ``None``."""
        if spec.analysis is None or state.watch_until is None:
            return None
        return spec.analysis.window_s

    def advance(
        self,
        spec: BlueGreenSpec,
        state: BlueGreenState,
        observation: Observation | None,
        now: float,
    ) -> Transition[BlueGreenState]:
        """Post-switch analysis: a due check, a switch back on failures, the watch's end."""
        analysis = spec.analysis
        if analysis is None or state.watch_until is None:
            return Transition(state)
        if now > state.watch_until:
            return Transition(replace(state, watch_until=None))
        started = state.last_switch_at if state.last_switch_at is not None else state.since
        if observation is None:
            return Transition(state)
        if state.mark is None and analysis.judge == "sequential":
            state = replace(state, mark=begin_mark(analysis, observation))
        if not check_due(analysis, state.last_check_at, started, now):
            return Transition(state)
        return assess_switch(spec, analysis, state, observation, now)

    def status(self, spec: BlueGreenSpec, state: BlueGreenState, now: float) -> dict[str, Any]:
        """Phase, active colour, weights, last switch, pending or refused switch (docs/http.md)."""
        out: dict[str, Any] = {
            "phase": state.phase,
            "active": state.active,
            "previous": state.previous,
            "weights": {c: 100 if c == state.active else 0 for c in _COLOURS},
            "since": format_instant(state.since),
            "last_switch": format_instant(state.last_switch_at),
            "pending_switch": state.pending_switch,
            "refused": state.refused_reason,
        }
        if spec.analysis is not None:
            out["analysis"] = render_analysis(state.last_verdict, state.consecutive_failures)
        if state.phase == Phase.ROLLED_BACK:
            out["message"] = f"rolled back to {state.active}: edit active in the file to switch"
        return out

    def pending_checks(
        self, spec: BlueGreenSpec, state: BlueGreenState
    ) -> tuple[CheckRequest, ...]:
        """The ``switch_check`` of a pending switch, for the router to run."""
        target = pending_switch_target(state)
        check = spec.switch_check
        if target is None or check is None:
            return ()
        return (
            CheckRequest(
                key=f"switch:{target}",
                backend=backend_of(spec, target),
                path=check.path,
                expect_status=check.expect_status,
                timeout_s=check.timeout,
            ),
        )

    def check_result(
        self,
        spec: BlueGreenSpec,
        state: BlueGreenState,
        key: str,
        ok: bool,
        reason: str,
        now: float,
    ) -> Transition[BlueGreenState]:
        """Complete or refuse the pending switch the check ``key`` was for."""
        target = pending_switch_target(state)
        if target is None or key != f"switch:{target}":
            return Transition(state)
        return complete_switch(spec, state, ok, reason, now)

    def dump_state(self, state: BlueGreenState) -> dict[str, Any]:
        """JSON-able state."""
        data = dump_dataclass(state)
        data["last_verdict"] = verdict_to_dict(state.last_verdict)
        data["mark"] = mark_to_dict(state.mark)
        return data

    def load_state(self, data: Mapping[str, Any]) -> BlueGreenState:
        """Rebuild the state; ValueError on anything unusable."""
        try:
            state = BlueGreenState(
                active=str(data["active"]),
                since=float(data["since"]),
                spec_active=str(data["spec_active"]),
                phase=Phase(str(data.get("phase", "steady"))),
                previous=_opt(str, data.get("previous")),
                last_switch_at=_opt(float, data.get("last_switch_at")),
                watch_until=_opt(float, data.get("watch_until")),
                last_check_at=_opt(float, data.get("last_check_at")),
                last_verdict=verdict_from_dict(data.get("last_verdict")),
                consecutive_failures=int(data.get("consecutive_failures", 0)),
                mark=mark_from_dict(data.get("mark")),
                pending_switch=_opt(str, data.get("pending_switch")),
                refused_reason=_opt(str, data.get("refused_reason")),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"bad blue-green state: {exc!r}") from exc
        colours = (
            state.active,
            state.spec_active,
            state.previous or "blue",
            state.pending_switch or "blue",
        )
        if any(c not in _COLOURS for c in colours):
            raise ValueError(f"bad blue-green state: unknown colour in {colours}")
        if state.phase not in (Phase.STEADY, Phase.ROLLED_BACK):
            raise ValueError(f"bad blue-green state: unknown phase {state.phase!r}")
        return state


T = TypeVar("T")


def _opt(kind: Callable[[Any], T], value: Any) -> T | None:
    return None if value is None else kind(value)
