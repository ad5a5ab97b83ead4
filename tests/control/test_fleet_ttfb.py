"""The fleet's figures carry time to first byte, so the leader's TTFB checks see every replica.

Two replicas' windows report to a real Redis; the leader's read-back holds the sum of
their first-byte histograms next to requests and latency.
"""

from __future__ import annotations

from router.control.fleet_figures import LAG_S, FleetFigures
from router.control.redis_store import RedisStateStore
from router.control.store_health import WatchedStore
from router.telemetry.metrics import Metrics
from router.telemetry.quality import QualityWindows
from router.telemetry.windows import WindowSet
from tests.redis_support import RedisServer

NOW = 1_800_000_000.0


async def test_first_byte_times_are_summed_across_replicas(redis_server: RedisServer) -> None:
    store = RedisStateStore(redis_server.url, "ttfb-test")
    watched = WatchedStore(store, "redis", Metrics())
    clock = [NOW - 10]  # the replicas start before the traffic
    fast, slow = WindowSet(), WindowSet()
    for n in range(40):
        fast.record("chat", "candidate", NOW - 5 + n * 0.05, 0.5, False, ttfb_s=0.05)
        slow.record("chat", "candidate", NOW - 5 + n * 0.05, 2.0, False, ttfb_s=1.2)
    fast.record("chat", "candidate", NOW - 4, 0.5, False)  # an answer without a body
    try:
        replicas = [
            FleetFigures(watched, store, w, QualityWindows(), clock=lambda: clock[0])
            for w in (fast, slow)
        ]
        clock[0] = NOW + 1
        for figures in replicas:  # each replica's once-a-second round trip
            pipe = store.client.pipeline(transaction=False)
            figures.queue_report(pipe)
            await store.run_pipeline(pipe)
        clock[0] = NOW + LAG_S + 1
        leader = replicas[0]
        await leader.read([("chat", ("candidate",), 30.0)])
        stats = leader.stats("chat", "candidate", 30)
    finally:
        await store.aclose()
    assert stats.requests == 81
    assert stats.ttfb_count == 80
    assert stats.ttfb_p50_s is not None and stats.ttfb_p50_s < 0.1
    assert stats.ttfb_p99_s is not None and 1.0 < stats.ttfb_p99_s < 1.4
