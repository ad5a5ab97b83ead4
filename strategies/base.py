"""The strategy interface: pure decisions over immutable data.

A strategy is three pure functions over a route's ``Spec`` (what the YAML asks
for) and its ``State`` (where the rollout is, kept in the state store):

- ``picker(spec, state)`` compiles a ``Picker``: ``(RequestView, rand) -> Decision``,
  called once per request. Compiling once per (spec, state) keeps the hot path
  to a lookup and a comparison.
- ``apply(spec, state, command, now, reason)`` answers an operator's action
  (rollback, promote, pause, resume) with a ``Transition``, or raises
  ``ActionRejectedError`` (the admin API's 409).
- ``advance(spec, state, observation, now)`` is the controller's tick: given the
  live numbers of the analysis window, it returns the next ``Transition``.

Nothing here performs I/O, reads the clock or draws random numbers: time and
randomness come in as arguments. This package imports nothing from ``router``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from pydantic import BaseModel, ConfigDict

from strategies.observation import Observation

__all__ = [
    "ActionRejectedError",
    "ActiveWhen",
    "CheckRequest",
    "ChecksBeforeTransition",
    "Command",
    "Decision",
    "Event",
    "MirrorPlan",
    "Phase",
    "Picker",
    "RequestView",
    "Strategy",
    "StrategySpec",
    "Transition",
    "dump_dataclass",
]


class Phase(enum.StrEnum):
    """Where a route's rollout is. Strategies use the subset that applies to them."""

    STEADY = "steady"
    PROGRESSING = "progressing"
    WAITING = "waiting"
    PAUSED = "paused"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    MIRRORING = "mirroring"
    SHADOWING = "shadowing"


class Command(enum.StrEnum):
    """An operator's action on a route (admin API, CLI, dashboard)."""

    ROLLBACK = "rollback"
    PROMOTE = "promote"
    PAUSE = "pause"
    RESUME = "resume"


class StrategySpec(BaseModel):
    """Base of every strategy's YAML section: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str

    def reads_body(self) -> bool:
        """Whether the picker needs the request's JSON body (``RequestView.body``)."""
        return False

    def with_paths(self, resolve: Callable[[str], str]) -> Self:
        """This spec with every file path it holds passed through ``resolve`` (made absolute)."""
        return self


@dataclass(frozen=True, slots=True)
class RequestView:
    """What a strategy may look at in a request.

    ``headers`` maps lower-case names to the first value sent; ``route`` is the
    name of the route that matched (a salt for sticky hashing). ``body`` holds
    the fields of a JSON object body, only for a route whose spec ``reads_body``
    and a body small enough to read before routing (otherwise ``None``).
    """

    method: str
    path: str
    headers: Mapping[str, str]
    route: str = ""
    body: Mapping[str, Any] | None = None

    def body_field(self, path: str) -> str | None:
        """The string or number at dotted ``path`` (``metadata.user_id``) of the body, if any."""
        value: Any = self.body
        for part in path.split("."):
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return None

    def cookie(self, name: str) -> str | None:
        """Return the value of cookie ``name`` from the Cookie header, if sent."""
        raw = self.headers.get("cookie")
        if not raw:
            return None
        for part in raw.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                return value.strip().strip('"')
        return None


@dataclass(frozen=True, slots=True)
class MirrorPlan:
    """Copies of a request to send to shadow backends after the primary.

    Built once per (spec, state) by the strategy; the router's dispatcher
    carries it out. ``compare`` is the strategy's comparison settings, opaque
    to the router core and handed back to ``strategies.compare``.
    """

    backends: tuple[str, ...]
    variant: str = "shadow"
    max_body: int = 1024 * 1024
    max_in_flight: int = 64
    compare: Any = None
    mismatch_log: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """One request's routing outcome."""

    variant: str
    backend: str
    reason: str = ""
    # Retry once here when ``backend`` could not be reached before anything was sent.
    fallback_backend: str | None = None
    fallback_variant: str | None = None
    mirror: MirrorPlan | None = None


Picker = Callable[[RequestView, float], Decision]
"""Chooses a request's backend; the float is a uniform random draw in [0, 1)."""


@dataclass(frozen=True, slots=True)
class Event:
    """A decision worth logging and showing (docs/observability.md): ``rollout_step``...

    ``fields`` carries the numbers behind it (weights, verdicts, trigger).
    A ``rollback`` event carries ``trigger`` (manual, analysis, health).
    """

    kind: str
    reason: str
    fields: Mapping[str, Any] = field(default_factory=dict)


