"""Streaming and LLM answers measured as they pass: SSE events and gaps, OpenAI token usage.

Nothing here holds a response back: ``AnswerMeter.feed`` looks at each chunk
after it is handed to the client's send and keeps only counters, the time of
the last event and a short tail of bytes (so an event boundary or a ``usage``
object split across two chunks is still seen).

- ``text/event-stream`` answers: an event ends at a blank line (``\\n\\n`` or
  ``\\r\\n\\r\\n``); each is counted in ``router_stream_events_total`` and the time
  since the previous one observed in ``router_stream_event_gap_seconds`` (events
  that arrive in one chunk arrived together: a gap of 0).
- ``application/json`` answers and event streams: the last OpenAI-compatible
  ``usage`` object seen (``prompt_tokens``, ``completion_tokens``; a stream
  carries it in its final event) is added to ``router_tokens_total{kind}``.

Time to first byte is counted with the request itself (``RequestRecorder``).
"""

from __future__ import annotations

import bisect
import collections
import re
import time
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "GAP_BUCKETS",
    "AnswerMeter",
    "StreamCollector",
    "StreamStats",
    "answer_kind",
    "cumulative",
    "find_usage",
]

GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SSE, JSON = 1, 2
TOKEN_SPAN_S = 120
_MAX_KINDS = 256
_kinds: dict[bytes, int] = {}  # content type -> kind, as the backends spell them
_TAIL = 256  # bytes kept from the previous chunk: a usage object fits
_USAGE = re.compile(rb'"usage"\s*:\s*\{((?:[^{}]|\{[^{}]*\})*)\}')
_PROMPT = re.compile(rb'"prompt_tokens"\s*:\s*(\d+)')
_COMPLETION = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')


def cumulative(bounds: list[str], counts: list[int]) -> list[tuple[str, int]]:
    """Per-bucket counts as Prometheus' cumulative ``(le, count)`` pairs."""
    out, running = [], 0
    for bound, n in zip(bounds, counts, strict=True):
        running += n
        out.append((bound, running))
    return out


def answer_kind(content_type: bytes) -> int:
    """``SSE``, ``JSON`` or 0 from a response's content type (as the backend sent it)."""
    kind = _kinds.get(content_type)
    if kind is None:
        lowered = content_type.lower()
        kind = (
            SSE if lowered.startswith(b"text/event-stream")
            else JSON if lowered.startswith(b"application/json") else 0
        )
        if len(_kinds) < _MAX_KINDS:  # a backend sends a handful of distinct values
            _kinds[content_type] = kind
    return kind


def find_usage(data: bytes) -> tuple[int, int] | None:
    """(prompt, completion) tokens of the last ``usage`` object in ``data`` that has them."""
    found = None
    for match in _USAGE.finditer(data):
        body = match.group(1)
        prompt, completion = _PROMPT.search(body), _COMPLETION.search(body)
        if prompt or completion:
            found = (
                int(prompt.group(1)) if prompt else 0,
                int(completion.group(1)) if completion else 0,
            )
    return found


class StreamStats:
    """The streaming numbers of one (route, variant), as plain counters."""

    __slots__ = ("completion_tokens", "events", "gap_buckets", "gap_count", "gap_sum",
                 "labels", "prompt_tokens", "token_seconds")

    def __init__(self, route: str, variant: str) -> None:
        self.labels = (route, variant)
        self.events = 0
        self.gap_buckets = [0] * (len(GAP_BUCKETS) + 1)
        self.gap_sum = 0.0
        self.gap_count = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        # Completion tokens per epoch second over the last TOKEN_SPAN_S (the dashboard's rate).
        self.token_seconds: collections.deque[list[int]] = collections.deque()

    def add_tokens(self, prompt: int, completion: int, now: float) -> None:
        """Count one answer's usage, reported at ``now`` (epoch seconds)."""
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        second, ring = int(now), self.token_seconds
        if ring and ring[-1][0] == second:
            ring[-1][1] += completion
        else:
            ring.append([second, completion])
            while ring[0][0] <= second - TOKEN_SPAN_S:
                ring.popleft()

    def tokens_per_s(self, now: float, window_s: float) -> float:
        """Completion tokens per second over the trailing ``window_s`` (at most TOKEN_SPAN_S)."""
        oldest = now - min(window_s, TOKEN_SPAN_S)
        return sum(n for second, n in self.token_seconds if second >= oldest) / window_s

    def gap(self, seconds: float, times: int = 1) -> None:
        """Observe ``times`` gaps of ``seconds`` between events."""
        self.gap_buckets[bisect.bisect_left(GAP_BUCKETS, seconds)] += times
        self.gap_sum += seconds * times
        self.gap_count += times


