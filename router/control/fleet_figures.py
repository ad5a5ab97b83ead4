"""Analysis over the whole fleet: every replica's per-second figures, summed in Redis.

The proxy records each request in the replica's own ``WindowSet`` (an O(1)
in-memory update, as with one router). Once a second, off the request path,
each replica adds the seconds it completed since its last report to Redis, in
the one pipelined round trip a second it makes (``router.control.fleet``)::

    {prefix}:fig:{route}:{variant}:{second}   hash  n, e, h<i>, t<i>  (expires after 15 min)
    {prefix}:tot:{route}:{variant}            hash  n, e, h<i>, t<i>  (running totals)
    {prefix}:q:{route}:{variant}:{second}     hash  a, n, l:<label>  (answers, nulls, labels)
    {prefix}:qv:{route}:{variant}:{second}    list  numeric predictions (a sample)

(``h``: latency buckets; ``t``: time-to-first-byte buckets, for the TTFB checks; ``q``
and ``qv``: what the model-quality gates read.)

Fields are added with HINCRBY, so the keys hold the fleet's sums. The leader
reads the seconds completed since its last read (``LAG_S`` behind the clock, so
every replica has reported them) into a ``WindowSet`` of the fleet and the
totals, and judges those: ``min_requests`` counts the fleet's requests. A new
leader first reads back as far as the longest analysis window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping

from redis.asyncio.client import Pipeline

from router.control.redis_store import RedisStateStore
from router.control.store_health import WatchedStore
from router.telemetry.quality import QualityWindows
from router.telemetry.windows import SPAN_S, WindowSet
from strategies import VariantStats
from strategies.observation import LATENCY_BOUNDS, Quality, Tally

__all__ = ["LAG_S", "FleetFigures"]

LAG_S = 2  # seconds a replica may take to report a completed second
_EXPIRE_S = SPAN_S + 60
VALUES_PER_SECOND = 64  # numeric predictions a replica shares per variant and second


def _fields(
    requests: int, errors: int, hist: Iterable[int], first_bytes: Iterable[int] | None = None
) -> dict[str, int]:
    fields = {"n": requests, "e": errors}
    fields.update({f"h{i}": n for i, n in enumerate(hist) if n})
    fields.update({f"t{i}": n for i, n in enumerate(first_bytes or ()) if n})
    return fields


def _parse(raw: dict[bytes, bytes], buckets: int) -> tuple[int, int, list[int], list[int]]:
    """Requests, errors, latency and time-to-first-byte buckets of one hash."""
    hist, first_bytes = [0] * buckets, [0] * buckets
    requests = errors = 0
    for key, value in raw.items():
        name, count = key.decode(), int(value)
        if name == "n":
            requests = count
        elif name == "e":
            errors = count
        elif name[0] in "ht" and int(name[1:]) < buckets:
            (hist if name[0] == "h" else first_bytes)[int(name[1:])] = count
    return requests, errors, hist, first_bytes


class FleetFigures:
    """One replica's reports to the fleet's sums, and (on the leader) the sums read back."""

    def __init__(
        self,
        watched: WatchedStore,
        redis: RedisStateStore,
        local: WindowSet,
        local_quality: QualityWindows,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.watched = watched
        self.redis = redis
        self.local = local
        self.local_quality = local_quality
        self.clock = clock
        self.windows = WindowSet()  # the fleet's sum, on the leader
        self.quality = QualityWindows()
        self.totals: dict[tuple[str, str], Tally] = {}
        self.read_until: int | None = None  # the newest second in ``windows``
        self._reported = int(clock()) - 1

    def _key(self, route: str, variant: str, second: int | None = None, kind: str = "fig") -> str:
        if second is None:
            return self.redis.key(f"tot:{route}:{variant}")
        return self.redis.key(f"{kind}:{route}:{variant}:{second}")

    def queue_report(self, pipe: Pipeline) -> None:
        """Queue on ``pipe`` the seconds completed since the last report (sent by the caller,
        with its other once-a-second commands: one round trip)."""
        until = int(self.clock()) - 1
        seconds = range(max(self._reported + 1, until - SPAN_S + 1), until + 1)
        self._reported = until  # a failed report is dropped, never counted twice
        for (route, variant), window in self.local.items():
            for second in seconds:
                found = window.slot(second)
                if found is None or not found[0]:
                    continue
                fields = _fields(*found, window.first_bytes(second))
                key = self._key(route, variant, second)
                _add(pipe, key, fields)
                pipe.expire(key, _EXPIRE_S)
                _add(pipe, self._key(route, variant), fields)
        for (route, variant), answers in self.local_quality.items():
            for second in seconds:
                got = answers.slot(second)
                if got is None or not got[0]:
                    continue
                read, nulls, labels, values = got
                key = self._key(route, variant, second, "q")
                _add(pipe, key, {"a": read, "n": nulls, **{f"l:{k}": n for k, n in labels.items()}})
                pipe.expire(key, _EXPIRE_S)
                if values:
                    key = self._key(route, variant, second, "qv")
                    pipe.rpush(key, *values[:VALUES_PER_SECOND])
                    pipe.expire(key, _EXPIRE_S)

    async def read(self, routes: Iterable[tuple[str, tuple[str, ...], float]]) -> None:
        """(Leader) read the completed seconds since the last read, and the totals.

        ``routes``: (name, variants, analysis window). A first read goes back as far
        as the longest window (at most the 15 minutes kept).
        """
        routes = list(routes)
        until = int(self.clock()) - LAG_S
        if self.read_until is None:
            longest = max((math.ceil(window) for *_, window in routes), default=1)
            start = until - min(longest, SPAN_S) + 1
        else:
            start = self.read_until + 1
        pairs = [(route, variant) for route, variants, _ in routes for variant in variants]
        seconds = range(start, until + 1)
        pipe = self.redis.client.pipeline(transaction=False)
        for route, variant in pairs:
            pipe.hgetall(self._key(route, variant))
            for second in seconds:
                pipe.hgetall(self._key(route, variant, second))
                pipe.hgetall(self._key(route, variant, second, "q"))
                pipe.lrange(self._key(route, variant, second, "qv"), 0, -1)
        replies = iter(await self.watched.call("read", self.redis.run_pipeline(pipe)))
        buckets = len(LATENCY_BOUNDS) + 1
        for route, variant in pairs:
            requests, errors, hist, _ = _parse(next(replies), buckets)
            self.totals[(route, variant)] = Tally(requests, errors, tuple(hist))
            window = self.windows.window(route, variant)
            answers = self.quality.window(route, variant)
            for second in seconds:
                raw, quality, values = next(replies), next(replies), next(replies)
                if raw:
                    window.add(second, *_parse(raw, buckets))
                if quality:
                    answers.add(second, *_parse_quality(quality), [float(v) for v in values])
        self.read_until = until

    def forget(self) -> None:
        """Drop the sums read (leadership lost): a next term reads everything again."""
        self.windows = WindowSet()
        self.quality = QualityWindows()
        self.totals.clear()
        self.read_until = None

    def stats(self, route: str, variant: str, window_s: float) -> VariantStats:
        """The fleet's numbers over the ``window_s`` seconds up to the newest one read."""
        if self.read_until is None:
            return VariantStats()
        return self.windows.stats(route, variant, self.read_until, window_s)

    def quality_view(
        self, route: str, variants: tuple[str, ...], window_s: float
    ) -> Mapping[str, Quality]:
        """The fleet's answers over the ``window_s`` seconds up to the newest one read."""
        if self.read_until is None:
            return {variant: Quality() for variant in variants}
        return self.quality.view(route, variants, self.read_until, window_s)

    def tally(self, route: str, variant: str) -> Tally:
        """The fleet's running totals of (route, variant)."""
        return self.totals.get((route, variant), Tally())


def _add(pipe: Pipeline, key: str, fields: dict[str, int]) -> None:
    for name, count in fields.items():
        pipe.hincrby(key, name, count)


def _parse_quality(raw: dict[bytes, bytes]) -> tuple[int, int, dict[str, int]]:
    """Answers read, null ones and labels of one ``q`` hash."""
    read = nulls = 0
    labels: dict[str, int] = {}
    for key, value in raw.items():
        name, count = key.decode(), int(value)
        if name == "a":
            read = count
        elif name == "n":
            nulls = count
        elif name.startswith("l:"):
            labels[name[2:]] = count
    return read, nulls, labels
