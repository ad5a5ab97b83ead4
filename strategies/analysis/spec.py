"""The ``analysis`` section of a canary or blue-green route, as YAML gives it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from strategies.units import Duration

__all__ = ["AnalysisSpec", "MetricCheckSpec"]


class MetricCheckSpec(BaseModel):
    """One Prometheus check: a query giving one number, and its bound(s)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    query: Annotated[str, Field(min_length=1)]
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> MetricCheckSpec:
        if self.max is None and self.min is None:
            raise ValueError(f"metric check {self.name!r} needs max or min")
        return self


class AnalysisSpec(BaseModel):
    """The ``analysis`` section of a canary or blue-green route."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: Annotated[Duration, Field(gt=0)] = 30.0
    window: Annotated[Duration, Field(gt=0)] | None = None
    judge: Literal["threshold", "sequential"] = "threshold"
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    min_requests: Annotated[int, Field(ge=0)] = 50
    max_error_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    max_error_rate_increase: Annotated[float, Field(ge=0, le=1)] | None = None
    max_p99_latency: Duration | None = None
    max_latency_ratio: Annotated[float, Field(gt=0)] | None = None
    # Time to first byte (first token of a streamed LLM answer): candidate p99, and its ratio
    # to stable's p99. Both judges read them from the window.
    max_ttfb_p99: Duration | None = None
    max_ttfb_ratio: Annotated[float, Field(gt=0)] | None = None
    max_null_output_rate_increase: Annotated[float, Field(ge=0, le=1)] | None = None
    max_prediction_drift: Annotated[float, Field(gt=0)] | None = None
    # Candidate accuracy / baseline accuracy over the route's feedback window.
    min_accuracy_ratio: Annotated[float, Field(gt=0)] | None = None
    min_feedback: Annotated[int, Field(ge=1)] = 100
    metrics: tuple[MetricCheckSpec, ...] = ()
    failures_to_act: Annotated[int, Field(ge=1)] = 2

    @model_validator(mode="after")
    def _unique_metric_names(self) -> AnalysisSpec:
        names = [m.name for m in self.metrics]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"metric check names must be unique: {', '.join(dupes)}")
        return self

    @property
    def window_s(self) -> float:
        """The trailing window the checks read; defaults to the interval."""
        return self.window if self.window is not None else self.interval
