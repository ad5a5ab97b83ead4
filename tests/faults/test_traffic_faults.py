"""Fault matrix, traffic rows: misbehaving backends, shadows and clients against a real router.

Each row runs its fault while steady traffic goes to a healthy route (``undisturbed``: every one
of those requests must succeed), checks what the faulty request gets, and then that the
router is back to normal by itself: the same backend's pool serves a good request. The pool-level
detail of each backend fault is in ``tests/upstream/test_failures.py``; the proxy listener's head
limits in ``tests/server/test_server_limits.py``; slow clients at length in
``tests/proxy/test_slow_clients.py``.
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.faults.matrix import undisturbed
from tests.raw_http import connect, parse_responses, read_until_closed
from tests.rollout_support import Stack, metric
from tests.support import shared_client, wait_until

pytestmark = pytest.mark.e2e  # runs a router process
HTTP = shared_client()


def _back_to_normal(stack: Stack, route: str = "fault") -> None:
    response = HTTP.get(f"{stack.url(route)}/ok")
    assert (response.status_code, response.text) == (200, "ok")


@pytest.mark.parametrize(
    ("route", "path", "status", "error"),
    [
        ("refused", "/ok", 502, "upstream_unavailable"),
        ("fault", "/reset", 502, "upstream_unavailable"),
        ("fault", "/hang", 504, "upstream_timeout"),
        ("fault", "/malformed", 502, "upstream_unavailable"),
        ("fault", "/bighead", 502, "upstream_unavailable"),
    ],
    ids=["refuses", "resets", "hangs-before-headers", "malformed-head", "oversized-head"],
)
def test_backend_fault_gets_a_json_error(
    stack: Stack, route: str, path: str, status: int, error: str
) -> None:
    with undisturbed(stack):
        response = HTTP.get(f"{stack.url(route)}{path}", timeout=20)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    _back_to_normal(stack)


def test_fallback_rescues_a_reset_only_when_the_request_is_safe_to_repeat(stack: Stack) -> None:
    # A backend going away can accept a connection and close it unanswered: an idempotent
    # request without a body goes to stable instead, a POST whose body was sent does not.
    with undisturbed(stack):
        got = HTTP.get(f"{stack.url('rescued')}/reset", timeout=20)
        posted = HTTP.post(f"{stack.url('rescued')}/reset", json={"n": 1}, timeout=20)
    assert got.status_code == 200, got.text
    assert got.headers["x-router-variant"] == "stable"
    assert posted.status_code == 502, posted.text
    assert posted.json()["error"] == "upstream_unavailable"
    resets = metric(
        stack.live.admin_url, "router_upstream_errors_total",
        route="rescued", backend="fault", kind="reset",
    )
    assert resets is not None and resets >= 2


def test_backend_dies_mid_body(stack: Stack) -> None:
    with undisturbed(stack), connect(stack.live.port) as conn:
        conn.sendall(b"GET /r/fault/midbody HTTP/1.1\r\nHost: router.test\r\n\r\n")
        raw = read_until_closed(conn, timeout=20)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-length: 1000" in head.lower()
    assert body == b"0123456789"  # what came, then the connection is cut: never padded or reused
    _back_to_normal(stack)


def test_backend_answers_one_byte_a_second(stack: Stack) -> None:
    with undisturbed(stack):
        response = HTTP.get(f"{stack.url('patient')}/dribble", timeout=20)
    assert (response.status_code, response.text) == (200, "abc")
    _back_to_normal(stack, "patient")


def _shadow_errors(stack: Stack, route: str) -> float:
    return metric(
        stack.live.admin_url, "router_shadow_requests_total", route=route, outcome="error"
    ) or 0.0


@pytest.mark.parametrize(
    ("route", "path"),
    [("shadowed", "/hang"), ("shadowdead", "/x"), ("shadowed", "/reset")],
    ids=["shadow-slow", "shadow-dead", "shadow-resets"],
)
def test_shadow_fault_is_invisible_to_the_client(stack: Stack, route: str, path: str) -> None:
    before = _shadow_errors(stack, route)
    with undisturbed(stack):
        # The primary's answer, without waiting for the shadow (whose own timeout is 1 s; the
        # client would wait at least that long, and a hung shadow forever, were it awaited).
        answers = [HTTP.post(f"{stack.url(route)}{path}", json={"n": i}) for i in range(3)]
    assert [a.status_code for a in answers] == [200] * 3
    assert {a.json()["backend"] for a in answers} == {"healthy"}
    wait_until(lambda: _shadow_errors(stack, route) > before, timeout=20)
    _back_to_normal(stack)


def test_client_stalls_in_its_headers(stack: Stack) -> None:
    with undisturbed(stack), connect(stack.live.port) as conn:
        conn.sendall(b"GET /r/healthy HTTP/1.1\r\nHost: router.test\r\n")
        raw = read_until_closed(conn, timeout=20)
    assert [r.status for r in parse_responses(raw)] == [408]


def test_client_stalls_in_its_body(stack: Stack) -> None:
    with undisturbed(stack), connect(stack.live.port) as conn:
        conn.sendall(
            b"POST /r/echo HTTP/1.1\r\nHost: router.test\r\nContent-Length: 1000000\r\n\r\n"
            + b"z" * 100_000
        )
        raw = read_until_closed(conn, timeout=20)
    assert [r.status for r in parse_responses(raw)] == [408]
    response = HTTP.post(stack.url("echo"), content=b"z" * 1_000_000)
    assert response.json()["body_length"] == 1_000_000


def test_client_stalls_reading(stack: Stack) -> None:
    count = stack.live.logs().count('"error":"send_timeout"')
    with undisturbed(stack), connect(stack.live.port) as conn:
        conn.sendall(b"GET /r/flood HTTP/1.1\r\nHost: router.test\r\n\r\n")
        logs = stack.live.logs
        wait_until(lambda: logs().count('"error":"send_timeout"') > count, timeout=20)
    with HTTP.stream("GET", stack.url("flood")) as whole:
        assert sum(len(chunk) for chunk in whole.iter_bytes()) == 200 * 1024 * 1024


def test_a_thousand_idle_connections(stack: Stack) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048 and (hard == resource.RLIM_INFINITY or hard >= 2048):
        resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))  # this process holds 1,000 too
    with contextlib.ExitStack() as idle, undisturbed(stack):
        conns = [idle.enter_context(connect(stack.live.port)) for _ in range(1000)]
        _back_to_normal(stack)  # served while they are all open
        # None sends a byte: each is closed at the header deadline, without a word.
        assert all(read_until_closed(conn, timeout=20) == b"" for conn in conns)
    _back_to_normal(stack)


def _events(stream: Any) -> Iterator[str]:
    for line in stream.iter_lines():
        if line.startswith("data: "):
            yield line


def test_switch_during_streaming(stack: Stack) -> None:
    with undisturbed(stack), httpx.stream("GET", stack.url("colours"), timeout=20) as stream:
        assert stream.headers["x-router-backend"] == "blue"
        events = _events(stream)
        first = next(events)
        stack.routes["colours"] = {**stack.routes["colours"], "active": "green"}
        stack.apply()
        fresh = HTTP.get(stack.url("colours"), timeout=20)
        rest = list(events)
    assert [first, *rest] == [f"data: {i}" for i in range(6)]  # the stream ended where it began
    assert fresh.headers["x-router-backend"] == "green"


