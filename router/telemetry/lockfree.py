"""Labelled counters and histograms for the request path: plain numbers, read at scrape time.

prometheus-client's children take a lock per update and scan histogram buckets
linearly (a few microseconds each); the proxy updates them from one event loop,
so a plain integer or a bisect into a list does the same job for a fraction of
the cost. ``LabeledCounter`` and ``LabeledHistogram`` keep prometheus-client's
``labels(...).inc()`` / ``.observe()`` shape and register as collectors, so the
exposition is the one ``Counter``/``Histogram`` would give (minus ``_created``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from router.telemetry.streams import cumulative

__all__ = ["CounterChild", "HistogramChild", "LabeledCounter", "LabeledHistogram"]


class CounterChild:
    """One labelled counter."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (non-negative)."""
        self.value += amount


class HistogramChild:
    """One labelled histogram: a count per bucket, and the sum."""

    __slots__ = ("bounds", "buckets", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count ``value`` in its bucket (``le`` semantics) and add it to the sum."""
        self.buckets[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class _Family(Collector):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)

    def describe(self) -> Iterable[Metric]:
        """The family without samples, so the registry can check names for clashes."""
        yield self._family()

    def _family(self) -> Metric:
        raise NotImplementedError


class LabeledCounter(_Family):
    """``router_x_total`` by labels; ``name`` is given without ``_total``."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str],
        registry: CollectorRegistry,
    ) -> None:
        super().__init__(name.removesuffix("_total"), documentation, labelnames)
        self._children: dict[tuple[str, ...], CounterChild] = {}
        registry.register(self)

    def labels(self, *values: str) -> CounterChild:
        """The child for these label values, created on first use."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = CounterChild()
        return child

    def _family(self) -> Metric:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterable[Metric]:
        """Every child's value."""
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value)
        yield family


class LabeledHistogram(_Family):
    """A histogram by labels, with fixed bucket bounds."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str],
        registry: CollectorRegistry, buckets: Sequence[float],
    ) -> None:
        super().__init__(name, documentation, labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        self._bound_text = [*(repr(b) for b in self.bounds), "+Inf"]
        self._children: dict[tuple[str, ...], HistogramChild] = {}
        registry.register(self)

    def labels(self, *values: str) -> HistogramChild:
        """The child for these label values, created on first use."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = HistogramChild(self.bounds)
        return child

    def _family(self) -> Metric:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterable[Metric]:
        """Cumulative buckets, count and sum of every child."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), cumulative(self._bound_text, child.buckets), child.sum)
        yield family