StateT = TypeVar("StateT")
SpecT = TypeVar("SpecT", bound=StrategySpec)
SpecT_contra = TypeVar("SpecT_contra", bound=StrategySpec, contravariant=True)
StateT_contra = TypeVar("StateT_contra", contravariant=True)


@dataclass(frozen=True, slots=True)
class Transition(Generic[StateT]):
    """A new state and the events that explain it."""

    state: StateT
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """An HTTP check the router must run before a transition completes (a ``switch_check``).

    The router GETs ``path`` on ``backend`` and hands the outcome back through
    ``ChecksBeforeTransition.check_result``.
    """

    key: str
    backend: str
    path: str
    expect_status: int = 200
    timeout_s: float = 2.0


class ActionRejectedError(Exception):
    """An action that does not apply to this strategy or phase (HTTP 409)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Strategy(Protocol[SpecT_contra, StateT]):
    """What every strategy provides; see the module docstring."""

    name: ClassVar[str]
    spec_type: ClassVar[type[StrategySpec]]
    variants: ClassVar[tuple[str, ...]]
    # Optional: ``backend_fields``, the spec fields that name backends (a name or a list of
    # names), which the loader checks even in a section that failed its own validation.

    def backend_refs(self, spec: SpecT_contra) -> Mapping[str, str]:
        """Map each field naming a backend (``candidate``, ``shadows[0]``) to that name."""
        ...

    def backends(self, spec: SpecT_contra, state: StateT) -> Mapping[str, str]:
        """Map each role shown in the status (``stable``, ``candidate``) to its backend."""
        ...

    def identity(self, spec: SpecT_contra, backend_urls: Mapping[str, str]) -> str:
        """A string that changes exactly when the route's runtime state must reset."""
        ...

    def initial_state(self, spec: SpecT_contra, now: float) -> StateT:
        """The state of a route that has just appeared (or whose identity changed)."""
        ...

    def reconcile(self, spec: SpecT_contra, state: StateT, now: float) -> Transition[StateT]:
        """Fit a kept state to an edited spec of the same identity (a reload)."""
        ...

    def picker(self, spec: SpecT_contra, state: StateT) -> Picker:
        """Compile the per-request decision for this (spec, state)."""
        ...

    def apply(
        self, spec: SpecT_contra, state: StateT, command: Command, now: float, reason: str
    ) -> Transition[StateT]:
        """Carry out an operator's command, or raise ``ActionRejectedError``."""
        ...

    def analysis_window(self, spec: SpecT_contra, state: StateT) -> float | None:
        """Seconds of live numbers ``advance`` needs now, or ``None`` for none."""
        ...

    def advance(
        self, spec: SpecT_contra, state: StateT, observation: Observation | None, now: float
    ) -> Transition[StateT]:
        """The controller's tick: next state from live numbers and the time."""
        ...

    def status(self, spec: SpecT_contra, state: StateT, now: float) -> dict[str, Any]:
        """The route's part of ``/admin/status``: phase, weights and strategy detail."""
        ...

    def dump_state(self, state: StateT) -> dict[str, Any]:
        """The state as JSON-able data for the state store."""
        ...

    def load_state(self, data: Mapping[str, Any]) -> StateT:
        """Rebuild a state from ``dump_state``'s output; raise ValueError if unusable."""
        ...


class ActiveWhen(Protocol[SpecT_contra, StateT_contra]):
    """Optional extra: when a route's rollout is under way (a strategy without it always is).

    The controller ticks only active routes, and the dashboard lists them first,
    so thousands of settled routes cost nothing per tick.
    """

    def active(self, spec: SpecT_contra, state: StateT_contra) -> bool:
        """False only when ``advance`` cannot change the state at any later time.

        That is: no analysis window, no timed step, no pending check.
        """
        ...


class ChecksBeforeTransition(Protocol[SpecT_contra, StateT]):
    """Optional extra of a strategy whose transitions wait on a check (blue-green)."""

    def pending_checks(self, spec: SpecT_contra, state: StateT) -> tuple[CheckRequest, ...]:
        """Checks the router should run now for this state."""
        ...

    def check_result(
        self, spec: SpecT_contra, state: StateT, key: str, ok: bool, reason: str, now: float
    ) -> Transition[StateT]:
        """The outcome of the check ``key``: the transition it completes or refuses."""
        ...


def dump_dataclass(obj: Any) -> dict[str, Any]:
    """JSON-able dict of a (possibly nested) state dataclass."""
    return dataclasses.asdict(obj)
