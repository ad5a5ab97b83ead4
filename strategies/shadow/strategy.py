"""Shadow: the primary answers; copies go to shadow models and are compared."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from strategies.base import (
    ActionRejectedError,
    Command,
    Decision,
    Event,
    MirrorPlan,
    Phase,
    Picker,
    RequestView,
    StrategySpec,
    Transition,
)
from strategies.compare import Comparator
from strategies.observation import Observation
from strategies.units import ByteSize

__all__ = ["CompareSpec", "ShadowSpec", "ShadowState", "ShadowStrategy", "mirroring_picker"]


class CompareSpec(BaseModel):
    """How shadow answers are compared with the primary's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["auto", "v2", "v1", "json", "openai", "none"] = "auto"
    abs_tolerance: Annotated[float, Field(ge=0)] = 1e-6
    rel_tolerance: Annotated[float, Field(ge=0)] = 1e-3
    ignore: tuple[str, ...] = ("id", "model_version", "parameters")
    # openai: answers whose texts are at least this similar (normalised edit distance) match.
    min_text_similarity: Annotated[float, Field(ge=0, le=1)] = 1.0


class ShadowSpec(StrategySpec):
    """``strategy: {type: shadow, ...}``."""

    type: Literal["shadow"] = "shadow"
    primary: str
    shadows: Annotated[tuple[str, ...], Field(min_length=1)]
    percent: Annotated[float, Field(ge=0, le=100)] = 100.0
    max_body: ByteSize = 1024 * 1024
    max_in_flight: Annotated[int, Field(ge=1)] = 64
    compare: CompareSpec = CompareSpec()
    mismatch_log: str | None = None

    def with_paths(self, resolve: Callable[[str], str]) -> Self:
        """The spec with its mismatch log's path resolved."""
        if self.mismatch_log is None:
            return self
        return self.model_copy(update={"mismatch_log": resolve(self.mismatch_log)})

    @model_validator(mode="after")
    def _distinct(self) -> ShadowSpec:
        if self.primary in self.shadows:
            raise ValueError("the primary cannot also be a shadow")
        if len(set(self.shadows)) != len(self.shadows):
            raise ValueError("shadows must be distinct")
        return self


_MIRRORING = Phase.MIRRORING
_ROLLED_BACK = Phase.ROLLED_BACK
_PHASES = frozenset((_MIRRORING, _ROLLED_BACK))


@dataclass(frozen=True, slots=True)
class ShadowState:
    """Whether the route mirrors (``mirroring``) or stopped (``rolled_back``), and since when."""

    phase: Phase = _MIRRORING
    since: float = 0.0


def mirroring_picker(
    plain: Decision,
    shadows: tuple[str, ...],
    percent: float,
    compare: CompareSpec,
    *,
    max_body: int,
    max_in_flight: int,
    mismatch_log: str | None = None,
) -> Picker:
    """Always ``plain``, with ``percent`` of requests also mirrored to ``shadows`` and compared.

    Shared by shadow routes and a canary's ``shadow_first`` stage: one way to mirror.
    """
    if percent <= 0:

        def pick_plain(request: RequestView, rand: float) -> Decision:
            return plain

        return pick_plain
    plan = MirrorPlan(
        backends=shadows,
        variant="shadow",
        max_body=max_body,
        max_in_flight=max_in_flight,
        compare=Comparator(compare),
        mismatch_log=mismatch_log,
    )
    mirrored = dataclasses.replace(plain, reason=f"{plain.reason}, mirrored", mirror=plan)

    def pick(request: RequestView, rand: float) -> Decision:
        return mirrored if rand * 100.0 < percent else plain

    return pick


