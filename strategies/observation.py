"""What the controller saw for a route: the analysis window's inputs to ``advance``.

Per variant: request and error counts with latency quantiles over the window
(``VariantStats``), running tallies for the sequential judge (``Tally``), what the answers
said (``Quality``), the labels joined (``LabelTally``, strategies/feedback.py); per route:
the mirrored comparisons (``ShadowCounts``) and the Prometheus checks' readings. Plain
immutable data, built by the router's controller and read by the strategies' judges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from strategies.feedback import LabelTally

__all__ = ["LATENCY_BOUNDS", "Observation", "Quality", "ShadowCounts", "Tally", "VariantStats"]


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
