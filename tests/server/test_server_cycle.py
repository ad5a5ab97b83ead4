"""The proxy listener's response path (router.server.cycle) and its swept deadlines.

The cycle is unit-tested against a transport that records its writes (how many writes,
and what bytes, is the point); the keep-alive sweep against a real server with raw sockets.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.flow_control import FlowControl

from router.server.cycle import MessageEvent, ProxyCycle
from router.server.keys import BODY_FOLLOWS, WHOLE_BODY
from router.server.listener import build_uvicorn_config
from router.server.sweeper import sweeper_for
from tests.server.test_server_limits import RecordingApp, hardened_server, read_until_closed


class RecordingTransport(asyncio.Transport):
    """Keeps every write; closing is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.writes.append(b"".join(list_of_data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def make_cycle(
    method: str = "GET", keep_alive: bool = True
) -> tuple[ProxyCycle, RecordingTransport]:
    transport = RecordingTransport()
    log = logging.getLogger("test")
    cycle = ProxyCycle(
        scope={"type": "http", "method": method},  # type: ignore[typeddict-item]
        transport=transport,
        flow=FlowControl(transport),
        logger=log,
        access_logger=log,
        access_log=False,
        default_headers=[(b"date", b"Sun, 29 Nov 2026 16:00:00 GMT")],
        message_event=MessageEvent(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )
    cycle.loop = asyncio.get_running_loop()
    return cycle, transport


def start(headers: list[tuple[bytes, bytes]], status: int = 200, **extra: Any) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": headers, **extra}


def body(data: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


JSON_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"2")]


async def test_a_body_already_here_is_handed_over_as_it_is_then_the_end_waits() -> None:
    cycle, _ = make_cycle(method="POST")
    payload = b'{"inputs": [1, 2, 3]}'
    cycle.body, cycle.more_body = payload, False  # as the protocol leaves a one-piece body
    cycle.message_event.set()
    message = await cycle.receive()
    assert message == {"type": "http.request", "body": payload, "more_body": False}
    assert message["body"] is payload  # not copied
    after = asyncio.ensure_future(cycle.receive())
    await asyncio.sleep(0)
    assert not after.done()  # nothing more comes until the response is over
    await cycle.send(start(JSON_HEADERS))
    await cycle.send(body(b"{}"))
    assert await asyncio.wait_for(after, 5) == {"type": "http.disconnect"}


async def test_a_body_joined_from_pieces_is_handed_over_as_bytes() -> None:
    cycle, _ = make_cycle(method="POST")
    cycle.body = bytearray(b"ab") + b"cd"
    cycle.message_event.set()
    message = await cycle.receive()
    assert message["body"] == b"abcd" and type(message["body"]) is bytes
    assert message["more_body"] is True


async def test_message_event_wakes_its_waiters_and_forgets_a_cancelled_one() -> None:
    event = MessageEvent()
    waiter = asyncio.ensure_future(event.wait())
    gone = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    assert event._futures and not waiter.done()
    event.set()
    assert await asyncio.wait_for(waiter, 5) is True
    assert event.is_set() and not event._futures
    event.clear()
    assert not event.is_set()
    event.set()
    assert await event.wait() is True  # set already: no future


async def test_head_and_small_body_leave_in_one_write() -> None:
    cycle, transport = make_cycle()
    await cycle.send(start(JSON_HEADERS))
    await cycle.send(body(b"{}"))
    assert transport.writes == [
        b"HTTP/1.1 200 OK\r\ndate: Sun, 29 Nov 2026 16:00:00 GMT\r\n"
        b"content-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
    ]
    assert cycle.response_complete


async def test_a_head_without_a_body_in_the_same_turn_is_flushed_alone() -> None:
    cycle, transport = make_cycle()
    await cycle.send(start([(b"content-type", b"text/event-stream")]))
    assert transport.writes == []
    await asyncio.sleep(0)  # one loop turn: the held head goes out by itself
    assert len(transport.writes) == 1
    assert transport.writes[0].endswith(b"transfer-encoding: chunked\r\n\r\n")
    await cycle.send(body(b"data: 1\n\n", more=True))
    await cycle.send(body(b""))
    assert transport.writes[1:] == [b"9\r\ndata: 1\n\n\r\n", b"0\r\n\r\n"]


async def test_a_whole_body_given_with_the_head_completes_the_response_in_one_write() -> None:
    cycle, transport = make_cycle()
    await cycle.send(start(JSON_HEADERS, **{WHOLE_BODY: b"{}"}))
    assert cycle.response_complete and cycle._flush_handle is None
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\n{}")
    with pytest.raises(RuntimeError, match="after response already completed"):
        await cycle.send(body(b"more"))


async def test_body_follows_hint_schedules_no_flush() -> None:
    cycle, transport = make_cycle()
    await cycle.send(start(JSON_HEADERS, **{BODY_FOLLOWS: True}))
    assert cycle._flush_handle is None
    await cycle.send(body(b"{}"))
    assert len(transport.writes) == 1


async def test_large_first_chunk_is_written_beside_the_head_not_copied() -> None:
    cycle, transport = make_cycle()
    payload = b"x" * (200 * 1024)
    await cycle.send(start([(b"content-length", str(len(payload)).encode())]))
    await cycle.send(body(payload))
    assert len(transport.writes) == 1 and transport.writes[0].endswith(payload)


async def test_head_answer_has_no_body_and_connection_close_closes() -> None:
    cycle, transport = make_cycle(method="HEAD", keep_alive=False)
    await cycle.send(start(JSON_HEADERS))
    await cycle.send(body(b""))
    (written,) = transport.writes
    assert written.endswith(b"connection: close\r\n\r\n")
    assert transport.closed


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-a", b"ok\r\nset-cookie: evil=1")],
        [(b"x-a", b"lone\nlf")],
        [(b"x-a", b"lone\rcr")],
        [(b"x-a", b"nul\x00")],
        [(b"bad name", b"v")],
        [(b"", b"v")],
    ],
    ids=["crlf-injection", "lf", "cr", "nul", "space-in-name", "empty-name"],
)
async def test_invalid_headers_are_refused(headers: list[tuple[bytes, bytes]]) -> None:
    cycle, transport = make_cycle()
    with pytest.raises(RuntimeError, match="Invalid HTTP header"):
        await cycle.send(start(headers))
    assert transport.writes == []


