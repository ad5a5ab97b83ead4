"""Sliding windows of live numbers per (route, variant): O(1) work per request.

One-second slots in a ring covering 15 minutes; each slot holds a request
count, an error count and a fixed-bucket latency histogram. A check sums the
slots of its window and reads quantiles off the summed histogram (no lists of
samples). The same ring feeds the dashboard's sparklines. Running totals (a
``Tally``: requests, errors, latency histogram since start) feed the sequential
judge, which reads them since the mark where its evidence began.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

from strategies import VariantStats
from strategies.observation import LATENCY_BOUNDS, Tally

__all__ = ["LATENCY_BOUNDS", "VariantWindow", "WindowSet"]

# 1 ms .. 60 s, about 12 % apart: quantiles are read with that precision.
_NBUCKETS = len(LATENCY_BOUNDS) + 1
SPAN_S = 900


class VariantWindow:
    """The ring of one-second slots of one variant."""

    __slots__ = ("_counts", "_errors", "_hists", "_stamps", "_total", "_total_errors",
                 "_total_hist", "_ttfb")

    def __init__(self) -> None:
        self._stamps = [-1] * SPAN_S
        self._counts = [0] * SPAN_S
        self._errors = [0] * SPAN_S
        self._hists: list[list[int] | None] = [None] * SPAN_S
        # Time to first byte per slot, like latency; a slot's list is reset with it.
        self._ttfb: list[list[int] | None] = [None] * SPAN_S
        self._total = self._total_errors = 0
        self._total_hist = [0] * _NBUCKETS

    def record(
        self, now: float, latency_s: float, error: bool, ttfb_s: float | None = None
    ) -> None:
        """Count one request finished at ``now`` (epoch seconds)."""
        second = int(now)
        slot = second % SPAN_S
        if self._stamps[slot] != second:
            self._stamps[slot] = second
            self._counts[slot] = 0
            self._errors[slot] = 0
            hist = self._hists[slot]
            if hist is None:
                hist = self._hists[slot] = [0] * _NBUCKETS
            else:
                hist[:] = [0] * _NBUCKETS
            self._ttfb[slot] = None
        else:
            hist = self._hists[slot]
            assert hist is not None
        self._counts[slot] += 1
        self._total += 1
        if error:
            self._errors[slot] += 1
            self._total_errors += 1
        bucket = bisect.bisect_left(LATENCY_BOUNDS, latency_s)
        hist[bucket] += 1
        self._total_hist[bucket] += 1
        if ttfb_s is not None:
            first = self._ttfb[slot]
            if first is None:
                first = self._ttfb[slot] = [0] * _NBUCKETS
            if ttfb_s != latency_s:  # equal for an answer that came whole: same bucket
                bucket = bisect.bisect_left(LATENCY_BOUNDS, ttfb_s)
            first[bucket] += 1

    def slot(self, second: int) -> tuple[int, int, list[int]] | None:
        """Requests, errors and latency buckets of one second, if it is still in the ring."""
        slot = second % SPAN_S
        hist = self._hists[slot]
        if self._stamps[slot] != second or hist is None:
            return None
        return self._counts[slot], self._errors[slot], hist

    def first_bytes(self, second: int) -> list[int] | None:
        """The time-to-first-byte buckets of one second, if it is in the ring and had any."""
        slot = second % SPAN_S
        return self._ttfb[slot] if self._stamps[slot] == second else None

    def add(
        self, second: int, requests: int, errors: int, hist: list[int],
        first_bytes: list[int] | None = None,
    ) -> None:
        """Add a second's figures counted elsewhere (another replica's; a fleet's sum)."""
        slot = second % SPAN_S
        if self._stamps[slot] != second:
            self._stamps[slot] = second
            self._counts[slot] = self._errors[slot] = 0
            self._hists[slot] = [0] * _NBUCKETS
            self._ttfb[slot] = None
        mine = self._hists[slot]
        assert mine is not None
        self._counts[slot] += requests
        self._errors[slot] += errors
        _add(mine, hist)
        if first_bytes is not None and any(first_bytes):
            ttfb = self._ttfb[slot]
            if ttfb is None:
                ttfb = self._ttfb[slot] = [0] * _NBUCKETS
            _add(ttfb, first_bytes)

    def tally(self) -> Tally:
        """Requests, errors and the latency histogram since this window was created."""
        return Tally(self._total, self._total_errors, tuple(self._total_hist))

    def _slots(self, now: float, window_s: float) -> Iterable[int]:
        newest = int(now)
        oldest = newest - min(math.ceil(window_s), SPAN_S) + 1
        for second in range(oldest, newest + 1):
            slot = second % SPAN_S
            if self._stamps[slot] == second:
                yield slot

    def stats(self, now: float, window_s: float) -> VariantStats:
        """Requests, errors and p50/p99 over the trailing ``window_s`` seconds."""
        requests = errors = 0
        merged = [0] * _NBUCKETS
        first_bytes = [0] * _NBUCKETS
        for slot in self._slots(now, window_s):
            requests += self._counts[slot]
            errors += self._errors[slot]
            hist = self._hists[slot]
            assert hist is not None
            _add(merged, hist)
            ttfb = self._ttfb[slot]
            if ttfb is not None:
                _add(first_bytes, ttfb)
        if not requests:
            return VariantStats()
        answered = sum(first_bytes)
        return VariantStats(
            requests=requests,
            errors=errors,
            p50_s=_quantile(merged, requests, 0.50),
            p99_s=_quantile(merged, requests, 0.99),
            ttfb_count=answered,
            ttfb_p50_s=_quantile(first_bytes, answered, 0.50) if answered else None,
            ttfb_p99_s=_quantile(first_bytes, answered, 0.99) if answered else None,
        )

    def series(self, now: float, span_s: int, step_s: int) -> list[VariantStats]:
        """``span_s // step_s`` consecutive windows ending at ``now``, oldest first."""
        points = []
        for end in range(int(now) - span_s + step_s, int(now) + 1, step_s):
            points.append(self.stats(end, step_s))
        return points


