"""Response header rules: hop-by-hop headers dropped, the content type noted in the same pass."""

from __future__ import annotations

from router.proxy.headers import filter_response_headers


def test_hop_by_hop_and_connection_named_headers_are_dropped_and_names_lowered() -> None:
    upstream = [
        (b"Content-Type", b"text/event-stream"),
        (b"Connection", b"keep-alive, X-Trace"),
        (b"X-Trace", b"1"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Cache-Control", b"no-cache"),
    ]
    headers, content_type = filter_response_headers(upstream, [(b"x-request-id", b"r1")])
    assert headers == [
        (b"content-type", b"text/event-stream"),
        (b"cache-control", b"no-cache"),
        (b"x-request-id", b"r1"),
    ]
    assert content_type == b"text/event-stream"


def test_the_first_content_type_is_the_one_noted_and_none_is_empty() -> None:
    two = [(b"content-type", b"application/json"), (b"content-type", b"text/plain")]
    headers, content_type = filter_response_headers(two, [])
    assert headers == two
    assert content_type == b"application/json"
    assert filter_response_headers([(b"server", b"x")], []) == ([(b"server", b"x")], b"")
