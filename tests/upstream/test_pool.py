"""The pool: keep-alive reuse, Connection: close, the connection limit, idle eviction, retries."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import pytest

from router.upstream import (
    PoolTimeoutError,
    UpstreamConnectError,
    UpstreamPool,
    UpstreamResetError,
)
from tests.backends import RawServer, described, eventually, read_head
from tests.support import ServerThread

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _port(pool: UpstreamPool, path: bytes = b"/echo") -> int:
    port: int = described(await (await pool.request(b"GET", path, [])).read())["port"]
    return port


async def test_sequential_requests_reuse_one_connection(pool: UpstreamPool) -> None:
    ports = {await _port(pool) for _ in range(5)}
    assert len(ports) == 1
    assert (pool.in_use, pool.idle) == (0, 1)


async def test_connection_close_from_the_server_is_not_reused(pool: UpstreamPool) -> None:
    before = await _port(pool)
    response = await pool.request(b"GET", b"/close", [])
    assert (b"connection", b"close") in response.headers
    assert await response.read() == b"bye"
    assert (pool.in_use, pool.idle) == (0, 0)
    assert await _port(pool) != before


async def test_unread_body_closes_the_connection(pool: UpstreamPool) -> None:
    first = await pool.request(b"GET", b"/stream?n=3", [])
    await first.aclose()
    await first.aclose()  # idempotent
    assert (pool.in_use, pool.idle) == (0, 0)
    assert await _port(pool) > 0


async def test_a_dropped_unclosed_response_gives_its_slot_back(pool: UpstreamPool) -> None:
    response = await pool.request(b"GET", b"/stream?n=2", [])
    assert pool.in_use == 1
    with pytest.warns(ResourceWarning, match="never closed"):
        del response
        gc.collect()
    await eventually(lambda: pool.in_use == 0)
    assert pool.idle == 0


async def test_concurrent_requests_stay_within_max_connections(backend: ServerThread) -> None:
    pool = UpstreamPool(backend.url, max_connections=4)
    try:
        results = await asyncio.gather(*(_port(pool) for _ in range(40)))
    finally:
        await pool.aclose()
    assert len(set(results)) <= 4
    assert pool.in_use == 0


async def test_full_pool_waits_then_raises_pool_timeout(backend: ServerThread) -> None:
    pool = UpstreamPool(backend.url, max_connections=1, pool_timeout=0.2)
    held = await pool.request(b"GET", b"/stream?n=2", [])
    with pytest.raises(PoolTimeoutError) as caught:
        await pool.request(b"GET", b"/echo", [])
    assert caught.value.kind == "pool"
    assert pool.in_use == 1
    await held.aclose()
    assert await _port(pool) > 0
    await pool.aclose()


async def test_waiters_are_served_in_arrival_order(backend: ServerThread) -> None:
    pool = UpstreamPool(backend.url, max_connections=1, pool_timeout=5)
    held = await pool.request(b"GET", b"/echo", [])
    order: list[int] = []

    async def wait_in_line(index: int) -> None:
        response = await pool.request(b"GET", b"/echo", [])
        order.append(index)
        await response.read()

    tasks = []
    for index in range(5):
        tasks.append(asyncio.create_task(wait_in_line(index)))
        await eventually(lambda: len(pool._waiters) == len(tasks))
    await held.read()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert (pool.in_use, pool.idle) == (0, 1)
    await pool.aclose()


async def test_idle_connections_are_evicted_after_idle_timeout(backend: ServerThread) -> None:
    pool = UpstreamPool(backend.url, idle_timeout=0.2)
    first = await _port(pool)
    assert pool.idle == 1
    await eventually(lambda: pool.idle == 0)
    assert await _port(pool) != first
    await pool.aclose()


async def test_max_idle_caps_the_kept_connections(backend: ServerThread) -> None:
    pool = UpstreamPool(backend.url, max_connections=8, max_idle=2)

    async def slow_get() -> bytes:
        return await (await pool.request(b"GET", b"/stream?n=2", [])).read()

    assert await asyncio.gather(*(slow_get() for _ in range(6))) == [b"0;1;"] * 6
    assert (pool.in_use, pool.idle) == (0, 2)
    await pool.aclose()


async def test_idle_connection_closed_by_the_server_is_dropped() -> None:
    async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(OK)
        await asyncio.sleep(0.05)

    async with RawServer(answer_then_close) as server:
        pool = UpstreamPool(server.url)
        assert await (await pool.request(b"POST", b"/", [], b"x")).read() == b"ok"
        assert pool.idle == 1
        await eventually(lambda: pool.idle == 0)
        assert await (await pool.request(b"POST", b"/", [], b"x")).read() == b"ok"
        assert server.connections == 2
        await pool.aclose()


async def test_stale_connection_unwritten_is_retried_even_for_post() -> None:
    async def answer_each_with_body(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            head = await read_head(reader)
            if b"chunked" in head:
                await reader.readuntil(b"0\r\n\r\n")
            writer.write(OK)

    async with RawServer(answer_each_with_body) as server:
        pool = UpstreamPool(server.url)
        await (await pool.request(b"GET", b"/", [])).read()
        # The backend's FIN is already seen by the transport, not yet by the pool.
        stale = pool._idle[-1]
        assert stale.transport is not None
        stale.transport.close()
        pulled: list[bytes] = []

        async def body() -> AsyncIterator[bytes]:
            for part in (b"a", b"b"):
                pulled.append(part)
                yield part

        assert await (await pool.request(b"POST", b"/", [], body())).read() == b"ok"
        assert pulled == [b"a", b"b"]
        assert server.connections == 2
        await pool.aclose()


@pytest.mark.parametrize(
    ("method", "body", "retried"),
    [(b"GET", None, True), (b"OPTIONS", None, True), (b"POST", b"x", False)],
    ids=["get-retried", "options-retried", "post-not-retried"],
)
async def test_reset_before_any_response_byte(
    method: bytes, body: bytes | None, retried: bool
) -> None:
    async def read_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)

    async with RawServer(read_then_close) as server:
        pool = UpstreamPool(server.url)
        with pytest.raises(UpstreamResetError) as caught:
            await pool.request(method, b"/", [], body)
        assert (caught.value.request_sent, caught.value.response_started) == (True, False)
        assert caught.value.kind == "reset"
        assert server.connections == (2 if retried else 1)
        assert (pool.in_use, pool.idle) == (0, 0)
        await pool.aclose()


@pytest.mark.parametrize(
    ("method", "body", "retried"),
    [(b"GET", None, True), (b"POST", b"x", False)],
    ids=["get-retried", "post-raises"],
)
async def test_keepalive_closed_just_before_reuse(
    method: bytes, body: bytes | None, retried: bool
) -> None:
    close_now = asyncio.Event()

    async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(OK)
        await close_now.wait()
        writer.transport.abort()  # like uvicorn's keep-alive timeout firing

    async with RawServer(answer_then_close) as server:
        pool = UpstreamPool(server.url)
        assert await (await pool.request(method, b"/", [], body)).read() == b"ok"
        close_now.set()
        await asyncio.sleep(0)  # the backend closes; the pool has not seen it yet
        assert pool.idle == 1
        if retried:
            assert await (await pool.request(method, b"/", [], body)).read() == b"ok"
        else:
            with pytest.raises(UpstreamResetError) as caught:
                await pool.request(method, b"/", [], body)
            assert caught.value.request_sent
        assert server.connections == (2 if retried else 1)
        await pool.aclose()


async def test_closed_pool_refuses_requests_and_closes_released_connections(
    backend: ServerThread,
) -> None:
    pool = UpstreamPool(backend.url)
    held = await pool.request(b"GET", b"/echo", [])
    await pool.aclose()
    await held.read()
    assert (pool.in_use, pool.idle) == (0, 0)
    with pytest.raises(UpstreamConnectError, match="closed"):
        await pool.request(b"GET", b"/echo", [])


@pytest.mark.parametrize(
    "url",
    ["https://h", "http://user:pw@h", "http://h/?q=1", "ftp://h", "http://"],
    ids=["https", "userinfo", "query", "scheme", "no-host"],
)
def test_invalid_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        UpstreamPool(url)
