"""Blue-green's data: the YAML spec (``BlueGreenSpec``) and the runtime state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from strategies.analysis import (
    AnalysisSpec,
    Mark,
    Verdict,
)
from strategies.base import (
    Phase,
    StrategySpec,
)
from strategies.units import Duration

__all__ = ["BlueGreenSpec", "BlueGreenState", "Colour", "SwitchCheckSpec"]

Colour = Literal["blue", "green"]


class SwitchCheckSpec(BaseModel):
    """The check a colour must pass before traffic is switched to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = "/health"
    expect_status: Annotated[int, Field(ge=100, le=599)] = 200
    timeout: Annotated[Duration, Field(gt=0)] = 2.0


class BlueGreenSpec(StrategySpec):
    """``strategy: {type: blue_green, ...}``."""

    type: Literal["blue_green"] = "blue_green"
    blue: str
    green: str
    active: Colour = "blue"
    preview_header: str | None = None
    switch_check: SwitchCheckSpec | None = None
    analysis: AnalysisSpec | None = None

    @model_validator(mode="after")
    def _distinct(self) -> BlueGreenSpec:
        if self.blue == self.green:
            raise ValueError("blue and green must be different backends")
        return self


@dataclass(frozen=True, slots=True)
class BlueGreenState:
    """Which colour serves, and why.

    ``spec_active`` is the file's ``active`` when this state was last reconciled,
    so a rollback holds until ``active`` is edited to a new value.
    ``pending_switch`` is a switch waiting for the router's ``switch_check``
    (see ``complete_switch``); ``watch_until`` bounds the post-switch analysis.
    """

    active: str
    since: float
    spec_active: str
    phase: Phase = Phase.STEADY
    previous: str | None = None
    last_switch_at: float | None = None
    watch_until: float | None = None
    last_check_at: float | None = None
    last_verdict: Verdict | None = None
    consecutive_failures: int = 0
    mark: Mark | None = None  # the sequential judge's evidence starts here
    pending_switch: str | None = None
    refused_reason: str | None = None
