"""The numbers behind the dashboard (``GET /admin/stats``): live rates, latency, sparklines, health.

Everything comes from memory: the per-second windows (``router.telemetry.windows``, 15
minutes) and the body inspector's totals. No external database.

Summing a 10-second bucket reads ten one-second latency histograms, so a full
15-minute series costs tens of milliseconds per variant on a small machine —
too much to repeat every second on the router's event loop. Buckets that are
over never change, so they are computed once and kept (per ``WindowSet``,
weakly); each call computes only the buckets that closed since, plus the live
one.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from router.telemetry.drift import DriftMonitor
from router.telemetry.events import iso_time
from router.telemetry.inspection import BodyInspector
from router.telemetry.streams import StreamStats
from router.telemetry.windows import VariantWindow, WindowSet
from strategies import VariantStats

__all__ = ["build_stats"]


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000.0, 3) if seconds is not None else None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _live(
    stats: VariantStats, recent_s: float, stream: StreamStats | None, now: float
) -> dict[str, Any]:
    live: dict[str, Any] = {
        "rps": round(stats.requests / recent_s, 3),
        "error_rate": _rate(stats.errors, stats.requests),
        "p50_ms": _ms(stats.p50_s),
        "p99_ms": _ms(stats.p99_s),
        "requests": stats.requests,
    }
    if stream is not None and (stream.events or stream.completion_tokens):
        # Streaming (or token-reporting) traffic: time to first token and token throughput.
        live["stream"] = {
            "ttft_p50_ms": _ms(stats.ttfb_p50_s),
            "ttft_p99_ms": _ms(stats.ttfb_p99_s),
            "tokens_per_s": round(stream.tokens_per_s(now, recent_s), 3),
        }
    return live


class _Buckets:
    """Closed buckets of one variant's window, by their end second."""

    __slots__ = ("points", "step_s", "window")

    def __init__(self, window: VariantWindow, step_s: int) -> None:
        self.window = window
        self.step_s = step_s
        self.points: dict[int, VariantStats] = {}

    def get(self, end: int) -> VariantStats:
        """The closed bucket ending at ``end``."""
        found = self.points.get(end)
        if found is None:
            found = self.points[end] = self.window.stats(end, self.step_s)
        return found

    def prune(self, oldest: int) -> None:
        """Forget buckets that fell out of the span."""
        for end in [t for t in self.points if t < oldest]:
            del self.points[end]


_CACHE: weakref.WeakKeyDictionary[WindowSet, dict[tuple[str, str], _Buckets]] = (
    weakref.WeakKeyDictionary()
)


def _series(
    buckets: _Buckets, now: float, span_s: int, step_s: int
) -> dict[str, list[Any]]:
    """``span_s // step_s`` points: closed buckets on multiples of ``step_s``, then the live one."""
    end = int(now)
    last_closed = (end - 1) - (end - 1) % step_s
    closed = list(range(last_closed - span_s + 2 * step_s, last_closed + 1, step_s))
    buckets.prune(closed[0] if closed else last_closed)
    times = [*closed, end]
    points = [buckets.get(t) for t in closed]
    points.append(buckets.window.stats(end, end - last_closed))
    widths = [step_s] * len(closed) + [end - last_closed]
    return {
        "t": times,
        "rps": [round(p.requests / w, 3) for p, w in zip(points, widths, strict=True)],
        "error_rate": [_rate(p.errors, p.requests) for p in points],
        "p99_ms": [_ms(p.p99_s) for p in points],
    }


def _buckets(windows: WindowSet, route: str, variant: str, step_s: int) -> _Buckets:
    cache = _CACHE.setdefault(windows, {})
    window = windows.window(route, variant)
    found = cache.get((route, variant))
    if found is None or found.window is not window or found.step_s != step_s:
        found = cache[(route, variant)] = _Buckets(window, step_s)
    return found


def build_stats(
    windows: WindowSet,
    routes: Sequence[tuple[str, tuple[str, ...]]],
    now: float,
    health: BodyInspector | None,
    drift: DriftMonitor | None = None,
    streams: Callable[[str, str], StreamStats | None] | None = None,
    *,
    span_s: int = 900,
    step_s: int = 10,
    recent_s: float = 60.0,
) -> dict[str, Any]:
    """Per route and variant: live numbers over ``recent_s``, sparkline series, body health.

    ``routes`` lists each route's name and variants. Series hold ``span_s //
    step_s`` points, oldest first; ``t`` is the last epoch second of each
    bucket: closed ``step_s`` buckets, then the live, partial one ending now.
    Rates and latencies are ``None`` where there was no request. A route that
    watches input drift gets ``drift``: its four most drifting features. A variant with
    streaming or token-reporting answers (``streams``) gets ``stream``: time to first
    token p50/p99 and completion tokens per second.
    """
    out: dict[str, Any] = {}
    wanted = {(name, variant) for name, variants in routes for variant in variants}
    cache = _CACHE.get(windows)
    if cache is not None:
        for key in [k for k in cache if k not in wanted]:
            del cache[key]
    for name, variants in routes:
        live: dict[str, Any] = {}
        series: dict[str, Any] = {}
        for variant in variants:
            stream = streams(name, variant) if streams is not None else None
            live[variant] = _live(windows.stats(name, variant, now, recent_s), recent_s, stream,
                                  now)
            buckets = _buckets(windows, name, variant, step_s)
            series[variant] = _series(buckets, now, span_s, step_s)
        out[name] = {
            "variants": live,
            "series": series,
            "health": health.route_health(name) if health is not None else {},
        }
        found = drift.report(name, now, limit=4) if drift is not None else None
        if found is not None:
            out[name]["drift"] = found
    return {"generated_at": iso_time(now), "routes": out}