async def test_tab_in_a_value_is_allowed() -> None:
    cycle, transport = make_cycle()
    await cycle.send(start([(b"x-a", b"a\tb"), (b"content-length", b"0")]))
    await cycle.send(body(b""))
    assert b"x-a: a\tb\r\n" in transport.writes[0]


async def test_body_longer_than_content_length_is_an_error() -> None:
    cycle, _ = make_cycle()
    await cycle.send(start(JSON_HEADERS))
    with pytest.raises(RuntimeError, match="longer than Content-Length"):
        await cycle.send(body(b"{}{}"))


def test_idle_keep_alive_connection_is_closed_by_the_sweep() -> None:
    with hardened_server(header_timeout=5.0, timeout_keep_alive=0.3) as srv:
        conn = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        with conn:
            conn.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            started = time.monotonic()
            data = read_until_closed(conn, timeout=5.0)
            waited = time.monotonic() - started
        assert data.startswith(b"HTTP/1.1 200 OK")
        # Closed after the keep-alive timeout (0.3 s), within a sweep period or two.
        assert 0.25 <= waited < 3.0


def test_a_busy_keep_alive_connection_is_not_closed() -> None:
    with hardened_server(header_timeout=5.0, timeout_keep_alive=0.3) as srv:
        conn = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        with conn:
            for _ in range(8):  # 8 x 0.1 s idle gaps: longer in all than the timeout
                conn.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
                assert conn.recv(65536).startswith(b"HTTP/1.1 200 OK")
                time.sleep(0.1)


class Member:
    """A connection stand-in whose deadline is a loop time."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired_at: float | None = None

    def check_deadlines(self, now: float) -> None:
        if self.fired_at is None and now >= self.deadline:
            self.fired_at = now


async def test_sweeper_fires_past_deadlines_within_a_period_and_follows_new_periods() -> None:
    loop = asyncio.get_running_loop()
    owner = object()
    sweeper = sweeper_for(loop, owner, 0.05)
    soon, later = Member(loop.time() + 0.1), Member(loop.time() + 60)
    sweeper.add(soon)
    sweeper.add(later)
    deadline = loop.time() + 2
    while soon.fired_at is None and loop.time() < deadline:
        await asyncio.sleep(0.01)
    assert soon.fired_at is not None and soon.fired_at - soon.deadline < 0.05 + 0.05
    assert later.fired_at is None
    assert sweeper_for(loop, owner, 0.2) is sweeper and sweeper.period == 0.2
    sweeper.discard(soon)
    sweeper.discard(later)
    # an empty sweeper stops at its next sweep and is forgotten
    stop_by = loop.time() + 2
    while sweeper._handle is not None and loop.time() < stop_by:
        await asyncio.sleep(0.01)
    assert sweeper_for(loop, owner, 0.05) is not sweeper


async def test_a_request_cancelled_before_it_started_leaves_no_task_behind() -> None:
    # Its bytes and the client's leaving are read in one go: connection_lost cancels a task
    # that never ran a step, so nothing inside it can take it off the server's set.
    config = build_uvicorn_config(RecordingApp(), host="127.0.0.1", port=1, lifespan="off")
    config.load()
    state = uvicorn.server.ServerState()
    protocol = config.http_protocol_class(config=config, server_state=state, app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    assert len(state.tasks) == 1
    protocol.connection_lost(ConnectionResetError())
    deadline = time.monotonic() + 10
    while state.tasks and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not state.tasks
