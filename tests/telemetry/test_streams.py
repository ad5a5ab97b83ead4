"""Streaming answers measured chunk by chunk: SSE events and gaps, OpenAI usage, content kinds."""

from __future__ import annotations

import json

import pytest

from router.telemetry.streams import JSON, SSE, AnswerMeter, StreamStats, answer_kind, find_usage

USAGE = {"prompt_tokens": 17, "completion_tokens": 42, "total_tokens": 59,
         "prompt_tokens_details": {"cached_tokens": 0}}


def feed(chunks: list[bytes], *, sse: bool = True) -> tuple[AnswerMeter, StreamStats]:
    stats = StreamStats("chat", "candidate")
    meter = AnswerMeter(stats, sse)
    for i, chunk in enumerate(chunks):
        meter.feed(chunk, now=float(i))
    meter.close()
    return meter, stats


@pytest.mark.parametrize(
    ("chunks", "events"),
    [
        ([b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n"], 3),
        ([b"data: 1\n", b"\ndata: 2\n\n"], 2),  # a boundary split between chunks
        ([b"data: 1\r\n\r", b"\ndata: 2\r\n\r\n"], 2),  # CRLF, split
        ([b"data: 1\n\n", b"data: 2\n\ndata: 3\n\n"], 3),  # two events in one chunk
        ([b"event: a\ndata: 1\n\n", b": keep-alive comment\n\n"], 2),
        ([b"data: 1\n\n", b"", b"data: 2"], 1),  # the last event never ended
    ],
    ids=["one-per-chunk", "split-lf", "split-crlf", "two-in-a-chunk", "fields", "unfinished"],
)
def test_events_are_counted_across_chunk_boundaries(chunks: list[bytes], events: int) -> None:
    _, stats = feed(chunks)
    assert stats.events == events


def test_gaps_are_the_time_between_events_and_zero_within_a_chunk() -> None:
    _, stats = feed([b"data: 1\n\n", b"data: 2\n\ndata: 3\n\n", b"data: 4\n\n"])
    # events at t=0, t=1 (two), t=2: gaps 1, 0, 1
    assert stats.gap_count == 3 and stats.gap_sum == 2.0


def test_the_usage_of_the_final_stream_event_counts_once() -> None:
    events = [
        b'data: {"choices": [{"delta": {"content": "hi"}}], "usage": null}\n\n',
        b'data: {"choices": [], "usage": ' + json.dumps(USAGE).encode() + b"}\n\n",
        b"data: [DONE]\n\n",
    ]
    meter, stats = feed(events)
    assert meter.usage == (17, 42)
    assert (stats.prompt_tokens, stats.completion_tokens) == (17, 42)


def test_a_usage_object_split_across_chunks_is_found() -> None:
    body = json.dumps({"choices": [{"message": {"content": "x"}}], "usage": USAGE}).encode()
    cut = body.index(b"completion_tokens") + 5
    meter, _ = feed([body[:cut], body[cut:]], sse=False)
    assert meter.usage == (17, 42)


def test_usage_in_every_event_counts_the_last() -> None:
    events = [
        b'data: {"usage": {"prompt_tokens": 5, "completion_tokens": 1}}\n\n',
        b'data: {"usage": {"prompt_tokens": 5, "completion_tokens": 2}}\n\n',
    ]
    assert feed(events)[0].usage == (5, 2)


def test_find_usage_ignores_objects_without_token_counts() -> None:
    assert find_usage(b'{"usage": {}}') is None
    assert find_usage(b'{"usage": null}') is None
    assert find_usage(b'{"usage": {"prompt_tokens": 3}}') == (3, 0)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (b"text/event-stream", SSE),
        (b"text/event-stream; charset=utf-8", SSE),
        (b"application/json", JSON),
        (b"application/json; charset=utf-8", JSON),
        (b"Text/Event-Stream", SSE),  # media types are case-insensitive
        (b"text/plain", 0),
        (b"", 0),  # no content type
    ],
)
def test_answer_kind_reads_the_content_type(value: bytes, kind: int) -> None:
    assert answer_kind(value) == kind
    assert answer_kind(value) == kind  # the second time from the remembered kinds
