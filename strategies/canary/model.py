"""Canary's data: the YAML spec (``CanarySpec``) and the runtime state (``CanaryState``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from strategies.analysis import (
    AnalysisSpec,
    Mark,
    Verdict,
)
from strategies.base import Phase, StrategySpec
from strategies.observation import ShadowCounts
from strategies.shadow.strategy import CompareSpec
from strategies.units import ByteSize, Hold

__all__ = ["CanarySpec", "CanaryState", "ShadowFirstSpec", "StepSpec", "StickySpec"]

Percent = Annotated[float, Field(ge=0, le=100)]


class StepSpec(BaseModel):
    """One ramp step: a candidate weight held for a duration or until ``promote``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: Percent
    hold: Hold


class StickySpec(BaseModel):
    """Where the sticky key comes from: a header, a cookie or a JSON body field (exactly one).

    ``body_field`` is a top-level field or a dotted path (``metadata.user_id``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    header: str | None = None
    cookie: str | None = None
    body_field: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> StickySpec:
        given = [name for name in ("header", "cookie", "body_field") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of header, cookie or body_field")
        return self


class ShadowFirstSpec(BaseModel):
    """``shadow_first``: mirrored copies to the candidate, compared, before any real traffic.

    Copies are sent and compared as a ``shadow`` route does (``compare`` is the
    same section). Once ``min_compared`` answers are compared: agreement at or
    above ``min_agreement`` (and label flips at or below ``max_label_flip_rate``)
    starts the ramp; below it, ``on_failure`` applies.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    percent: Annotated[float, Field(gt=0, le=100)] = 100.0
    min_compared: Annotated[int, Field(ge=1)] = 200
    min_agreement: Annotated[float, Field(ge=0, le=1)] = 0.98
    max_label_flip_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    compare: CompareSpec = CompareSpec()
    max_body: ByteSize = 1024 * 1024
    max_in_flight: Annotated[int, Field(ge=1)] = 64


class CanarySpec(StrategySpec):
    """``strategy: {type: canary, ...}``: a fixed ``weight`` or a ramp of ``steps``."""

    type: Literal["canary"] = "canary"
    stable: str
    candidate: str
    weight: Percent | None = None
    steps: Annotated[tuple[StepSpec, ...], Field(min_length=1)] | None = None
    sticky: StickySpec | None = None
    force_header: str | None = None
    fallback_to_stable: bool = False
    analysis: AnalysisSpec | None = None
    on_failure: Literal["rollback", "pause"] = "rollback"
    shadow_first: ShadowFirstSpec | None = None

    def reads_body(self) -> bool:
        """A sticky ``body_field`` keys users on the request's JSON body."""
        return self.sticky is not None and self.sticky.body_field is not None

    @model_validator(mode="after")
    def _weight_or_steps(self) -> CanarySpec:
        if self.weight is not None and self.steps is not None:
            raise ValueError("give either weight or steps, not both")
        if self.stable == self.candidate:
            raise ValueError("stable and candidate must be different backends")
        return self


@dataclass(frozen=True, slots=True)
class CanaryState:
    """Where a canary is. The live weight is derived (``current_weight``), never stored.

    ``since`` is when the current step (or phase) started; while paused it keeps
    the step's start and ``paused_at`` says when the pause began.
    """

    phase: Phase
    since: float
    step: int = 0
    paused_from: Phase | None = None
    paused_at: float | None = None
    last_check_at: float | None = None
    last_verdict: Verdict | None = None
    consecutive_failures: int = 0
    mark: Mark | None = None  # the sequential judge's evidence starts here
    shadow_mark: ShadowCounts | None = None  # the shadow-first stage's comparisons start here
