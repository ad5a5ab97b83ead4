"""One exchange on a pooled connection: write the request, wait for the head, stream the body.

Everything here works on an :class:`UpstreamProtocol` the pool has already
checked out; the pool decides what happens to the connection afterwards
through the ``release(protocol, reusable)`` callback a response carries.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import AsyncIterable, Callable
from types import TracebackType

from router.upstream.errors import UpstreamResetError
from router.upstream.protocol import UpstreamProtocol

__all__ = ["Release", "UpstreamResponse", "build_request_head", "send_request"]

Release = Callable[[UpstreamProtocol, bool], None]
"""The pool's callback: give the connection back (``True``: it is clean and reusable)."""

_INLINE_BODY = 64 * 1024  # bytes bodies up to this size go out in the same write as the head


def build_request_head(
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    host_line: bytes,
    framing: bytes | None,
) -> bytes:
    """The request line and headers, ending with the blank line.

    ``host_line`` (``b"host: h:p"``) is added unless ``headers`` carry a Host;
    ``framing`` is the Content-Length or Transfer-Encoding line, if any.
    Raises ``ValueError`` if any part would inject a CR or LF.
    """
    lines = [method + b" " + target + b" HTTP/1.1"]
    # The proxy's header lists start with Host; any other list is searched for one.
    if not (headers and headers[0][0] == b"host") and not any(
        len(name) == 4 and name.lower() == b"host" for name, _ in headers
    ):
        lines.append(host_line)  # Host first, as RFC 9112 §3.2 recommends
    lines += [b": ".join(header) for header in headers]
    if framing is not None:
        lines.append(framing)
    lines += (b"", b"")
    head = b"\r\n".join(lines)
    breaks = len(lines) - 1
    if head.count(b"\n") != breaks or head.count(b"\r") != breaks:
        raise ValueError("CR or LF inside the request line or a header")
    return head


async def send_request(
    proto: UpstreamProtocol,
    head: bytes,
    body: AsyncIterable[bytes] | bytes | None,
    content_length: int | None,
    is_head: bool,
) -> None:
    """Write one request on ``proto`` and return once the final response head is parsed.

    Raises the connection's ``UpstreamError`` (reset, timeout, protocol), a
    ``ValueError`` when an iterator yields more or fewer bytes than
    ``content_length``, or whatever the body iterator raises.
    """
    proto.begin(is_head)
    transport = proto.transport
    if not proto.alive or transport is None or transport.is_closing():
        raise UpstreamResetError(
            "the connection was closed before the request was sent",
            request_sent=False,
            response_started=False,
        )
    proto.request_sent = True
    if body is None:
        transport.write(head)
        proto.request_done = True
    elif isinstance(body, bytes):
        if len(body) <= _INLINE_BODY:
            transport.write(head + body)
        else:
            transport.write(head)
            transport.write(body)
        proto.request_done = True
    else:
        transport.write(head)
        await _stream_body(proto, body, content_length)
    while not proto.headers_done:
        if proto.error is not None:
            raise proto.error
        await proto.wait()


async def _stream_body(
    proto: UpstreamProtocol, body: AsyncIterable[bytes], content_length: int | None
) -> None:
    """Write the body chunk by chunk, waiting whenever the transport's buffer is full.

    Stops early (leaving the connection unusable) if the backend answers first.
    """
    transport = proto.transport
    assert transport is not None
    sent = 0
    async for chunk in body:
        if proto.headers_done:
            return  # an early answer (413, 401...): the rest of the body is not wanted
        if proto.error is not None:
            raise proto.error
        if not chunk:
            continue
        if content_length is None:
            transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        else:
            sent += len(chunk)
            if sent > content_length:
                raise ValueError(f"request body longer than content_length={content_length}")
            transport.write(chunk)
        while proto.write_paused:
            if proto.error is not None:
                raise proto.error
            await proto.wait()
    if content_length is None:
        transport.write(b"0\r\n\r\n")
    elif sent != content_length:
        raise ValueError(f"request body of {sent} bytes, content_length={content_length}")
    proto.request_done = True


class UpstreamResponse:
    """A response whose head has arrived; iterate it for the body, then ``aclose()``.

    Iteration yields the de-chunked body as it arrives (whatever is buffered,
    joined into one chunk). When the body ends the connection goes back to the
    pool at once; an error or cancellation during iteration closes it.
    """

    __slots__ = ("_proto", "_release", "headers", "reason", "status")

    def __init__(self, proto: UpstreamProtocol, release: Release) -> None:
        self.status: int = proto.status
        self.reason: bytes = proto.reason
        self.headers: list[tuple[bytes, bytes]] = proto.headers
        self._proto: UpstreamProtocol | None = proto
        self._release = release

    def __repr__(self) -> str:
        return f"<UpstreamResponse {self.status} {self.reason.decode('latin-1')!r}>"

    @property
    def finished(self) -> bool:
        """Whether the whole body has been received and handed out (no chunk left)."""
        proto = self._proto
        return proto is None or (proto.complete and not proto.body)

    @property
    def body_ready(self) -> bool:
        """Whether the next step of iteration returns (a chunk, or the end) without waiting."""
        proto = self._proto
        return proto is None or proto.complete or bool(proto.body)

    def whole(self) -> bytes | None:
        """The whole body if all of it has arrived (the connection then goes back), else None."""
        proto = self._proto
        if proto is None or not proto.complete:
            return None
        body = proto.take_body() if proto.body else b""
        self._settle(True)
        return body

    def __aiter__(self) -> UpstreamResponse:
        return self

    async def __anext__(self) -> bytes:
        proto = self._proto
        if proto is None:
            raise StopAsyncIteration
        if proto.body:
            return proto.take_body()
        while not proto.complete:
            if proto.error is not None:
                self._settle(False)
                raise proto.error
            try:
                await proto.wait()
            except BaseException:
                self._settle(False)
                raise
            if proto.body:
                return proto.take_body()
        self._settle(True)
        raise StopAsyncIteration

    async def read(self) -> bytes:
        """The whole (remaining) body, then release the connection."""
        return b"".join([chunk async for chunk in self])

    def _settle(self, clean: bool) -> None:
        proto = self._proto
        if proto is None:
            return
        self._proto = None
        self._release(
            proto,
            clean and proto.complete and proto.keep_alive and proto.error is None,
        )

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        # A safety net for a caller that drops a response without closing it:
        # the slot would otherwise stay checked out for good. The release is
        # deferred to the loop, as the cyclic GC may run this in the middle of
        # the pool's own bookkeeping.
        proto = self._proto
        if proto is not None:
            self._proto = None
            _warn(f"{self!r} was never closed", ResourceWarning, source=self, stacklevel=1)
            with contextlib.suppress(Exception):
                proto.loop.call_soon(self._release, proto, False)

    async def aclose(self) -> None:
        """Release the connection: pooled if the response was fully received, else closed."""
        self._settle(True)

    async def __aenter__(self) -> UpstreamResponse:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._settle(True)
