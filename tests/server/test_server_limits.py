"""The proxy listener's request-head limits, against a real uvicorn on loopback with raw sockets.

Covers slowloris, header size, CL+TE smuggling and malformed framing (docs/faults.md)
and, as documentation, how absolute-form targets reach the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from router.server.listener import build_uvicorn_config
from tests.backends import read_request
from tests.raw_http import (
    assert_refused,
    connect,
    exchange,
    get,
    parse_responses,
    read_response,
    read_until_closed,
)

HEADER_TIMEOUT = 0.5
MAX_HEADER_BYTES = 65536
SLOW = 2 * HEADER_TIMEOUT  # longer than the header deadline, far below the keep-alive timeout


@dataclass
class RecordingApp:
    """A raw ASGI app that reads the whole body, records the request and answers 200 JSON."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, headers = await read_request(scope, receive)
        self.calls.append(
            {"path": scope["path"], "raw_path": scope["raw_path"], "headers": headers}
        )
        if scope["path"] == "/slow":
            await asyncio.sleep(SLOW)
        payload = json.dumps({"path": scope["path"], "body": len(body)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


@dataclass
class Listener:
    """A running hardened server: its port, app and the refusal codes it reported."""

    port: int
    app: RecordingApp
    refusals: list[str]
    tasks: set[asyncio.Task[None]] = field(default_factory=set)  # the server's running requests


@contextlib.contextmanager
def hardened_server(**limits: Any) -> Iterator[Listener]:
    """Serve a RecordingApp with build_uvicorn_config on a pre-bound socket, uvloop, in a thread."""
    app = RecordingApp()
    refusals: list[str] = []
    sock = socket.create_server(("127.0.0.1", 0))
    config = build_uvicorn_config(
        app, host="127.0.0.1", sock=sock, lifespan="off", on_refusal=refusals.append, **limits
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        yield Listener(sock.getsockname()[1], app, refusals, server.server_state.tasks)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    with hardened_server(header_timeout=HEADER_TIMEOUT, max_header_bytes=MAX_HEADER_BYTES) as srv:
        yield srv


# row 19: header deadline


def test_trickled_head_gets_408_at_the_deadline_while_others_are_served(listener: Listener) -> None:
    calls_before = len(listener.app.calls)
    with connect(listener.port) as slow:
        slow.sendall(b"GET / HTTP/1.1\r\nHost: router.test\r\n")
        started = time.monotonic()
        slow.settimeout(0.05)
        received = b""
        served_meanwhile = False
        while time.monotonic() - started < 5 and not received:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                slow.sendall(b"X-Trickle: 1\r\n")  # keeps the connection busy, never finishes
            if not served_meanwhile:
                responses, _ = exchange(listener.port, get("/other", "Connection: close"))
                served_meanwhile = [r.status for r in responses] == [200]
            with contextlib.suppress(TimeoutError):
                received = slow.recv(65536) or b"<eof>"
        elapsed = time.monotonic() - started
        data = received + read_until_closed(slow) if received != b"<eof>" else b""
    assert served_meanwhile
    assert HEADER_TIMEOUT * 0.8 <= elapsed < HEADER_TIMEOUT + 3
    [response] = parse_responses(data)
    assert_refused(response, 408, "request_timeout")
    assert [c["path"] for c in listener.app.calls[calls_before:]] == ["/other"]
    assert "request_timeout" in listener.refusals


def test_connection_that_sends_nothing_is_closed_silently(listener: Listener) -> None:
    with connect(listener.port) as idle:
        started = time.monotonic()
        data = read_until_closed(idle)
    assert data == b""
    assert time.monotonic() - started < HEADER_TIMEOUT + 3
    assert "idle_timeout" in listener.refusals


def test_crlf_trickle_between_requests_is_cut(listener: Listener) -> None:
    """Bare CRLFs never start a request but must not hold a connection open forever."""
    with connect(listener.port) as conn:
        conn.sendall(get())
        assert read_response(conn).status == 200
        started = time.monotonic()
        closed = False
        while not closed and time.monotonic() - started < 5:
            try:
                conn.sendall(b"\r\n")
                conn.settimeout(0.1)
                closed = conn.recv(1) == b""
            except TimeoutError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                closed = True
    assert closed


# keep-alive: the deadline covers only incomplete heads


@pytest.mark.parametrize(
    ("first", "pause"),
    [
        (get("/slow"), 0.0),
        (get("/"), SLOW),
        (
            b"POST /upload HTTP/1.1\r\nHost: router.test\r\nContent-Length: 4\r\n\r\n",
            SLOW,  # the body trickles in after the head, slower than the header deadline
        ),
    ],
    ids=["slow-app-response", "idle-between-requests", "slow-request-body"],
)
def test_keep_alive_connection_survives_slow_phases(
    listener: Listener, first: bytes, pause: float
) -> None:
    with connect(listener.port) as conn:
        conn.sendall(first)
        if first.startswith(b"POST"):
            for byte in b"abcd":
                time.sleep(pause / 4)
                conn.sendall(bytes([byte]))
        else:
            time.sleep(pause)  # after the first response: an idle keep-alive gap
        assert read_response(conn).status == 200
        time.sleep(pause)
        conn.sendall(get("/second"))
        second = read_response(conn)
    assert second.status == 200
    assert second.json()["path"] == "/second"


def test_pipelined_requests_are_all_answered(listener: Listener) -> None:
    raw = get("/a") + get("/b") + get("/c", "Connection: close")
    responses, _ = exchange(listener.port, raw)
    assert [r.json()["path"] for r in responses] == ["/a", "/b", "/c"]


# row 20: header size


@pytest.mark.parametrize(
    ("extra", "chunked_send", "status"),
    [
        ([f"X-Big: {'a' * 100_000}"], False, 431),
        ([f"X-Big: {'a' * 100_000}"], True, 431),
        ([f"X-H-{i:04d}: {'v' * 30}" for i in range(2000)], False, 431),
        ([f"X-H-{i:04d}: {'v' * 30}" for i in range(2000)], True, 431),
        ([f"X-Big: {'a' * (MAX_HEADER_BYTES - 200)}"], False, 200),
        ([f"X-Big: {'a' * (MAX_HEADER_BYTES - 200)}"], True, 200),
    ],
    ids=[
        "one-100KB-header",
        "one-100KB-header-in-pieces",
        "2000-headers",
        "2000-headers-in-pieces",
        "just-under-the-cap",
        "just-under-the-cap-in-pieces",
    ],
)
def test_header_size_cap(
    listener: Listener, extra: list[str], chunked_send: bool, status: int
) -> None:
    raw = get("/sized", *extra, "Connection: close")
    calls_before = len(listener.app.calls)
    with connect(listener.port) as conn:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            step = 4096 if chunked_send else len(raw)
            for offset in range(0, len(raw), step):
                conn.sendall(raw[offset : offset + step])
                if chunked_send:
                    time.sleep(0.001)
        [response] = parse_responses(read_until_closed(conn))
    if status == 431:
        assert_refused(response, 431, "headers_too_large")
        assert len(listener.app.calls) == calls_before
    else:
        assert response.status == 200
        assert len(listener.app.calls) == calls_before + 1


def test_oversized_pipelined_head_closes_after_the_previous_response(listener: Listener) -> None:
    """A refusal never interleaves with a response in flight: that one finishes, then close."""
    calls_before = len(listener.app.calls)
    raw = get("/slow") + get("/big", f"X-Big: {'a' * 100_000}")
    responses, _ = exchange(listener.port, raw)
    assert [r.status for r in responses] == [200]
    assert [c["path"] for c in listener.app.calls[calls_before:]] == ["/slow"]


def test_broken_body_behind_a_slow_request_never_interleaves(listener: Listener) -> None:
    """A 400 cannot be sent before the earlier response, so the connection just closes."""
    broken = b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    responses, data = exchange(listener.port, get("/slow") + broken)
    assert data == b""
    assert responses == []


def test_limits_are_per_server() -> None:
    with hardened_server(header_timeout=5.0, max_header_bytes=1024) as small:
        responses, _ = exchange(small.port, get("/", f"X-Big: {'a' * 2000}"))
        assert_refused(responses[0], 431, "headers_too_large")
        assert "1024 bytes" in responses[0].json()["detail"]


# rows 23 and 24: smuggling and malformed framing

MALFORMED = {
    "cl-and-te-then-pipelined": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    ),
    "te-before-cl": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
        b"0\r\n\r\n"
    ),
    "te-identity": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\nabc",
    "te-identity-with-cl": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc"
    ),
    "te-chunked-gzip": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"
    ),
    "te-gzip-chunked": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    ),
    "te-in-http-1.0": b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "conflicting-content-length": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
    ),
    "bare-lf": b"GET / HTTP/1.1\nHost: a\n\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    "nul-in-header": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n",
    "upgrade-with-body": (  # httptools would hand the body to the (absent) upgraded protocol
        b"POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: foo\r\n"
        b"Content-Length: 33\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    ),
    "connect-method": b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
}


