"""Failures map to the right error and never leave a slot or a dirty connection behind."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from router.upstream import (
    UpstreamConnectError,
    UpstreamConnectTimeout,
    UpstreamPool,
    UpstreamProtocolError,
    UpstreamReadTimeout,
    UpstreamResetError,
)
from tests.backends import RawServer, answer_each, eventually, read_head
from tests.support import ServerThread, free_port


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A listening port whose accept queue is full, so new SYNs are dropped (connect hangs)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port: int = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):
                filler = socket.socket()
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
                fillers.append(filler)
            yield port
        finally:
            for filler in fillers:
                filler.close()


async def test_connect_refused_is_a_connect_error() -> None:
    pool = UpstreamPool(f"http://127.0.0.1:{free_port()}", connect_timeout=5)
    with pytest.raises(UpstreamConnectError) as caught:
        await pool.request(b"GET", b"/", [])
    assert type(caught.value) is UpstreamConnectError
    assert caught.value.kind == "connect"
    assert pool.in_use == 0


async def test_connect_timeout_leaves_the_body_untouched() -> None:
    pulled = []

    async def body() -> AsyncIterator[bytes]:
        pulled.append(1)
        yield b"x"

    with unanswered_port() as port:
        pool = UpstreamPool(f"http://127.0.0.1:{port}", connect_timeout=0.2)
        with pytest.raises(UpstreamConnectTimeout) as caught:
            await pool.request(b"POST", b"/", [], body())
    assert caught.value.kind == "timeout"
    assert isinstance(caught.value, UpstreamConnectError)
    assert pulled == []
    assert pool.in_use == 0


async def test_read_timeout_waiting_for_the_head() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await reader.read()

    async with RawServer(never_answer) as server:
        pool = UpstreamPool(server.url, read_timeout=0.2)
        with pytest.raises(UpstreamReadTimeout) as caught:
            await pool.request(b"GET", b"/", [])
        assert caught.value.kind == "timeout"
        assert (pool.in_use, pool.idle) == (0, 0)
        await eventually(lambda: server.closed == 1)


async def test_read_timeout_between_body_reads() -> None:
    async def stall_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf!")
        await reader.read()

    async with RawServer(stall_mid_body) as server:
        pool = UpstreamPool(server.url, read_timeout=0.2)
        response = await pool.request(b"GET", b"/", [])
        assert await response.__anext__() == b"half!"
        with pytest.raises(UpstreamReadTimeout):
            await response.__anext__()
        assert (pool.in_use, pool.idle) == (0, 0)
        await eventually(lambda: server.closed == 1)


async def test_read_timeout_is_per_read_not_per_response(backend: ServerThread) -> None:
    pool = UpstreamPool(backend.url, read_timeout=0.25)
    response = await pool.request(b"GET", b"/stream?n=10", [])  # 10 chunks, 50 ms apart
    assert await response.read() == b"".join(b"%d;" % i for i in range(10))
    await pool.aclose()


@pytest.mark.parametrize(
    "reply",
    [
        b"HELLO WORLD\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (1 << 20) + b"\r\nContent-Length: 2\r\n\r\nok",
    ],
    ids=["garbage", "bad-status", "double-content-length", "bad-chunk-size", "huge-head"],
)
async def test_malformed_responses_are_protocol_errors(reply: bytes) -> None:
    async with RawServer(answer_each(reply)) as server:
        pool = UpstreamPool(server.url)
        with pytest.raises(UpstreamProtocolError) as caught:
            response = await pool.request(b"GET", b"/", [])
            await response.read()
        assert caught.value.kind == "protocol"
        assert (pool.in_use, pool.idle) == (0, 0)
        await eventually(lambda: server.closed == 1)


async def test_close_mid_body_raises_reset_from_the_iterator() -> None:
    async def close_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")

    async with RawServer(close_mid_body) as server:
        pool = UpstreamPool(server.url)
        response = await pool.request(b"GET", b"/", [])
        received = b""
        with pytest.raises(UpstreamResetError) as caught:
            async for chunk in response:
                received += chunk
        assert received == b"0123456789"
        assert (caught.value.request_sent, caught.value.response_started) == (True, True)
        assert (pool.in_use, pool.idle) == (0, 0)


async def test_close_before_responding_on_a_fresh_connection() -> None:
    async def read_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(len(b"POST / HTTP/1.1\r\n"))

    async with RawServer(read_then_close) as server:
        pool = UpstreamPool(server.url)
        with pytest.raises(UpstreamResetError) as caught:
            await pool.request(b"POST", b"/", [], b"payload")
        assert caught.value.request_sent is True
        assert caught.value.response_started is False
        assert server.connections == 1
        assert pool.in_use == 0


@pytest.mark.parametrize(
    ("parts", "content_length", "message"),
    [((b"abc",), 5, "of 3 bytes"), ((b"abc", b"def"), 4, "longer")],
    ids=["shorter", "longer"],
)
async def test_body_not_matching_content_length_is_refused(
    pool: UpstreamPool, parts: tuple[bytes, ...], content_length: int, message: str
) -> None:
    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    with pytest.raises(ValueError, match=message):
        await pool.request(b"POST", b"/echo", [], body(), content_length)
    assert (pool.in_use, pool.idle) == (0, 0)
    with pytest.raises(ValueError, match="does not match"):
        await pool.request(b"POST", b"/echo", [], b"abc", 2)


async def test_early_answer_stops_the_upload_and_drops_the_connection() -> None:
    async def refuse_early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig!")
        while await reader.read(65536):
            pass

    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(200):
            pulled += 1
            yield b"x" * 65536
            await asyncio.sleep(0.005)

    async with RawServer(refuse_early) as server:
        pool = UpstreamPool(server.url)
        response = await pool.request(b"POST", b"/", [], body())
        assert (response.status, await response.read()) == (413, b"big!")
        assert pulled < 200
        assert (pool.in_use, pool.idle) == (0, 0)
        await eventually(lambda: server.closed == 1)
