"""Cancellation at any point closes the connection and frees the slot (httpcore #1093)."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from router.upstream import UpstreamPool
from tests.backends import RawServer, eventually, read_head
from tests.support import ServerThread
from tests.upstream.test_failures import unanswered_port


async def test_cancel_while_waiting_for_the_head_closes_the_connection() -> None:
    got_request = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        got_request.set()
        await reader.read()

    async with RawServer(never_answer) as server:
        pool = UpstreamPool(server.url)
        task = asyncio.create_task(pool.request(b"GET", b"/", []))
        await got_request.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (pool.in_use, pool.idle) == (0, 0)
        await eventually(lambda: server.closed == 1)


async def test_cancel_mid_body_closes_the_connection() -> None:
    async def stall_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf!")
        await reader.read()

    async with RawServer(stall_mid_body) as server:
        pool = UpstreamPool(server.url)
        response = await pool.request(b"GET", b"/", [])
        assert await response.__anext__() == b"half!"
        task = asyncio.create_task(response.__anext__())
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (pool.in_use, pool.idle) == (0, 0)
        await response.aclose()
        await eventually(lambda: server.closed == 1)


async def test_cancel_while_connecting_frees_the_slot() -> None:
    with unanswered_port() as port:
        pool = UpstreamPool(f"http://127.0.0.1:{port}", max_connections=1, connect_timeout=5)
        task = asyncio.create_task(pool.request(b"GET", b"/", []))
        await eventually(lambda: pool.in_use == 1)
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.in_use == 0


async def test_cancel_while_queued_for_a_slot(backend: ServerThread) -> None:
    pool = UpstreamPool(backend.url, max_connections=1)
    held = await pool.request(b"GET", b"/echo", [])
    queued = asyncio.create_task(pool.request(b"GET", b"/echo", []))
    await eventually(lambda: len(pool._waiters) == 1)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert not pool._waiters
    await held.read()
    assert (pool.in_use, pool.idle) == (0, 1)
    await pool.aclose()


async def test_cancelled_right_after_being_handed_a_connection_passes_it_on(
    backend: ServerThread,
) -> None:
    pool = UpstreamPool(backend.url, max_connections=1)
    held = await pool.request(b"GET", b"/echo", [])
    first = asyncio.create_task(pool.request(b"GET", b"/echo", []))
    await eventually(lambda: len(pool._waiters) == 1)
    second = asyncio.create_task(pool.request(b"GET", b"/echo", []))
    await eventually(lambda: len(pool._waiters) == 2)
    await held.read()  # hands the connection to `first`, which has not resumed yet
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    response = await asyncio.wait_for(second, 5)
    assert response.status == 200
    await response.read()
    assert (pool.in_use, pool.idle) == (0, 1)
    await pool.aclose()


async def test_cancellation_storm_leaves_the_pool_healthy(backend: ServerThread) -> None:
    pool = UpstreamPool(backend.url, max_connections=10, pool_timeout=5, connect_timeout=2)
    rng = random.Random(1093)

    async def fetch() -> bytes:
        async with await pool.request(b"GET", b"/storm", []) as response:
            return await response.read()

    async def cancelled_by_timeout(delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(fetch(), delay)

    async def cancelled_by_caller(delay: float) -> None:
        task = asyncio.create_task(fetch())
        await asyncio.sleep(delay)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    storm = [
        (cancelled_by_timeout if rng.random() < 0.5 else cancelled_by_caller)(
            rng.choice([0.0, rng.random() * 0.003, rng.random() * 0.05])
        )
        for _ in range(200)
    ]
    await asyncio.gather(*storm)
    assert (pool.in_use, len(pool._waiters)) == (0, 0)
    bodies = await asyncio.gather(*(fetch() for _ in range(50)))
    assert bodies == [b"x" * 3000] * 50
    assert pool.in_use == 0
    assert pool.idle <= 10
    await pool.aclose()
