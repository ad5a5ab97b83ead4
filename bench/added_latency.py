"""The latency the router adds at a fixed rate below saturation, next to nginx as the proxy.

wrk keeps every connection busy, so its latencies at saturation are queueing: by
Little's law p50 is about connections / throughput, and the p99 there swings run to
run with how the machine schedules wrk. What a user feels is the latency at the load
they actually run: here the open-loop generator (``openloop.py``) sends at half the
router's saturation rate, to the router and to nginx configured as the same proxy,
in interleaved rounds, and latency counts from each request's scheduled send time.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from openloop import OpenLoopResult, run_openloop
from wrk import post_body

__all__ = ["AddedLatency", "measure_added_latency", "render_added_latency"]

#: The rate as a fraction of the router's own saturation throughput (wrk, 64 connections).
LOAD_FRACTION = 0.5


@dataclass(frozen=True, slots=True)
class AddedLatency:
    """Median p50/p99 (ms) of the router and of nginx at one method and rate."""

    method: str
    rate: float
    router_p50_ms: float
    router_p99_ms: float
    nginx_p50_ms: float
    nginx_p99_ms: float
    kept_up: bool


def _medians(results: Sequence[OpenLoopResult]) -> tuple[float, float]:
    return (
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
    )


def measure_added_latency(
    router_url: str, nginx_url: str, saturation_rps: dict[str, float],
    duration_s: float, rounds: int,
) -> list[AddedLatency]:
    """Per method (GET, POST of 2 KB JSON): rounds at ``LOAD_FRACTION`` of its saturation."""
    found = []
    for method, rps in saturation_rps.items():
        rate = max(10.0, round(rps * LOAD_FRACTION, -1))
        body = post_body() if method == "POST" else b""
        headers = {"content-type": "application/json"} if body else {}
        runs: dict[str, list[OpenLoopResult]] = {"router": [], "nginx": []}
        for rnd in range(rounds):
            order = [("router", router_url), ("nginx", nginx_url)]
            for name, url in order if rnd % 2 == 0 else order[::-1]:
                runs[name].append(run_openloop(url, rate, duration_s, method, body, headers))
        router_p50, router_p99 = _medians(runs["router"])
        nginx_p50, nginx_p99 = _medians(runs["nginx"])
        found.append(AddedLatency(
            method, rate, router_p50, router_p99, nginx_p50, nginx_p99,
            kept_up=all(r.kept_up for results in runs.values() for r in results),
        ))
    return found


def render_added_latency(results: Sequence[AddedLatency]) -> str:
    """One line per method: both proxies' p50/p99 and the router's difference."""
    lines = []
    for r in results:
        lines.append(
            f"  {r.method:<4} at {r.rate:,.0f} req/s: router p50 {r.router_p50_ms:.2f} ms, "
            f"p99 {r.router_p99_ms:.2f} ms; nginx p50 {r.nginx_p50_ms:.2f} ms, "
            f"p99 {r.nginx_p99_ms:.2f} ms; added p50 {r.router_p50_ms - r.nginx_p50_ms:+.2f} ms, "
            f"p99 {r.router_p99_ms - r.nginx_p99_ms:+.2f} ms"
        )
        if not r.kept_up:
            lines.append("  !! the generator did not keep up with the rate in some round")
    return "\n".join(lines)
