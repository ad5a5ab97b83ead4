"""The proxy listener's response path: uvicorn's request/response cycle, one write per answer.

uvicorn writes a response head and its body with two ``transport.write`` calls, two
syscalls, and checks every header name and value with a regular expression each. On a
proxy answering small model responses those two costs are a measurable share of a
request (the write syscalls alone were ~15 % of the router's CPU under ``make bench``).

:class:`ProxyCycle` keeps uvicorn's semantics (framing from ``Content-Length`` /
``Transfer-Encoding``, ``Connection: close``, HEAD, 204/304, flow control, the checks
on body length) and changes two things:

- the head is held back until the first body message and written with it; if no body
  message follows within the same event-loop turn (a streamed answer whose first chunk
  has not arrived), a ``call_soon`` callback writes the head alone, so a client never
  waits on a held head (an app that knows its body is ready says so with ``BODY_FOLLOWS``
  and spares that callback, or hands the whole body over with the head: ``WHOLE_BODY``);
- header values are checked for control characters with one ``bytes.translate`` pass over
  the encoded head instead of one regex call per header; names are checked (and
  lower-cased) once per distinct name.

On the request side, a body that is already here (the usual small one, read in the same
chunk as the head) is handed to ``receive`` as the bytes object the parser made, without
a wait on the message event or a copy out of a ``bytearray``; the event is a
:class:`MessageEvent`, which allocates nothing until someone actually waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from router.server.borrowed import HEADER_NAME_RE, STATUS_LINE, RequestResponseCycle

if TYPE_CHECKING:
    from router.server.borrowed import ASGI3Application
from router.server.keys import BODY_FOLLOWS, WHOLE_BODY

__all__ = ["MessageEvent", "ProxyCycle"]

# Every control character but HTAB: an encoded head holds exactly one CR and one LF per line
# and no other, so deleting these must remove exactly two bytes per line.
_CONTROLS = bytes([*range(0x09), *range(0x0A, 0x20), 0x7F])
_MAX_KNOWN_NAMES = 1024
# Header names already checked, to their lower-case form: one dict lookup per header.
_known_names: dict[bytes, bytes] = {}
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})
_COALESCE_MAX = 64 * 1024  # larger first chunks are written beside the head, not copied into it


def _nothing() -> None:
    """What a finished cycle calls back when its response completes late."""


def _checked_lower(name: bytes) -> bytes:
    """``name`` lower-cased, once checked to be a token (remembered for later heads)."""
    if not name or HEADER_NAME_RE.search(name):
        raise RuntimeError("Invalid HTTP header name.")
    lowered = name.lower()
    if len(_known_names) < _MAX_KNOWN_NAMES:
        _known_names[name] = lowered
    return lowered


class MessageEvent(asyncio.Event):
    """``asyncio.Event`` for one request's messages: a flag, and a future only while awaited.

    A request's event is set and cleared many times and rarely awaited (a small body is
    already here when the app asks for it); asyncio's creates a deque and a loop binding
    per request for waiters that mostly never come.
    """

    def __init__(self) -> None:  # asyncio's state is replaced, not extended
        self._flag = False
        self._futures: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        """Whether the event is set."""
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        if not self._flag:
            self._flag = True
            futures = self._futures
            if futures:
                for future in futures:
                    if not future.done():
                        future.set_result(None)
                futures.clear()

    def clear(self) -> None:
        """Clear the flag."""
        self._flag = False

    async def wait(self) -> Literal[True]:
        """Return once the flag is set (at once if it is)."""
        if self._flag:
            return True
        future = asyncio.get_running_loop().create_future()
        self._futures.append(future)
        try:
            await future
        finally:
            if future in self._futures:  # cancelled before a set() took it out
                self._futures.remove(future)
        return True


class ProxyCycle(RequestResponseCycle):
    """A ``RequestResponseCycle`` whose response head rides with the first body chunk."""

    loop: asyncio.AbstractEventLoop | None = None  # set by the protocol that made the cycle
    task: asyncio.Task[None] | None = None  # the task running the app for this request
    tasks: set[asyncio.Task[None]] | None = None  # the server's running tasks, task among them
    # The body received and not yet handed to the app: the parser's own bytes object when
    # it came in one piece, a bytearray when pieces had to be joined (the protocol's on_body).
    body: bytes | bytearray  # type: ignore[assignment]
    _pending_head: bytes | None = None
    _flush_handle: asyncio.Handle | None = None

    async def run_asgi(self, app: ASGI3Application) -> None:
        """uvicorn's, dropping the request's task from the server's set as it ends.

        uvicorn does that in a done callback, which costs every request one more
        turn of the event loop (and a poll); the protocol adds that callback only
        where this cannot run: a task cancelled before it started.
        """
        try:
            result = await app(self.scope, self.receive, self.send)  # type: ignore[func-returns-value]
        except BaseException as exc:
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            if not self.response_started:
                await self.send_500_response()
            else:
                self.transport.close()
        else:
            if result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
                self.transport.close()
            elif not self.response_started and not self.disconnected:
                self.logger.error("ASGI callable returned without starting response.")
                await self.send_500_response()
            elif not self.response_complete and not self.disconnected:
                self.logger.error("ASGI callable returned without completing response.")
                self.transport.close()
        finally:
            self.on_response = _nothing
            if self.tasks is not None:
                self.tasks.discard(self.task)

    async def receive(self) -> Any:
        """ASGI ``receive``: uvicorn's, without waiting for a message that is already here."""
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete:
            self.flow.resume_reading()
            event = self.message_event
            if not event.is_set():
                await event.wait()
            event.clear()
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        body = self.body
        self.body = b""
        return {
            "type": "http.request",
            "body": body if body.__class__ is bytes else bytes(body),
            "more_body": self.more_body,
        }

    async def send(self, message: Any) -> None:
        """ASGI ``send``: uvicorn's rules, with the head held for the first body chunk."""
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected 'http.response.start', but got '{kind}'.")
            self.response_started = True
            self.waiting_for_100_continue = False
            self._pending_head = self._encode_head(message["status"], message.get("headers", ()))
            whole = message.get(WHOLE_BODY)
            if whole is not None:
                self._send_body(whole, False)
            elif not message.get(BODY_FOLLOWS):
                loop = self.loop or asyncio.get_running_loop()
                self._flush_handle = loop.call_soon(self._flush_head)
        elif not self.response_complete:
            if kind != "http.response.body":
                raise RuntimeError(f"Expected 'http.response.body', but got '{kind}'.")
            self._send_body(message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(
                f"Unexpected ASGI message '{kind}' sent, after response already completed."
            )

    def _send_body(self, body: bytes, more_body: bool) -> None:
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
            data = b""
        elif self.chunked_encoding:
            data = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more_body:
                data += b"0\r\n\r\n"
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            data = body
        head = self._pending_head
        if head is not None:
            self._pending_head = None
            if self._flush_handle is not None:
                self._flush_handle.cancel()
                self._flush_handle = None
            if len(data) <= _COALESCE_MAX:
                self.transport.write(head + data)
            else:
                self.transport.writelines((head, data))
        elif data:
            self.transport.write(data)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()

    def _flush_head(self) -> None:
        """Write a head that no body chunk followed in the same loop turn."""
        self._flush_handle = None
        head = self._pending_head
        if head is not None:
            self._pending_head = None
            if not self.disconnected and not self.transport.is_closing():
                self.transport.write(head)

    def _frame(self, name: bytes, value: bytes) -> bool:
        """Apply a framing header (uvicorn's rules); True for a ``Connection: close``."""
        if name == b"content-length":
            if self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
        elif name == b"transfer-encoding":
            if value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
        elif b"close" in (token.strip().lower() for token in value.split(b",")):
            self.keep_alive = False
            return True
        return False

    def _encode_head(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """The status line and headers, with uvicorn's framing rules, as bytes to write."""
        content = [STATUS_LINE[status]]
        lines = 1
        has_connection_close = False
        known = _known_names.get
        for raw_name, value in (*self.default_headers, *headers):
            name = known(raw_name) or _checked_lower(raw_name)
            # The usual header costs one set test here, not a test per framing header.
            if name in _FRAMING and self._frame(name, value):
                has_connection_close = True
            content += (name, b": ", value, b"\r\n")
            lines += 1
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
            lines += 1
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status not in (204, 304)
        ):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
            lines += 1
        content.append(b"\r\n")
        head = b"".join(content)
        lines += 1
        # bytes.translate is one C pass (~0.6 µs here against ~2.5 µs of regex calls).
        if len(head) - len(head.translate(None, _CONTROLS)) != 2 * lines:
            raise RuntimeError("Invalid HTTP header value.")
        return head
