"""A keep-alive connection pool for one backend, with a bounded wait for a free slot.

Accounting, kept true across every await and cancellation:

- ``_in_use`` counts the slots checked out: a connection in an exchange, one
  being opened, or one handed to a waiter that has not resumed yet.
- ``_idle`` holds clean connections, most recently used on the right (reused
  first, so the surplus ages out on the left where the sweeper looks).
- ``_busy`` (the checked-out connections) is scanned by one periodic tick for
  read timeouts, instead of a timer per request.
- ``_in_use + len(_idle) <= max_connections``, and a waiter exists only while
  the pool is full: a freed slot or a released connection goes straight to the
  oldest waiter (FIFO), so a newcomer can never jump the queue.

Every path that gives up a slot (connect failure, cancellation anywhere, an
error, a dirty response) goes through :meth:`UpstreamPool._release` or
:meth:`UpstreamPool._free_slot`; no state is left half-done on cancellation,
which is what leaves httpcore's pool stuck (httpcore #1093).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterable
from urllib.parse import urlsplit

from router.upstream.connection import UpstreamResponse, build_request_head, send_request
from router.upstream.errors import (
    PoolTimeoutError,
    UpstreamConnectError,
    UpstreamConnectTimeout,
    UpstreamResetError,
    safe_to_repeat,
)
from router.upstream.protocol import UpstreamProtocol

__all__ = ["UpstreamPool"]



class UpstreamPool:
    """HTTP/1.1 keep-alive connections to one backend (``http://host:port[/base]``).

    Keeps no cookies, follows no redirects and reads no proxy settings: it
    sends exactly the request it is given, plus Host (when absent) and framing.
    """

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 100,
        connect_timeout: float = 1.0,
        read_timeout: float = 30.0,
        pool_timeout: float = 5.0,
        idle_timeout: float = 30.0,
        max_idle: int | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or "@" in parts.netloc:
            raise ValueError(f"expected http://host[:port][/base], got {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"a backend URL has no query or fragment: {url!r}")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.url = url
        self._host = parts.hostname
        self._port = parts.port or 80
        self._base = parts.path.rstrip("/").encode("ascii")
        self._host_line = b"host: " + parts.netloc.encode("idna")
        self._max = max_connections
        self._max_idle = max_connections if max_idle is None else max_idle
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pool_timeout = pool_timeout
        self._idle_timeout = idle_timeout
        self._idle: deque[UpstreamProtocol] = deque()
        self._waiters: deque[asyncio.Future[UpstreamProtocol | None]] = deque()
        self._in_use = 0
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._busy: set[UpstreamProtocol] = set()  # checked out: watched for read timeouts
        self._ticker: asyncio.TimerHandle | None = None
        self._tick_every = min(read_timeout / 4, 1.0)

    def __repr__(self) -> str:
        return f"<UpstreamPool {self.url} in_use={self._in_use} idle={len(self._idle)}>"

    @property
    def in_use(self) -> int:
        """Connections checked out (in an exchange, being opened, or just handed over)."""
        return self._in_use

    @property
    def idle(self) -> int:
        """Clean keep-alive connections waiting to be reused."""
        return len(self._idle)

    async def request(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterable[bytes] | bytes | None = None,
        content_length: int | None = None,
    ) -> UpstreamResponse:
        """Send one request; return once the final (non-1xx) response head has arrived.

        ``target`` is the raw path and query, appended to the base path as
        bytes. ``headers`` must not carry framing headers: the pool adds
        Content-Length (``content_length`` given, or a bytes body) or chunked
        Transfer-Encoding (an iterator of unknown length), and Host if absent.
        An iterator body is not pulled from before a connection is ready.

        Retried once, on a new connection, when a reused connection was found
        dead before any byte was written, or when a bodiless GET/HEAD/OPTIONS
        was reset before any response byte (docs/http.md); nothing else is.
        The caller must ``aclose()`` the response (or read it to the end).
        """
        if isinstance(body, bytes):
            if content_length is not None and content_length != len(body):
                raise ValueError("content_length does not match the bytes body")
            content_length = len(body)
        if content_length is not None:
            framing: bytes | None = b"content-length: %d" % content_length
        elif body is not None:
            framing = b"transfer-encoding: chunked"
        else:
            framing = None
        head = build_request_head(method, self._base + target, headers, self._host_line, framing)
        is_head = method == b"HEAD"
        proto = self._take_idle()
        reused = proto is not None
        if proto is None:
            proto, reused = await self._acquire()
        retried = False
        while True:
            self._watch(proto)
            try:
                await send_request(proto, head, body, content_length, is_head)
            except UpstreamResetError as exc:
                if retried or not _retryable(exc, reused, method, body):
                    self._release(proto, False)
                    raise
                # Retry once on a new connection in the same slot (no queueing again).
                self._busy.discard(proto)
                proto.finish()
                proto.abort()
                retried = True
                proto = await self._open()
                reused = False
            except BaseException:
                self._release(proto, False)
                raise
            else:
                return UpstreamResponse(proto, self._release)

    async def aclose(self) -> None:
        """Close idle connections now; in-flight ones close when released."""
        self._closed = True
        if self._ticker is not None and not self._busy:
            self._ticker.cancel()
            self._ticker = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        while self._idle:
            self._idle.popleft().close()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(UpstreamConnectError(f"pool for {self.url} is closed"))

    # -- slots ----------------------------------------------------------------------------

    def _take_idle(self) -> UpstreamProtocol | None:
        """The most recently used live idle connection, checked out; None if there is none."""
        idle = self._idle
        if not idle or self._closed:
            return None
        assert self._loop is not None
        oldest_ok = self._loop.time() - self._idle_timeout
        while idle:
            proto = idle.pop()
            if proto.alive and proto.idle_since > oldest_ok:
                self._in_use += 1
                return proto
            proto.close()
        return None

    async def _acquire(self) -> tuple[UpstreamProtocol, bool]:
        """A connection and whether it was reused; opens or waits as needed."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if self._closed:
            raise UpstreamConnectError(f"pool for {self.url} is closed")
        proto = self._take_idle()
        if proto is not None:
            return proto, True
        if self._in_use < self._max:
            self._in_use += 1
            return await self._open(), False
        return await self._wait_for_slot(loop)

    async def _wait_for_slot(
        self, loop: asyncio.AbstractEventLoop
    ) -> tuple[UpstreamProtocol, bool]:
        fut: asyncio.Future[UpstreamProtocol | None] = loop.create_future()
        self._waiters.append(fut)
        timer = loop.call_later(self._pool_timeout, self._expire_waiter, fut)
        try:
            proto = await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                # A slot was handed over just as we were cancelled: pass it on.
                handed = fut.result()
                if handed is None:
                    self._free_slot()
                else:
                    self._release(handed, True)
            else:
                self._forget_waiter(fut)
            raise
        finally:
            timer.cancel()
        if proto is not None and proto.alive:
            return proto, True
        if proto is not None:
            proto.close()
        return await self._open(), False

    def _expire_waiter(self, fut: asyncio.Future[UpstreamProtocol | None]) -> None:
        if not fut.done():
            fut.set_exception(
                PoolTimeoutError(
                    f"all {self._max} connections to {self.url} busy for {self._pool_timeout}s"
                )
            )
        self._forget_waiter(fut)

    def _forget_waiter(self, fut: asyncio.Future[UpstreamProtocol | None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(fut)

    async def _open(self) -> UpstreamProtocol:
        """Connect in a slot the caller has already counted; free it on any failure."""
        loop = self._loop
        assert loop is not None
        proto = UpstreamProtocol(loop, self._read_timeout)
        proto.on_idle_lost = self._on_idle_lost
        try:
            async with asyncio.timeout(self._connect_timeout):
                await loop.create_connection(lambda: proto, self._host, self._port)
        except BaseException as exc:
            proto.abort()
            self._free_slot()
            if isinstance(exc, TimeoutError):
                raise UpstreamConnectTimeout(
                    f"no connection to {self.url} within {self._connect_timeout}s"
                ) from None
            if isinstance(exc, OSError):
                raise UpstreamConnectError(f"cannot connect to {self.url}: {exc}") from exc
            raise
        return proto

    def _free_slot(self) -> None:
        """A checked-out slot is gone: hand it to the oldest waiter, if any."""
        self._in_use -= 1
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                self._in_use += 1
                waiter.set_result(None)
                return

    def _release(self, proto: UpstreamProtocol, reusable: bool) -> None:
        """Take back a checked-out connection: to a waiter, to the idle set, or closed."""
        self._busy.discard(proto)
        proto.finish()
        if reusable and proto.alive and not self._closed:
            waiters = self._waiters
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(proto)  # the slot moves with it
                    return
            if len(self._idle) < self._max_idle:
                assert self._loop is not None
                proto.idle_since = self._loop.time()
                self._idle.append(proto)
                self._in_use -= 1
                if self._sweeper is None:
                    self._sweeper = self._loop.call_at(
                        proto.idle_since + self._idle_timeout, self._sweep
                    )
                return
            proto.close()
        else:
            proto.abort()
        self._free_slot()

    # -- timers ---------------------------------------------------------------------------

    def _watch(self, proto: UpstreamProtocol) -> None:
        """Put a checked-out connection under the read-timeout tick."""
        self._busy.add(proto)
        if self._ticker is None:
            assert self._loop is not None
            self._ticker = self._loop.call_later(self._tick_every, self._tick)

    def _tick(self) -> None:
        """Every ``read_timeout / 4`` (at most 1 s) while connections are checked out."""
        self._ticker = None
        if not self._busy:
            return
        assert self._loop is not None
        now = self._loop.time()
        for proto in list(self._busy):
            proto.check_timeout(now)
        self._ticker = self._loop.call_later(self._tick_every, self._tick)

    # -- idle connections -----------------------------------------------------------------

    def _on_idle_lost(self, proto: UpstreamProtocol) -> None:
        """The backend closed an idle connection: never hand it out."""
        with contextlib.suppress(ValueError):
            self._idle.remove(proto)

    def _sweep(self) -> None:
        """Close connections idle for longer than idle_timeout (the oldest are on the left)."""
        self._sweeper = None
        loop = self._loop
        assert loop is not None
        idle = self._idle
        oldest_ok = loop.time() - self._idle_timeout
        while idle and idle[0].idle_since <= oldest_ok:
            idle.popleft().close()
        if idle and not self._closed:
            self._sweeper = loop.call_at(idle[0].idle_since + self._idle_timeout, self._sweep)


def _retryable(exc: UpstreamResetError, reused: bool, method: bytes, body: object) -> bool:
    """Retry on a stale connection, or an idempotent bodiless request unanswered (docs/http.md)."""
    if not exc.request_sent:
        return reused
    return safe_to_repeat(exc, method, body)
