"""Slow clients through a real router: ``proxy.body_timeout`` and ``proxy.send_timeout``
(docs/faults.md).

Issue 14, item 3: clients that paused mid-body, or did not read a large answer, held every
connection of a backend (``max_connections``) for as long as they liked; other users got 503.
Each test stalls more clients than the backend has connections, then checks that the stalled
ones are cut off at the deadline and that a well-behaved request is served afterwards.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

from tests.backends import echo_app, flood_app
from tests.raw_http import connect, parse_responses, read_until_closed
from tests.support import RouterProcess, servers, shared_client, wait_until

pytestmark = pytest.mark.e2e  # runs a router process
HTTP = shared_client()
STALLED = 3  # more than max_connections

CONFIG = """
state: {{store: memory}}
proxy: {{body_timeout: 1s, send_timeout: 1s}}
backends:
  echo: {{url: "{echo}", max_connections: 2, timeout: {{read: 60s}}}}
  flood: {{url: "{flood}", max_connections: 2, timeout: {{read: 60s}}}}
routes:
  - {{name: flood, match: {{path_prefix: /flood}}, strategy: {{type: direct, backend: flood}}}}
  - {{name: echo, match: {{path_prefix: /}}, strategy: {{type: direct, backend: echo}}}}
"""


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    tmp = tmp_path_factory.mktemp("slow")
    with servers(echo_app(None, "echo"), flood_app()) as (echo, flood):
        config = tmp / "router.yaml"
        config.write_text(CONFIG.format(echo=echo.url, flood=flood.url))
        with RouterProcess(config) as router:
            yield router


def _post_head(length: int) -> bytes:
    return (
        b"POST /upload HTTP/1.1\r\nHost: router.test\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: %d\r\n\r\n" % length
    )


def _served(router: RouterProcess) -> bool:
    response = HTTP.post(f"{router.url}/upload", content=b"y" * 200_000)
    return response.status_code == 200 and response.json()["body_length"] == 200_000


def test_a_client_pausing_mid_body_gets_408_and_frees_the_backend(router: RouterProcess) -> None:
    with contextlib.ExitStack() as stack:
        stalled = [stack.enter_context(connect(router.port)) for _ in range(STALLED)]
        for conn in stalled:
            # Larger than the router reads whole: it streams, so an upstream connection is taken.
            conn.sendall(_post_head(1_000_000) + b"z" * 100_000)
        answers = [read_until_closed(conn, timeout=20) for conn in stalled]
    for raw in answers:
        responses = parse_responses(raw)
        assert [r.status for r in responses] == [408], raw[:300]
        assert responses[0].json()["error"] == "request_timeout"
    assert _served(router)
    wait_until(lambda: router.logs().count('"error":"body_timeout"') >= STALLED)
    assert '"status":408' in router.logs()


def test_a_client_answered_early_is_closed_at_the_body_deadline_without_a_second_answer(
    router: RouterProcess,
) -> None:
    with connect(router.port) as conn:  # over max_request_body: 413 before the body is read
        conn.sendall(_post_head(20 * 1024 * 1024) + b"z" * 100_000)
        raw = read_until_closed(conn, timeout=20)
    assert [r.status for r in parse_responses(raw)] == [413]


def test_a_client_not_reading_is_cut_off_and_frees_the_backend(router: RouterProcess) -> None:
    with contextlib.ExitStack() as stack:
        stalled = []
        for _ in range(STALLED):
            conn = stack.enter_context(connect(router.port))
            conn.sendall(b"GET /flood HTTP/1.1\r\nHost: router.test\r\n\r\n")
            stalled.append(conn)
        # None of them reads: once the router's writes stay paused for send_timeout it
        # aborts the connection. Reading then drains what was buffered, and hits the end.
        wait_until(lambda: router.logs().count('"error":"send_timeout"') >= STALLED, timeout=20)
        received = [_drain(conn) for conn in stalled]
    for size in received:
        assert size < 200 * 1024 * 1024  # cut off, never the whole answer
    assert _served(router)
    whole = HTTP.get(f"{router.url}/flood/once", timeout=60)  # a reading client gets it all
    assert len(whole.content) == 200 * 1024 * 1024


def _drain(conn: socket.socket) -> int:
    """Bytes read until the router closes or resets the connection (fails on a 30 s silence)."""
    size = 0
    conn.settimeout(30)
    with contextlib.suppress(ConnectionResetError):
        while chunk := conn.recv(1 << 20):
            size += len(chunk)
    return size


