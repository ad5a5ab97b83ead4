"""50 MB each way through the pool with bounded memory: backpressure in both directions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from router.upstream import UpstreamPool
from router.upstream.protocol import HIGH_WATER
from tests.backends import MB, Counters
from tests.support import ServerThread

SIZE_MB = 50
MAX_LAG = 24 * MB  # kernel socket buffers on loopback plus a little; far below 50 MB


async def test_large_response_is_streamed_with_bounded_buffering(backend: ServerThread) -> None:
    pool = UpstreamPool(backend.url, read_timeout=10)
    response = await pool.request(b"GET", b"/big?mb=%d" % SIZE_MB, [])
    received = 0
    largest = 0
    lag = 0
    async for chunk in response:
        received += len(chunk)
        largest = max(largest, len(chunk))
        lag = max(lag, Counters.produced - received)
        if received == len(chunk):
            await asyncio.sleep(0.3)  # a slow client: the backend must be held back
            lag = max(lag, Counters.produced - received)
    assert received == SIZE_MB * MB
    # Each chunk is everything buffered at once: it never exceeds the high-water
    # mark plus one socket read (256 KiB on both loops).
    assert largest <= HIGH_WATER + 256 * 1024
    assert lag < MAX_LAG
    assert (pool.in_use, pool.idle) == (0, 1)
    await pool.aclose()


async def test_large_request_body_is_streamed_under_write_flow_control(
    backend: ServerThread,
) -> None:
    pool = UpstreamPool(backend.url, read_timeout=10)
    produced = 0
    lag = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal produced, lag
        chunk = b"y" * 65536
        while produced < SIZE_MB * MB:
            lag = max(lag, produced - Counters.received)
            produced += len(chunk)
            yield chunk

    for content_length in (SIZE_MB * MB, None):
        produced = lag = 0
        response = await pool.request(b"POST", b"/upload", [], body(), content_length)
        assert await response.read() == str(SIZE_MB * MB).encode()
        assert lag < MAX_LAG
    assert (pool.in_use, pool.idle) == (0, 1)
    await pool.aclose()
