"""Model input and output health (docs/observability.md), read off bodies after the answer.

The proxy hands over bodies it buffered anyway (up to ``cap`` bytes; ``None``
beyond) once the client has its answer; nothing here touches what is
forwarded. ``strategies.payloads`` reads the bodies; this module counts.

Cheap on the hot path: a request without a body costs one histogram
observation. Bodies are parsed with orjson (the stdlib only when the body holds
``NaN``/``Infinity``, which orjson rejects); values are walked only when the
body contains ``null`` or came through the stdlib, so a clean body costs a
parse and a few type checks. Metric children are bound once per (route,
variant) and per label. Labels are capped at ``max_labels`` distinct values per
route, the rest counted as ``other``.
"""

from __future__ import annotations

import time
from typing import Any

from router.telemetry.drift import DriftMonitor
from router.telemetry.feedback import GroundTruth
from router.telemetry.metrics import Metrics
from router.telemetry.quality import QualityWindows
from strategies.payloads import (
    count_missing_inputs,
    parse_body,
    path_protocol,
    read_predictions,
)

__all__ = ["BodyInspector"]


class _Health:
    """Bound metric children and running totals of one (route, variant)."""

    __slots__ = (
        "body_bytes", "inspected", "invalid", "invalid_inputs", "known", "label_children",
        "labels", "missing", "missing_values", "null", "null_outputs", "value", "value_count",
        "value_sum", "variant",
    )

    def __init__(self, metrics: Metrics, route: str, variant: str, known: set[str]) -> None:
        self.variant = variant
        self.known = known  # the labels admitted for the route (shared by its variants)
        self.body_bytes = metrics.request_body_bytes.labels(route, variant)
        self.missing = metrics.input_missing_values.labels(route, variant)
        self.invalid = metrics.input_invalid.labels(route, variant)
        self.null = metrics.output_null.labels(route, variant)
        self.value = metrics.prediction_value.labels(route, variant)
        self.label_children: dict[str, Any] = {}
        self.inspected = self.missing_values = self.invalid_inputs = self.null_outputs = 0
        self.labels: dict[str, int] = {}
        self.value_count = 0
        self.value_sum = 0.0

    def summary(self) -> dict[str, Any]:
        """The dashboard's view of these totals."""
        count = self.value_count
        mean = self.value_sum / count if count else None
        return {
            "inspected": self.inspected,
            "missing_values": self.missing_values,
            "invalid_inputs": self.invalid_inputs,
            "null_outputs": self.null_outputs,
            "labels": dict(self.labels),
            "values": {"count": count, "mean": mean},
        }


_OPENERS = frozenset(b"{[")
_CLOSERS = frozenset(b"}]")
# memchr for one letter of each token first: a numeric tensor holds neither, and testing
# ``b"null" in body`` outright walks a 2 KB body byte by byte (1.6 µs).
_L, _N = ord("l"), ord("N")


def _clean_and_well_shaped(protocol: str | None, body: bytes) -> bool:
    """A cheap pre-check that spares the parse of most healthy model inputs.

    A body with no ``null``/``NaN`` token cannot hold a missing value; if it also
    opens and closes like JSON and names the protocol's input key, parsing it
    (2 KB: about 10 µs, a quarter of a POST's cost) would find nothing to count.
    Anything else takes the full parse, which decides invalid or missing exactly.
    """
    find = body.find  # ``bytes in body`` first tries the bytes as an int and clears a TypeError
    if (_L in body and find(b"null") >= 0) or (_N in body and find(b"NaN") >= 0):
        return False
    if not body or (body[0] not in _OPENERS and body.lstrip()[:1] not in (b"{", b"[")):
        return False
    if body[-1] not in _CLOSERS and body.rstrip()[-1:] not in (b"}", b"]"):
        return False
    if protocol == "v2":
        return find(b'"inputs"') >= 0 and find(b'"data"') >= 0
    if protocol == "v1":
        return find(b'"instances"') >= 0 or find(b'"inputs"') >= 0
    return True


_NO_LABELS: dict[str, int] = {}
_MAX_PATHS = 1024  # paths whose protocol is remembered (a route may match endless paths)


