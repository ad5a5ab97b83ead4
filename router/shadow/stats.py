"""Shadow mirroring's bookkeeping: per-route counters, latency samples and their status view.

``ShadowRouteStats`` holds one route's mirror outcomes and its last ``_SAMPLES``
latencies; ``as_dict`` renders them for ``/admin/status``. ``ShadowBookkeeping``
is the part of ``router.shadow.dispatcher.ShadowDispatcher`` that owns those stats: it
counts each copy's outcome (stats and ``router_shadow_requests_total``), logs
failures at most once a second per route, and answers the admin's
``route_stats`` and ``forget``. It does no I/O of its own.
"""

from __future__ import annotations

import math
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter

from router.telemetry.logs import get_logger
from router.telemetry.metrics import Metrics
from strategies.observation import ShadowCounts

__all__ = ["ShadowBookkeeping", "ShadowRouteStats"]

_ERROR_LOG_GAP_S = 1.0
_SAMPLES = 1000


class ShadowRouteStats:
    """One route's mirror counters and its last ``_SAMPLES`` latencies (bounded memory)."""

    __slots__ = (
        "compared", "dropped", "errors", "flips", "in_flight", "labelled", "last_error_log",
        "last_event", "matched", "mirrored", "mismatched", "primary_ms", "shadow_ms",
        "skipped", "skipped_reasons",
    )

    def __init__(self) -> None:
        self.mirrored = self.compared = self.matched = self.mismatched = 0
        self.errors = self.dropped = self.skipped = self.in_flight = 0
        self.flips = self.labelled = 0
        self.skipped_reasons: Tally[str] = Tally()
        self.primary_ms: deque[float] = deque(maxlen=_SAMPLES)
        self.shadow_ms: deque[float] = deque(maxlen=_SAMPLES)
        self.last_event = self.last_error_log = -math.inf

    def count(self, outcome: str, reason: str = "") -> None:
        """Count one copy's outcome (match, mismatch, error, dropped, skipped)."""
        if outcome == "match":
            self.compared += 1
            self.matched += 1
        elif outcome == "mismatch":
            self.compared += 1
            self.mismatched += 1
        elif outcome == "error":
            self.errors += 1
        elif outcome == "dropped":
            self.dropped += 1
        else:
            self.skipped += 1
            self.skipped_reasons[reason or "other"] += 1

    def labels(self, flip: bool | None) -> None:
        """Note whether a compared answer flipped a predicted label (None: no labels in it)."""
        if flip is not None:
            self.labelled += 1
            self.flips += flip

    def as_dict(self) -> dict[str, Any]:
        """The counters, rates and latency quantiles, as shown in ``/admin/status``."""
        compared = self.compared
        return {
            "mirrored": self.mirrored,
            "compared": compared,
            "matched": self.matched,
            "mismatched": self.mismatched,
            "errors": self.errors,
            "dropped": self.dropped,
            "skipped": self.skipped,
            "skipped_reasons": dict(self.skipped_reasons),
            "in_flight": self.in_flight,
            "agreement_rate": self.matched / compared if compared else None,
            "label_flip_rate": self.flips / self.labelled if self.labelled else None,
            "latency_ms": {"primary": _quantiles(self.primary_ms),
                           "shadow": _quantiles(self.shadow_ms)},
        }


def _quantiles(samples: deque[float]) -> dict[str, float | None]:
    """Nearest-rank p50 and p99 of the samples, in ms rounded to 0.001."""
    if not samples:
        return {"p50": None, "p99": None}
    ordered = sorted(samples)
    last = len(ordered) - 1

    def rank(q: float) -> float:
        return round(ordered[min(last, max(0, math.ceil(q * len(ordered)) - 1))], 3)

    return {"p50": rank(0.50), "p99": rank(0.99)}


class ShadowBookkeeping:
    """The per-route stats of a ``ShadowDispatcher``, its outcome counters and error log.

    A base class rather than a member so the dispatcher's hot path keeps its
    plain ``self._count(...)`` calls.
    """

    def __init__(self, metrics: Metrics, clock: Callable[[], float]) -> None:
        self._metrics = metrics
        self._clock = clock
        self._stats: dict[str, ShadowRouteStats] = {}
        self._counters: dict[tuple[str, str, str], Counter] = {}
        self._log = get_logger("router.shadow.dispatcher")

    def _route(self, route: str) -> ShadowRouteStats:
        stats = self._stats.get(route)
        if stats is None:
            stats = self._stats[route] = ShadowRouteStats()
        return stats

    def _count(
        self, stats: ShadowRouteStats, route: str, backend: str, outcome: str, reason: str = ""
    ) -> None:
        stats.count(outcome, reason)
        key = (route, backend, outcome)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = self._metrics.shadow_requests.labels(*key)
        child.inc()

    def _note_error(
        self, stats: ShadowRouteStats, route: str, backend: str, reason: str,
        exc: BaseException | None, detail: str = "",
    ) -> None:
        """Log a shadow failure at debug level, at most once a second per route."""
        now = self._clock()
        if now - stats.last_error_log < _ERROR_LOG_GAP_S:
            return
        stats.last_error_log = now
        self._log.debug(
            "shadow_error", route=route, backend=backend, reason=reason,
            error=repr(exc) if exc is not None else None, detail=detail or None,
        )

    # -- the admin's side ----------------------------------------------------------------------

    def counts(self, route: str) -> ShadowCounts:
        """The route's comparisons so far, for the controller (a canary's shadow stage)."""
        stats = self._stats.get(route)
        if stats is None:
            return ShadowCounts()
        return ShadowCounts(stats.compared, stats.matched, stats.labelled, stats.flips)

    def route_stats(self, route: str) -> dict[str, Any]:
        """The ``shadow`` part of a route's ``/admin/status`` (zeros for an unseen route)."""
        stats = self._stats.get(route)
        return (stats or ShadowRouteStats()).as_dict()

    def forget(self, route: str) -> None:
        """Drop the counters of a removed route (running mirrors still finish)."""
        self._stats.pop(route, None)