@pytest.mark.parametrize("raw", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_framing_is_refused_before_the_app(listener: Listener, raw: bytes) -> None:
    calls_before = len(listener.app.calls)
    responses, data = exchange(listener.port, raw)
    assert data.count(b"HTTP/1.1 ") == 1, data
    [response] = responses
    assert response.status in (400, 501)
    assert_refused(
        response, response.status, "bad_request" if response.status == 400 else "not_implemented"
    )
    assert len(listener.app.calls) == calls_before


# request targets (documentation; the proxy builds upstream URLs from raw_path alone)


@pytest.mark.parametrize(
    ("target", "path", "raw_path"),
    [
        ("http://169.254.169.254/x?q=1", "/x", b"/x"),
        ("//evil.example/x", "//evil.example/x", b"//evil.example/x"),
        ("/a%2F..%2Fadmin", "/a/../admin", b"/a%2F..%2Fadmin"),
        ("*", "*", b"*"),
        ("/v2/models/m/infer", "/v2/models/m/infer", b"/v2/models/m/infer"),
        ("/v2/models/m/infer?x=/y", "/v2/models/m/infer", b"/v2/models/m/infer"),
    ],
    ids=["absolute-form", "double-slash", "encoded-slashes", "asterisk", "plain", "query"],
)
def test_request_target_forms_reach_the_app_like_this(
    listener: Listener, target: str, path: str, raw_path: bytes
) -> None:
    """httptools keeps only the path of an absolute-form target; Host stays the client's own."""
    calls_before = len(listener.app.calls)
    responses, _ = exchange(listener.port, get(target, "Connection: close"))
    assert [r.status for r in responses] == [200]
    [call] = listener.app.calls[calls_before:]
    assert (call["path"], call["raw_path"]) == (path, raw_path)
    assert call["headers"]["host"] == "router.test"


def test_config_pins_the_safe_settings() -> None:
    config = build_uvicorn_config(RecordingApp(), host="127.0.0.1", port=1)
    assert (config.loop, config.ws, config.lifespan) == ("uvloop", "none", "on")
    assert (config.proxy_headers, config.access_log, config.server_header) == (False, False, False)
    assert config.log_config is None
    with pytest.raises(TypeError, match="http"):
        build_uvicorn_config(RecordingApp(), host="127.0.0.1", port=1, http="h11")
    with pytest.raises(ValueError, match="exactly one"):
        build_uvicorn_config(RecordingApp(), host="127.0.0.1")


def _drained(tasks: set[asyncio.Task[None]]) -> bool:
    deadline = time.monotonic() + 10
    while tasks and time.monotonic() < deadline:
        time.sleep(0.01)
    return not tasks


def test_finished_requests_leave_no_task_behind(listener: Listener) -> None:
    with socket.create_connection(("127.0.0.1", listener.port)) as sock:
        for _ in range(5):
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock).status == 200
    assert _drained(listener.tasks)