class AnswerMeter:
    """Follows one answer, chunk by chunk; ``close`` adds what it saw to its ``StreamStats``."""

    __slots__ = ("events", "last_event", "sse", "stats", "tail", "usage")

    def __init__(self, stats: StreamStats, sse: bool) -> None:
        self.stats = stats
        self.sse = sse
        self.events = 0
        self.last_event = 0.0
        self.tail = b""
        self.usage: tuple[int, int] | None = None

    def feed(self, chunk: bytes, now: float) -> None:
        """Look at the next chunk, which arrived at ``now`` (monotonic seconds)."""
        tail = self.tail
        if self.sse:
            edge = tail[-2:]
            probe = edge + chunk if edge else chunk
            ended = probe.count(b"\n\n") + probe.count(b"\n\r\n")
            if edge == b"\n\n":  # that boundary was counted with the previous chunk
                ended -= 1
            if ended > 0:
                if self.events:
                    self.stats.gap(now - self.last_event)
                if ended > 1:
                    self.stats.gap(0.0, ended - 1)
                self.events += ended
                self.last_event = now
        data = tail + chunk if tail else chunk
        if data.find(b'"usage"') >= 0:  # not ``in``: see Exchange._relay
            usage = find_usage(data)
            if usage is not None:
                self.usage = usage
        self.tail = data[-_TAIL:]

    def close(self) -> None:
        """Count the answer's events and tokens (also when it was cut short)."""
        stats = self.stats
        stats.events += self.events
        if self.usage is not None:
            stats.add_tokens(self.usage[0], self.usage[1], time.time())


class StreamCollector(Collector):
    """Exposes every ``StreamStats`` as the SSE and token metrics."""

    def __init__(self, stats: dict[tuple[str, str], StreamStats]) -> None:
        self._stats = stats

    def describe(self) -> Iterable[Metric]:
        """The metric names, so the registry can check for clashes."""
        return self._families()

    def _families(self) -> list[Metric]:
        labels = ["route", "variant"]
        return [
            CounterMetricFamily("router_stream_events", _EVENTS_HELP, labels=labels),
            HistogramMetricFamily("router_stream_event_gap_seconds", _GAP_HELP, labels=labels),
            CounterMetricFamily("router_tokens", _TOKENS_HELP, labels=[*labels, "kind"]),
        ]

    def collect(self) -> Iterable[Metric]:
        """A reading of every (route, variant) that streamed or reported usage."""
        events, gaps, tokens = self._families()
        assert isinstance(events, CounterMetricFamily)
        assert isinstance(gaps, HistogramMetricFamily)
        assert isinstance(tokens, CounterMetricFamily)
        for stats in list(self._stats.values()):
            labels = list(stats.labels)
            if stats.events or stats.gap_count:
                events.add_metric(labels, stats.events)
                gaps.add_metric(labels, cumulative(_GAP_TEXT, stats.gap_buckets), stats.gap_sum)
            if stats.prompt_tokens or stats.completion_tokens:
                tokens.add_metric([*labels, "prompt"], stats.prompt_tokens)
                tokens.add_metric([*labels, "completion"], stats.completion_tokens)
        return [events, gaps, tokens]


_EVENTS_HELP = "Server-sent events relayed, by route and variant."
_GAP_HELP = "Time between consecutive server-sent events of one answer."
_TOKENS_HELP = "Tokens reported by OpenAI-compatible answers (usage), by kind."
_GAP_TEXT = [*(repr(float(b)) for b in GAP_BUCKETS), "+Inf"]
