"""One upstream TCP connection: an ``asyncio.Protocol`` feeding httptools' response parser.

The protocol owns the per-connection state of the exchange in flight: the
response head as it is parsed, the body chunks not yet read (with read
backpressure through ``pause_reading``/``resume_reading``), write flow control
for streamed request bodies, and the read timeout. Whoever drives an exchange
(``connection.py``) waits on a single "something changed" future through
:meth:`UpstreamProtocol.wait`; every state change wakes it.

The read timeout costs no timer per request (a timer handle costs 6-10 µs to
schedule and cancel, a large share of a forwarded request): the protocol only
records the time of its last progress (data received, or the start of the
current wait), and the pool's periodic tick calls :meth:`check_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import Callable
from typing import cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from router.upstream.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamReadTimeout,
    UpstreamResetError,
)

__all__ = ["HIGH_WATER", "MAX_RESPONSE_HEAD", "UpstreamProtocol"]

MAX_RESPONSE_HEAD = 64 * 1024
"""Response head bytes (status line and headers) beyond which the answer is a protocol error
(502): httptools would buffer a header value of any length, and clients refuse huge heads."""

HIGH_WATER = 64 * 1024
"""Unread response bytes above which the transport stops reading (it reads again once
the reader has taken them: :meth:`UpstreamProtocol.take_body` empties the buffer)."""


class UpstreamProtocol(asyncio.Protocol):
    """Receives and parses HTTP/1.1 responses on one keep-alive connection."""

    __slots__ = (
        "alive", "body", "buffered", "complete", "error", "exchange", "head_bytes", "headers",
        "headers_done", "idle_since", "is_head", "keep_alive", "last_progress", "loop",
        "on_idle_lost", "parser", "read_timeout", "reading_paused", "reason",
        "request_done", "request_sent", "response_started", "status", "transport",
        "waiter", "write_paused",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float) -> None:
        self.loop = loop
        self.read_timeout = read_timeout
        self.transport: asyncio.Transport | None = None
        self.parser: HttpResponseParser | None = None
        self.alive = False
        self.exchange = False
        self.idle_since = 0.0
        self.on_idle_lost: Callable[[UpstreamProtocol], None] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.last_progress = 0.0
        self.reading_paused = False
        self.write_paused = False
        self.body: deque[bytes] = deque()
        self._reset_exchange(False)

    def _reset_exchange(self, is_head: bool) -> None:
        self.is_head = is_head
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.request_sent = False
        self.request_done = False
        self.response_started = False
        self.error: UpstreamError | None = None
        self.buffered = 0
        self.head_bytes = 0

    # -- driven by the connection ---------------------------------------------------------

    def begin(self, is_head: bool) -> None:
        """Start a new exchange on this (idle) connection."""
        self._reset_exchange(is_head)
        self.body.clear()
        self.exchange = True
        if self.parser is None:
            self.parser = HttpResponseParser(self)

    def finish(self) -> None:
        """End the exchange: drop unread data, read again if paused."""
        self.exchange = False
        self.waiter = None
        self.body.clear()
        self.buffered = 0
        self._resume_reading()

    def _resume_reading(self) -> None:
        if self.reading_paused:
            self.reading_paused = False
            if self.alive and self.transport is not None:
                self.transport.resume_reading()

    def wait(self) -> asyncio.Future[None]:
        """A future resolved at the next state change (or by the read timeout)."""
        fut: asyncio.Future[None] = self.loop.create_future()
        self.waiter = fut
        self.last_progress = self.loop.time()
        return fut

    def take_body(self) -> bytes:
        """Everything buffered so far, as one chunk; a paused transport reads again."""
        body = self.body
        chunk = body.popleft() if len(body) == 1 else b"".join(body)
        body.clear()
        self.buffered = 0
        self._resume_reading()
        return chunk

    def abort(self) -> None:
        """Drop the connection at once (a dirty or unwanted connection)."""
        self.alive = False
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close a clean connection politely."""
        self.alive = False
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def check_timeout(self, now: float) -> None:
        """Fail the exchange if someone has waited ``read_timeout`` without progress."""
        if (
            self.waiter is not None
            and self.exchange
            and now - self.last_progress >= self.read_timeout
        ):
            self._fail(UpstreamReadTimeout(f"no progress for {self.read_timeout}s"))
            self.abort()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport; disable Nagle so small requests leave at once."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.alive = True
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        """Finish a read-until-close body, or fail the exchange in flight; tell the pool."""
        self.alive = False
        self.write_paused = False
        if not self.exchange:
            if self.on_idle_lost is not None:
                self.on_idle_lost(self)
            return
        if not self.complete and self.error is None:
            if self.headers_done and self._body_until_close():
                self.complete = True
                self.keep_alive = False
            else:
                self.error = UpstreamResetError(
                    "the backend closed the connection"
                    + ("" if exc is None else f" ({exc})"),
                    request_sent=self.request_sent,
                    response_started=self.response_started,
                )
        self._wake()

    def _body_until_close(self) -> bool:
        """No Content-Length and no chunked coding: the body ends with the connection."""
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == b"content-length":
                return False
            if lowered == b"transfer-encoding" and value.lower().rstrip().endswith(b"chunked"):
                return False
        return True

    def data_received(self, data: bytes) -> None:
        """Parse the bytes; anything arriving between exchanges kills the connection."""
        if not self.exchange or self.parser is None or self.complete:
            self.keep_alive = False
            self.abort()
            return
        self.response_started = True
        self.last_progress = self.loop.time()
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade:
            self._protocol_error("unexpected protocol upgrade")
        except HttpParserError as exc:
            self._protocol_error(f"invalid HTTP response: {exc}")
        else:
            if not self.headers_done:
                # Counted after parsing, so a chunk that ends the head and carries body bytes
                # never counts against it; a head binds at most one read past the cap.
                self.head_bytes += len(data)
                if self.head_bytes > MAX_RESPONSE_HEAD:
                    self._protocol_error(f"response head over {MAX_RESPONSE_HEAD} bytes")

    def _protocol_error(self, message: str) -> None:
        self.parser = None
        self._fail(UpstreamProtocolError(message))
        self.abort()

    def pause_writing(self) -> None:
        """The transport's write buffer is full: request body streaming waits."""
        self.write_paused = True

    def resume_writing(self) -> None:
        """The write buffer drained: wake the request body streamer."""
        self.write_paused = False
        self._wake()

    # -- httptools callbacks --------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        """Reason phrase (httptools calls it status)."""
        self.reason = status

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header line, original case."""
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        """Skip 1xx heads; a HEAD response ends with its head."""
        assert self.parser is not None
        status = self.parser.get_status_code()
        if status < 200:
            self.headers = []
            self.reason = b""
            return
        self.status = status
        self.headers_done = True
        if self.is_head and not self.complete:
            # The parser cannot be told to skip a HEAD body: it would wait for
            # Content-Length bytes. End here and use a fresh parser next time.
            self.keep_alive = self.request_done and self._head_keep_alive()
            self.complete = True
            self.parser = None
        self._wake()

    def _head_keep_alive(self) -> bool:
        assert self.parser is not None
        version = self.parser.get_http_version()
        tokens = b",".join(
            v for n, v in self.headers if len(n) == 10 and n.lower() == b"connection"
        )
        options = {t.strip() for t in tokens.lower().split(b",")}
        if version == "1.1":
            return b"close" not in options
        return version == "1.0" and b"keep-alive" in options

    def on_body(self, body: bytes) -> None:
        """Buffer a body chunk; stop reading above the high-water mark."""
        if self.complete:
            self.keep_alive = False  # bytes after the end of a HEAD response
            return
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        """The response (not an interim 1xx one) is complete."""
        parser = self.parser
        if parser is None or self.complete or parser.get_status_code() < 200:
            return
        self.complete = True
        self.keep_alive = self.request_done and parser.should_keep_alive()
        self._wake()
