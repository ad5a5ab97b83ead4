"""``router.telemetry.lockfree``: the same exposition as prometheus-client's own families."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from router.telemetry.lockfree import LabeledCounter, LabeledHistogram

VALUES = (0.0, 3.0, 64.0, 65.0, 1e9, 1024.0, 1024.0)
BOUNDS = (64, 256, 1024, 4096)


def _lines(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return sorted(line for line in text.splitlines() if "_created" not in line)


def test_histogram_exposition_matches_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = LabeledHistogram("x_bytes", "Sizes.", ["route"], registry=ours, buckets=BOUNDS)
    slow = Histogram("x_bytes", "Sizes.", ["route"], registry=theirs, buckets=BOUNDS)
    for i, value in enumerate(VALUES):
        route = "a" if i % 2 else "b"
        fast.labels(route).observe(value)
        slow.labels(route).observe(value)
    assert _lines(ours) == _lines(theirs)


def test_counter_exposition_matches_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = LabeledCounter("x_total", "Things.", ["route", "label"], registry=ours)
    slow = Counter("x_total", "Things.", ["route", "label"], registry=theirs)
    for route, label, n in (("a", "1", 1), ("a", "2", 3), ("b", "1", 2), ("a", "1", 5)):
        fast.labels(route, label).inc(n)
        slow.labels(route, label).inc(n)
    assert _lines(ours) == _lines(theirs)
    assert 'x_total{label="1",route="a"} 6.0' in _lines(ours)
