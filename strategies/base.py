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

from strategies.feedback import LabelTally

__all__ = [
    "LATENCY_BOUNDS",
    "ActionRejectedError",
    "ActiveWhen",
    "CheckRequest",
    "ChecksBeforeTransition",
    "Command",
    "Decision",
    "Event",
    "MirrorPlan",
    "Observation",
    "Phase",
    "Picker",
    "Quality",
    "RequestView",
    "ShadowCounts",
    "Strategy",
    "StrategySpec",
    "Tally",
    "Transition",
    "VariantStats",
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
class VariantStats:
    """One variant's numbers over the analysis window.

    ``errors`` counts 5xx answers, connect errors and timeouts. Latency
    quantiles are ``None`` when the window holds no request.
    """

    requests: int = 0
    errors: int = 0
    p50_s: float | None = None
    p99_s: float | None = None
    # Time to first body byte (time to first token for streamed LLM answers), over the
    # ``ttfb_count`` answers that had a body.
    ttfb_count: int = 0
    ttfb_p50_s: float | None = None
    ttfb_p99_s: float | None = None

    @property
    def error_rate(self) -> float | None:
        """Errors over requests, or ``None`` with no request."""
        return self.errors / self.requests if self.requests else None


# Latency histogram buckets, 1 ms .. 60 s about 12 % apart (upper bounds; one more
# bucket above the last). Shared by the router's windows and the latency rank test.
LATENCY_BOUNDS: tuple[float, ...] = tuple(0.001 * (1.12**i) for i in range(98))


@dataclass(frozen=True, slots=True)
class Tally:
    """One variant's running totals since counting began (they only grow).

    ``latency`` counts requests per bucket of ``LATENCY_BOUNDS`` (one more
    bucket above the last bound); empty when nothing was counted. Sequential
    tests read the difference of two tallies: the evidence since a mark.
    """

    requests: int = 0
    errors: int = 0
    latency: tuple[int, ...] = ()

    def since(self, mark: Tally) -> Tally | None:
        """The counts added since ``mark``; ``None`` if any went backwards (a restart)."""
        if self.requests < mark.requests or self.errors < mark.errors:
            return None
        latency = self.latency
        if mark.latency:
            if len(self.latency) != len(mark.latency):
                return None
            latency = tuple(a - b for a, b in zip(self.latency, mark.latency, strict=True))
            if any(n < 0 for n in latency):
                return None
        return Tally(self.requests - mark.requests, self.errors - mark.errors, latency)


@dataclass(frozen=True, slots=True)
class Quality:
    """What one variant's answers said over the analysis window (model-quality gates).

    ``answers`` counts the predictions read, null ones included, ``null_outputs``
    the null, empty or NaN predictions among them, ``labels`` the predicted
    classes and ``values`` a bounded sample of numeric predictions (regressors).
    """

    answers: int = 0
    null_outputs: int = 0
    labels: Mapping[str, int] = field(default_factory=dict)
    values: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class ShadowCounts:
    """A route's mirrored comparisons so far (they only grow): compared, matched,
    answers with labels on both sides, and label flips among those."""

    compared: int = 0
    matched: int = 0
    labelled: int = 0
    flips: int = 0

    def since(self, mark: ShadowCounts) -> ShadowCounts | None:
        """The comparisons since ``mark``; ``None`` if the counts went back (a restart)."""
        diff = ShadowCounts(self.compared - mark.compared, self.matched - mark.matched,
                            self.labelled - mark.labelled, self.flips - mark.flips)
        return None if min(diff.compared, diff.matched, diff.labelled, diff.flips) < 0 else diff


@dataclass(frozen=True, slots=True)
class Observation:
    """What the controller saw for a route.

    ``variants``: per-variant stats over the analysis window; ``backend_up``:
    health by backend name; ``totals``: per-variant running tallies (the
    sequential judge's evidence); ``quality``: per-variant answers over the
    window; ``metrics``: the latest readings of the route's Prometheus checks
    by check name (a number, or the reason there is none).
    """

    window_s: float
    variants: Mapping[str, VariantStats] = field(default_factory=dict)
    backend_up: Mapping[str, bool] = field(default_factory=dict)
    totals: Mapping[str, Tally] = field(default_factory=dict)
    quality: Mapping[str, Quality] = field(default_factory=dict)
    metrics: Mapping[str, float | str] = field(default_factory=dict)
    feedback: Mapping[str, LabelTally] = field(default_factory=dict)
    shadow: ShadowCounts | None = None  # the route's mirrored comparisons, when it mirrors


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
