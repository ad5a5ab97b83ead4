"""DriftMonitor: sampled bodies read in the background, gauges, one event per crossing."""

from __future__ import annotations

import random

import orjson

from router.telemetry.drift import (
    DRAIN_ROWS,
    QUEUE,
    QUEUE_BYTES,
    READ_BYTES_PER_S,
    DriftMonitor,
)
from router.telemetry.events import EventLog
from router.telemetry.metrics import Metrics
from strategies.drift import DriftSpec


def test_input_drift_is_emitted_once_per_crossing() -> None:
    metrics, events = Metrics(), EventLog()
    now = 1000.0
    monitor = DriftMonitor(metrics, events, seed=1, clock=lambda: now)
    monitor.configure({"r": DriftSpec(reference="first 200", window=10, sample=1.0)})
    rng = random.Random(2)

    def feed(n: int, shift: float) -> None:
        nonlocal now
        for _ in range(n):
            body = orjson.dumps({"x": rng.gauss(shift, 1.0)})
            monitor.offer("r", None, body)
            monitor.drain()
        now += 11.0  # past the live window: the next batch is all the window holds

    def crossings() -> list[str]:
        return [e["feature"] for e in events.recent(1000) if e["event"] == "input_drift"]

    feed(200, 0.0)  # the reference
    monitor.evaluate(now - 11.0)
    assert crossings() == []
    for shift, expected in ((3.0, ["x"]), (3.0, ["x"]), (0.0, ["x"]), (3.0, ["x", "x"])):
        feed(300, shift)
        monitor.evaluate(now - 11.0)
        assert crossings() == expected
    labels = {"route": "r", "feature": "x"}
    gauge = metrics.registry.get_sample_value("router_input_drift_psi", labels)
    assert gauge is not None and gauge > 0.2


def test_the_queue_is_bounded_in_bodies_and_bytes_and_a_drain_in_rows() -> None:
    now = 1000.0
    monitor = DriftMonitor(Metrics(), EventLog(), seed=1, clock=lambda: now)
    monitor.configure({"r": DriftSpec(sample=1.0)})
    small = orjson.dumps({"x": 1.0})
    for _ in range(QUEUE + 10):
        monitor.offer("r", None, small)
    assert monitor.dropped == 10
    assert monitor.drain() == DRAIN_ROWS  # one row a body: 256 bodies, the rest wait
    monitor.drain()
    monitor.drain()
    monitor.drain()
    big = orjson.dumps({"x": 1.0, "pad": "x" * 60_000})
    for _ in range(100):
        now += 1.0  # within the route's read budget: only the queue's bytes bound it
        monitor.offer("r", None, big)
    assert monitor.dropped == 10 + 100 - QUEUE_BYTES // len(big)
    assert monitor.skipped == 0


def test_a_route_reads_at_most_its_bytes_a_second_whatever_the_traffic() -> None:
    now = 1000.0
    monitor = DriftMonitor(Metrics(), EventLog(), seed=1, clock=lambda: now)
    monitor.configure({"r": DriftSpec(sample=1.0)})
    body = b'{"x": 1.0, "pad": "' + b"x" * 2027 + b'"}'  # 2 KiB
    for _ in range(100):
        monitor.offer("r", None, body)
    allowed = READ_BYTES_PER_S // len(body)
    assert monitor.skipped == 100 - allowed and allowed == 64
    now += 0.5  # half a second later: half the budget back
    for _ in range(100):
        monitor.offer("r", None, body)
    assert monitor.skipped == 200 - allowed - allowed // 2
    assert monitor.dropped == 0


def test_a_follower_judges_nothing_hands_a_pin_on_and_retakes_the_bins_after_a_reload() -> None:
    """The fleet's side of the monitor (router/control/fleet_drift.py drives it)."""
    metrics, events = Metrics(), EventLog()
    now = 1000.0
    monitor = DriftMonitor(metrics, events, seed=1, clock=lambda: now)
    spec = DriftSpec(reference="first 100", window=60, sample=1.0)
    monitor.configure({"r": spec})
    monitor.leading = lambda: False
    rng = random.Random(3)
    monitor.adopt_edges("r", {"x": (-1.0, 0.0, 1.0)}, "v1")
    for _ in range(300):
        monitor.offer("r", None, orjson.dumps({"x": rng.gauss(5, 1)}))  # far off the bins
        monitor.drain()
    monitor.evaluate(now)
    assert events.recent(100) == []  # the leader judges
    figures = monitor.live_figures("r", now)
    assert figures is not None and figures["x"][0] == [0.0, 0.0, 0.0, 300.0]
    answer = monitor.pin("r", now)
    assert answer is not None and answer["pin"] == "requested from the leader"
    assert monitor.pin_requests == {"r"} and events.recent(100) == []

    monitor.configure({"r": spec})  # unchanged: the samples and the bins stay
    assert monitor.fleet_version("r") == "v1"
    monitor.configure({"r": spec.model_copy(update={"window": 120.0})})
    assert monitor.fleet_version("r") is None  # fresh samples: the next beat retakes the bins