class ShadowStrategy:
    """The primary answers every request; a share is mirrored to the shadows and compared.

    ``rollback`` stops mirroring and ``resume`` restarts it; ``promote`` and
    ``pause`` answer 409 (promotion is an edit of the file).
    """

    name: ClassVar[str] = "shadow"
    spec_type: ClassVar[type[StrategySpec]] = ShadowSpec
    backend_fields: ClassVar[tuple[str, ...]] = ("primary", "shadows")
    variants: ClassVar[tuple[str, ...]] = ("primary", "shadow")

    def backend_refs(self, spec: ShadowSpec) -> Mapping[str, str]:
        """``primary`` and ``shadows[i]``."""
        refs = {"primary": spec.primary}
        refs.update({f"shadows[{i}]": name for i, name in enumerate(spec.shadows)})
        return refs

    def backends(self, spec: ShadowSpec, state: ShadowState) -> Mapping[str, str]:
        """``primary``, ``shadow`` (the first shadow) and ``shadow[i]`` for any further ones."""
        roles = {"primary": spec.primary, "shadow": spec.shadows[0]}
        roles.update({f"shadow[{i}]": name for i, name in enumerate(spec.shadows) if i})
        return roles

    def identity(self, spec: ShadowSpec, backend_urls: Mapping[str, str]) -> str:
        """Changes when the primary, or any shadow's name or URL, changes."""
        shadows = ",".join(f"{name}={backend_urls.get(name, '')}" for name in spec.shadows)
        return f"shadow:primary={spec.primary};shadows={shadows}"

    def initial_state(self, spec: ShadowSpec, now: float) -> ShadowState:
        """A new route mirrors."""
        return ShadowState(phase=_MIRRORING, since=now)

    def reconcile(
        self, spec: ShadowSpec, state: ShadowState, now: float
    ) -> Transition[ShadowState]:
        """Nothing to fit: a stopped route stays stopped until ``resume``."""
        return Transition(state)

    def picker(self, spec: ShadowSpec, state: ShadowState) -> Picker:
        """Pre-built decisions: mirrored with probability ``percent`` while mirroring."""
        plain = Decision(variant="primary", backend=spec.primary, reason="shadow: primary")
        percent = spec.percent if state.phase == _MIRRORING else 0.0
        return mirroring_picker(
            plain, spec.shadows, percent, spec.compare, max_body=spec.max_body,
            max_in_flight=spec.max_in_flight, mismatch_log=spec.mismatch_log,
        )

    def apply(
        self, spec: ShadowSpec, state: ShadowState, command: Command, now: float, reason: str
    ) -> Transition[ShadowState]:
        """``rollback`` stops mirroring, ``resume`` restarts it (both idempotent)."""
        if command is Command.ROLLBACK:
            if state.phase == _ROLLED_BACK:
                return Transition(state)
            event = Event("rollback", reason or "mirroring stopped", {"trigger": "manual"})
            return Transition(ShadowState(phase=_ROLLED_BACK, since=now), (event,))
        if command is Command.RESUME:
            if state.phase == _MIRRORING:
                return Transition(state)
            event = Event("resume", reason or "mirroring restarted")
            return Transition(ShadowState(phase=_MIRRORING, since=now), (event,))
        if command is Command.PROMOTE:
            raise ActionRejectedError(
                "shadow has nothing to promote: make the shadow the primary in the file"
            )
        raise ActionRejectedError(
            f"{command.value} does not apply to a shadow route: "
            "use rollback to stop mirroring and resume to restart it"
        )

    def active(self, spec: ShadowSpec, state: ShadowState) -> bool:
        """While it mirrors: shown among the active rollouts (its tick changes nothing)."""
        return state.phase == _MIRRORING and spec.percent > 0

    def analysis_window(self, spec: ShadowSpec, state: ShadowState) -> float | None:
        """No analysis: comparisons are counted, not judged."""
        return None

    def advance(
        self, spec: ShadowSpec, state: ShadowState, observation: Observation | None, now: float
    ) -> Transition[ShadowState]:
        """Nothing moves on its own."""
        return Transition(state)

    def status(self, spec: ShadowSpec, state: ShadowState, now: float) -> dict[str, Any]:
        """Phase and weights; the router adds backends and the shadow counters."""
        return {"phase": state.phase, "weights": {"primary": 100}}

    def dump_state(self, state: ShadowState) -> dict[str, Any]:
        """JSON-able state."""
        return {"phase": state.phase, "since": state.since}

    def load_state(self, data: Mapping[str, Any]) -> ShadowState:
        """Rebuild the state; ValueError on an unknown phase or a missing field."""
        try:
            phase, since = str(data["phase"]), float(data["since"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad shadow state: {exc}") from exc
        if phase not in _PHASES:
            raise ValueError(f"bad shadow state: unknown phase {phase!r}")
        return ShadowState(phase=Phase(phase), since=since)
