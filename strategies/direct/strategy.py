"""Direct: every request to the one backend."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from strategies.base import (
    ActionRejectedError,
    Command,
    Decision,
    Phase,
    Picker,
    RequestView,
    StrategySpec,
    Transition,
)
from strategies.observation import Observation

__all__ = ["DirectSpec", "DirectState", "DirectStrategy"]


class DirectSpec(StrategySpec):
    """``strategy: {type: direct, backend: NAME}``."""

    type: Literal["direct"] = "direct"
    backend: str


@dataclass(frozen=True, slots=True)
class DirectState:
    """A direct route has no rollout; only when it appeared."""

    since: float


class DirectStrategy:
    """Always the one backend; every action answers 409."""

    name: ClassVar[str] = "direct"
    spec_type: ClassVar[type[StrategySpec]] = DirectSpec
    backend_fields: ClassVar[tuple[str, ...]] = ("backend",)
    variants: ClassVar[tuple[str, ...]] = ("default",)

    def backend_refs(self, spec: DirectSpec) -> Mapping[str, str]:
        """The one backend field."""
        return {"backend": spec.backend}

    def backends(self, spec: DirectSpec, state: DirectState) -> Mapping[str, str]:
        """The one backend, in the ``default`` role."""
        return {"default": spec.backend}

    def identity(self, spec: DirectSpec, backend_urls: Mapping[str, str]) -> str:
        """Nothing to reset: the identity never changes."""
        return "direct"

    def initial_state(self, spec: DirectSpec, now: float) -> DirectState:
        """A fresh route."""
        return DirectState(since=now)

    def reconcile(
        self, spec: DirectSpec, state: DirectState, now: float
    ) -> Transition[DirectState]:
        """Nothing to fit."""
        return Transition(state)

    def picker(self, spec: DirectSpec, state: DirectState) -> Picker:
        """One pre-built decision for every request."""
        decision = Decision(variant="default", backend=spec.backend, reason="direct")

        def pick(request: RequestView, rand: float) -> Decision:
            return decision

        return pick

    def apply(
        self, spec: DirectSpec, state: DirectState, command: Command, now: float, reason: str
    ) -> Transition[DirectState]:
        """No action applies to a direct route."""
        raise ActionRejectedError(f"{command.value} does not apply to a direct route")

    def analysis_window(self, spec: DirectSpec, state: DirectState) -> float | None:
        """No analysis."""
        return None

    def active(self, spec: DirectSpec, state: DirectState) -> bool:
        """Never: a direct route has no rollout."""
        return False

    def advance(
        self, spec: DirectSpec, state: DirectState, observation: Observation | None, now: float
    ) -> Transition[DirectState]:
        """Nothing moves."""
        return Transition(state)

    def status(self, spec: DirectSpec, state: DirectState, now: float) -> dict[str, Any]:
        """Always steady, all weight on the one backend."""
        return {"phase": Phase.STEADY.value, "weights": {"default": 100}}

    def dump_state(self, state: DirectState) -> dict[str, Any]:
        """JSON-able state."""
        return {"since": state.since}

    def load_state(self, data: Mapping[str, Any]) -> DirectState:
        """Rebuild the state."""
        try:
            return DirectState(since=float(data["since"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad direct state: {exc}") from exc