class BodyInspector:
    """Counts input and output health per route and variant (docs/observability.md)."""

    def __init__(self, metrics: Metrics, *, cap: int = 64 * 1024, max_labels: int = 20) -> None:
        self.metrics = metrics
        self.cap = cap
        self.max_labels = max_labels
        self._health: dict[tuple[str, str], _Health] = {}
        self._route_labels: dict[str, set[str]] = {}
        # Remembers each answer's first prediction for routes that join late labels.
        self.truth: GroundTruth | None = None
        # Queues a sample of request bodies for routes that watch input drift.
        self.drift: DriftMonitor | None = None
        self.quality: QualityWindows | None = None  # the analysis gates' windows
        self._protocols: dict[str, str | None] = {}

    def _bound(self, route: str, variant: str) -> _Health:
        key = (route, variant)
        found = self._health.get(key)
        if found is None:
            known = self._route_labels.setdefault(route, set())
            found = self._health[key] = _Health(self.metrics, route, variant, known)
        return found

    def observe(
        self,
        route: str,
        variant: str,
        path: str,
        request_body: bytes | None,
        request_size: int,
        response_status: int,
        response_body: bytes | None,
        request_id: str = "",
        backend: str = "",
    ) -> None:
        """Inspect one finished request; bodies are ``None`` when over the cap."""
        health = self._health.get((route, variant)) or self._bound(route, variant)
        health.body_bytes.observe(request_size)
        answered = response_body and 200 <= response_status < 300
        if not request_body and not answered:
            return
        health.inspected += 1
        protocols = self._protocols
        protocol = protocols[path] if path in protocols else self._protocol(path)
        if request_body and self.drift is not None:
            self.drift.offer(route, protocol, request_body)
        if request_body and _clean_and_well_shaped(protocol, request_body):
            pass  # no null or NaN anywhere and the protocol's shape: nothing to count
        elif request_body:
            parsed = parse_body(request_body)
            missing = None
            if parsed is not None:
                doc, exotic = parsed
                nulls = exotic or request_body.find(b"null") >= 0
                missing = count_missing_inputs(protocol, doc, nulls)
            if missing is None:
                health.invalid.inc()
                health.invalid_inputs += 1
            elif missing:
                health.missing.inc(missing)
                health.missing_values += missing
        if answered:
            assert response_body is not None
            self._observe_output(route, health, protocol, response_body, request_id, backend)

    def _protocol(self, path: str) -> str | None:
        """The protocol ``path`` names, remembered for the next request to it."""
        protocol = path_protocol(path)
        if len(self._protocols) < _MAX_PATHS:
            self._protocols[path] = protocol
        return protocol

    def _observe_output(
        self, route: str, health: _Health, protocol: str | None, body: bytes, request_id: str,
        backend: str,
    ) -> None:
        """Count an answer's predictions; feed the gates' windows and the ground truth."""
        parsed = parse_body(body)
        if parsed is None:
            return
        doc, exotic = parsed
        result = read_predictions(protocol, doc, exotic or body.find(b"null") >= 0)
        if result is None:
            return
        nulls, labels, values = result.nulls, result.labels, result.values
        if nulls:
            health.null.inc(nulls)
            health.null_outputs += nulls
        if values:
            for value in values:
                health.value.observe(value)
                health.value_sum += value
            health.value_count += len(values)
        counts = self._count_labels(route, health, labels) if labels else _NO_LABELS
        now = time.time()
        if self.quality is not None:
            self.quality.record(route, health.variant, now, nulls, counts, values)
        if request_id and self.truth is not None:
            first = result.first()
            if first is not None:
                self.truth.remember(route, request_id, health.variant, backend, first, now)

    def _count_labels(self, route: str, health: _Health, labels: list[str]) -> dict[str, int]:
        known = health.known
        if len(labels) == 1:  # one prediction per request, the usual case
            label = labels[0]
            counts = {label if label in known else self._admit(known, label): 1}
        else:
            counts = {}
            for label in labels:
                if label not in known:
                    label = self._admit(known, label)
                counts[label] = counts.get(label, 0) + 1
        children, totals = health.label_children, health.labels
        for label, n in counts.items():
            child = children.get(label)
            if child is None:
                child = children[label] = self.metrics.predictions.labels(
                    route, health.variant, label
                )
            child.inc(n)
            totals[label] = totals.get(label, 0) + n
        return counts

    def _admit(self, known: set[str], label: str) -> str:
        """``label`` once the route knows it, or ``other`` past ``max_labels``."""
        if len(known) >= self.max_labels:
            return "other"
        known.add(label)
        return label

    def route_health(self, route: str) -> dict[str, dict[str, Any]]:
        """Per variant of ``route``: inspected, missing values, invalid inputs, null outputs..."""
        return {
            variant: health.summary()
            for (name, variant), health in self._health.items()
            if name == route
        }

    def forget(self, route: str) -> None:
        """Drop a removed route's totals and label set (its counters stay, as counters do)."""
        for key in [k for k in self._health if k[0] == route]:
            del self._health[key]
        self._route_labels.pop(route, None)