def _add(total: list[int], hist: list[int]) -> None:
    for i, n in enumerate(hist):
        if n:
            total[i] += n


def _quantile(hist: list[int], total: int, q: float) -> float:
    rank = q * total
    seen = 0
    for i, n in enumerate(hist):
        if not n:
            continue
        if seen + n >= rank:
            low = LATENCY_BOUNDS[i - 1] if i > 0 else 0.0
            high = LATENCY_BOUNDS[i] if i < len(LATENCY_BOUNDS) else LATENCY_BOUNDS[-1] * 2
            return low + (high - low) * ((rank - seen) / n)
        seen += n
    return LATENCY_BOUNDS[-1]


class WindowSet:
    """Every (route, variant) window; the proxy's request sink for analysis."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], VariantWindow] = {}

    def window(self, route: str, variant: str) -> VariantWindow:
        """The window of (route, variant), created on first use."""
        key = (route, variant)
        found = self._windows.get(key)
        if found is None:
            found = self._windows[key] = VariantWindow()
        return found

    def record(
        self, route: str, variant: str, now: float, latency_s: float, error: bool,
        ttfb_s: float | None = None,
    ) -> None:
        """Count one finished request (and when its answer's first byte came, if it had one)."""
        self.window(route, variant).record(now, latency_s, error, ttfb_s)

    def stats(self, route: str, variant: str, now: float, window_s: float) -> VariantStats:
        """The numbers of (route, variant) over the trailing window."""
        found = self._windows.get((route, variant))
        return found.stats(now, window_s) if found is not None else VariantStats()

    def tally(self, route: str, variant: str) -> Tally:
        """The running totals of (route, variant); empty before its first request."""
        found = self._windows.get((route, variant))
        return found.tally() if found is not None else Tally()

    def items(self) -> list[tuple[tuple[str, str], VariantWindow]]:
        """Every ((route, variant), window)."""
        return list(self._windows.items())

    def forget(self, route: str) -> None:
        """Drop a removed route's windows."""
        for key in [k for k in self._windows if k[0] == route]:
            del self._windows[key]
