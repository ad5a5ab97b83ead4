"""Ground truth per route (``feedback:``): predictions remembered by request id, labels joined.

The body inspector hands each inspected answer's first prediction to
``GroundTruth.remember`` after the client has its answer: one insertion into a
bounded ring (``router.telemetry.predictions``; the oldest eighth dropped past ``keep``),
nothing else on the request path. ``join`` runs in the admin handler: it pops the prediction a label
is for, scores it (``strategies.feedback``) and adds the verdict to the
variant's ``AccuracyWindow``, a ring of time buckets over ``feedback.window``, so
memory stays fixed however many labels arrive. A request id that is not (or no
longer) remembered is counted as ``unknown_request``, never refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from router.telemetry.metrics import Metrics
from router.telemetry.predictions import PredictionStore, Row
from strategies.feedback import FeedbackItem, FeedbackSpec, LabelTally, Prediction, score

__all__ = [
    "BUCKETS", "AccuracyWindow", "BucketKey", "GroundTruth", "JoinResult", "PredictionStore",
    "Relay",
]

BUCKETS = 60  # time buckets of an accuracy window
_MAX_MIRRORS = 8  # shadow backends per route whose predictions are kept
_NO_ROUTE = "none"
_MAX_UNSHARED = 4096  # tallies waiting for the fleet's store


class AccuracyWindow:
    """One variant's scored labels over the trailing ``window_s``, in 60 time buckets."""

    __slots__ = ("_stamps", "_tallies", "width", "window_s")

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.width = window_s / BUCKETS
        self._stamps = [-1] * BUCKETS
        self._tallies = [LabelTally()] * BUCKETS

    def add(self, now: float, tally: LabelTally) -> None:
        """Count ``tally`` as received at ``now``."""
        index = int(now // self.width)
        slot = index % BUCKETS
        if self._stamps[slot] != index:
            self._stamps[slot] = index
            self._tallies[slot] = tally
        else:
            self._tallies[slot] = self._tallies[slot].plus(tally)

    def total(self, now: float) -> LabelTally:
        """Everything received in the trailing window (to the precision of one bucket)."""
        newest = int(now // self.width)
        total = LabelTally()
        for stamp, tally in zip(self._stamps, self._tallies, strict=True):
            if newest - BUCKETS < stamp <= newest:
                total = total.plus(tally)
        return total


class _RouteTruth:
    """One route's remembered predictions and per-variant accuracy windows."""

    __slots__ = ("mirror_backends", "mirrored", "spec", "store", "windows")

    def __init__(self, spec: FeedbackSpec) -> None:
        self.spec = spec
        self.store = PredictionStore(spec.keep)
        # Shadow answers to the same requests, keyed "request id \n backend".
        self.mirrored = PredictionStore(spec.keep)
        self.mirror_backends: set[str] = set()
        self.windows: dict[str, AccuracyWindow] = {}

    def pop(self, request_id: str) -> list[Row]:
        """Every prediction made for ``request_id`` (the answer's and the shadows'), forgotten."""
        found = [self.store.pop(request_id)]
        found += [self.mirrored.pop(f"{request_id}\n{b}") for b in self.mirror_backends]
        return [row for row in found if row is not None]

    def window(self, variant: str) -> AccuracyWindow:
        found = self.windows.get(variant)
        if found is None:
            found = self.windows[variant] = AccuracyWindow(self.spec.window)
        return found


@dataclass(frozen=True, slots=True)
class JoinResult:
    """What a feedback batch did: labels joined to a prediction here, ids not remembered,
    and labels relayed to the other replicas of a fleet (``router.control.fleet_feedback``)."""

    joined: int
    unknown: int
    relayed: int = 0


Relay = Callable[[list[FeedbackItem]], bool]
"""Hands labels this process cannot join to the fleet; False when there is no one to ask."""

BucketKey = tuple[str, str, float, int]
"""(route, variant, bucket width in seconds, bucket number): where a fleet sums a tally."""


class GroundTruth:
    """Every route's ground truth (routes without ``feedback:`` remember nothing)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._routes: dict[str, _RouteTruth] = {}
        # In a fleet: where unmatched labels go, and the tallies not yet added to its sums.
        self.relay: Relay | None = None
        self.unshared: dict[BucketKey, LabelTally] | None = None

    def configure(self, specs: Mapping[str, FeedbackSpec]) -> None:
        """Follow a new config: keep what still applies, resize, forget removed routes."""
        routes: dict[str, _RouteTruth] = {}
        for name, spec in specs.items():
            old = self._routes.get(name)
            if old is not None and old.spec == spec:
                routes[name] = old
                continue
            fresh = _RouteTruth(spec)
            if old is not None:
                fresh.store = old.store.resized(spec.keep)
                fresh.mirrored = old.mirrored.resized(spec.keep)
                fresh.mirror_backends = old.mirror_backends
                if old.spec.window == spec.window:
                    fresh.windows = old.windows
            routes[name] = fresh
        self._routes = routes

    def remember(
        self, route: str, request_id: str, variant: str, backend: str, value: Prediction,
        at: float,
    ) -> None:
        """Keep the prediction answered to ``request_id`` (hot path: one bounded insertion)."""
        found = self._routes.get(route)
        if found is not None:
            found.store.add(request_id, variant, backend, value, at)

    def remember_mirrored(
        self, route: str, request_id: str, variant: str, backend: str, value: Prediction,
        at: float,
    ) -> None:
        """Keep a shadow's prediction for ``request_id``, to score it against the same label."""
        found = self._routes.get(route)
        if found is not None and (
            backend in found.mirror_backends or len(found.mirror_backends) < _MAX_MIRRORS
        ):
            found.mirror_backends.add(backend)
            found.mirrored.add(f"{request_id}\n{backend}", variant, backend, value, at)

    def keeps(self, route: str) -> bool:
        """Whether ``route`` remembers predictions (has a ``feedback`` section)."""
        return route in self._routes

    def join(self, items: Iterable[FeedbackItem], now: float) -> JoinResult:
        """Score each label against the predictions it is for. Labels for ids not
        remembered here go to the fleet (when there is one), else count as unknown."""
        joined, unmatched = self.match(items, now)
        if unmatched and self.relay is not None and self.relay(unmatched):
            return JoinResult(joined, 0, len(unmatched))
        self.count_unknown(len(unmatched))
        return JoinResult(joined, len(unmatched))

    def match(self, items: Iterable[FeedbackItem], now: float) -> tuple[int, list[FeedbackItem]]:
        """Score the labels whose prediction this process remembers; those joined, and
        the others (neither counted nor relayed: the caller decides)."""
        joined = 0
        unmatched: list[FeedbackItem] = []
        for item in items:
            name, truth, rows = self._pop(item.request_id)
            if truth is None:
                unmatched.append(item)
                continue
            for variant, _backend, value, _at in rows:
                verdict, error = score(value, item.label)
                tally = LabelTally(
                    correct=int(verdict == "correct"), wrong=int(verdict == "wrong"),
                    scored=int(verdict == "scored"),
                    abs_error=error if verdict == "scored" else 0.0,
                )
                window = truth.window(variant)
                window.add(now, tally)
                self._share(name, variant, window, now, tally)
                self.metrics.feedback.labels(name, variant, verdict).inc()
            joined += 1
        return joined, unmatched

    def count_unknown(self, n: int) -> None:
        """Count ``n`` labels whose prediction no process remembers."""
        if n:
            self.metrics.feedback.labels(_NO_ROUTE, _NO_ROUTE, "unknown_request").inc(n)

    def _share(
        self, route: str, variant: str, window: AccuracyWindow, now: float, tally: LabelTally
    ) -> None:
        """Keep ``tally`` for the fleet's sums (in a fleet), in the bucket it was counted in."""
        if self.unshared is None:
            return
        key = (route, variant, window.width, int(now // window.width))
        found = self.unshared.get(key)
        if found is None and len(self.unshared) >= _MAX_UNSHARED:  # the store is down for long
            return
        self.unshared[key] = tally if found is None else found.plus(tally)

    def _pop(
        self, request_id: str
    ) -> tuple[str, _RouteTruth | None, list[Row]]:
        for name, truth in self._routes.items():
            found = truth.pop(request_id)
            if found:
                return name, truth, found
        return _NO_ROUTE, None, []

    def windows_s(self) -> dict[str, float]:
        """Each feedback route's accuracy window, in seconds."""
        return {name: truth.spec.window for name, truth in self._routes.items()}

    def tallies(self, route: str, now: float) -> dict[str, LabelTally]:
        """Per variant of ``route``: the labels received over its feedback window."""
        found = self._routes.get(route)
        if found is None:
            return {}
        return {variant: w.total(now) for variant, w in found.windows.items()}

    def summary(self, route: str, now: float) -> dict[str, Any] | None:
        """The route's ``feedback`` in the status; None when the route keeps no feedback."""
        found = self._routes.get(route)
        if found is None:
            return None
        return {
            "window_s": found.spec.window,
            "keep": found.spec.keep,
            "remembered": len(found.store),
            "dropped": found.store.dropped,
            "remembered_from_shadows": len(found.mirrored),
            "variants": {v: t.render() for v, t in sorted(self.tallies(route, now).items())},
        }
