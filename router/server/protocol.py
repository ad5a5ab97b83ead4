"""The proxy listener's HTTP/1.1 protocol: uvicorn's httptools protocol with request-head limits.

uvicorn has no deadline for reading request headers and httptools no cap on their size
(docs/faults.md). :class:`HardenedHttpToolsProtocol` adds, per connection:

- a header deadline (``header_timeout``), armed when the connection opens and when the first
  byte of a request arrives, cancelled once that request's headers are complete. On expiry a
  connection that has begun a request gets a 408; one that has not is closed without a word.
  Idle keep-alive connections between requests are closed after ``timeout_keep_alive``.
  All deadlines are timestamps checked by a periodic sweep (``router.server.sweeper``), not
  a timer per request, so they fire up to a tenth of the shorter timeout late.
- a body deadline (``body_timeout``): a client that pauses longer than this while sending a
  request body gets a 408 and its request is cancelled (the upstream connection closes). A
  pause the router causes (reading paused while the upstream is slow) does not count.
- a send deadline (``send_timeout``): a client that leaves the response unread so long that
  writes stay paused this long has its connection aborted and its request cancelled.
- a header byte cap (``max_header_bytes``): bytes fed to the parser while a head is
  incomplete are counted, and past the cap the client gets a 431 and nothing more is parsed.
- framing checks that do not depend on the parser's strictness: ``Content-Length`` together
  with ``Transfer-Encoding`` gives 400, ``Transfer-Encoding`` in an HTTP/1.0 request gives 400,
  a transfer coding other than ``chunked`` gives 501.
- ``Host`` checks as nginx makes them (docs/faults.md): two ``Host`` headers, an HTTP/1.1 request
  without one, or one that is not a valid ``host[:port]`` give 400.

Requests are served by :class:`~router.server.cycle.ProxyCycle`, which writes a response head
together with its first body chunk, and the request's task is kept on the cycle so that a
client disconnect can cancel it.

Every refusal (parser errors included) is a JSON error (docs/http.md) sent with
``Connection: close``, then the connection closes; the app is never called for a refused
request. Between the end of a request's headers and the start of the next request the
protocol adds one flag test per chunk.

Bytes are counted per chunk: a head beginning in a chunk that ends the previous request is
counted from the next chunk on (the cap binds one read late); its headers' size is exact.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import TYPE_CHECKING, Any, ClassVar, cast

from httptools import HttpParserCallbackError, HttpParserError, HttpParserInvalidURLError

from router.server.borrowed import (
    HIGH_WATER_LIMIT,
    Config,
    HttpToolsProtocol,
    RequestResponseCycle,
    ServerState,
    service_unavailable,
)
from router.server.cycle import MessageEvent, ProxyCycle
from router.server.keys import DISCONNECT_KEY
from router.server.refusals import (
    HeadLimits,
    RequestRefusedError,
    check_head,
    head_size,
    headers_too_large,
)
from router.server.sweeper import sweeper_for
from router.server.target import split_target

if TYPE_CHECKING:
    from router.server.borrowed import ASGI3Application

__all__ = ["HardenedHttpToolsProtocol", "HeadLimits", "RequestRefusedError"]


_TASK = "router-request"  # the name of every request's task


class HardenedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a header deadline, a header size cap and framing checks.

    uvicorn instantiates ``config.http`` itself, so the limits travel as a class attribute:
    pass ``HardenedHttpToolsProtocol.with_limits(HeadLimits(...))`` as ``http=``.
    """

    limits: ClassVar[HeadLimits] = HeadLimits()

    @classmethod
    def with_limits(cls, limits: HeadLimits) -> type[HardenedHttpToolsProtocol]:
        """A subclass bound to ``limits``, for one server's ``Config(http=...)``."""
        return type(cls.__name__, (cls,), {"limits": limits})

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_timeout = self.limits.header_timeout
        self._max_header_bytes = self.limits.max_header_bytes
        self._body_timeout = self.limits.body_timeout
        self._send_timeout = self.limits.send_timeout
        self._body_at: float | None = None  # loop time body bytes last came, body incomplete
        self._stalled_since: float | None = None  # loop time writes paused (client not reading)
        self._deadline: float | None = None  # loop time by which the awaited head must be read
        self._idle_since: float | None = None  # loop time the connection went idle (keep-alive)
        period = self.limits.sweep_period(float(config.timeout_keep_alive))
        self._sweeper = sweeper_for(self.loop, type(self), period)
        self._awaiting_head = True  # the next bytes the parser reads belong to a request head
        self._head_bytes = 0  # bytes fed while awaiting a head
        self._head_fully_counted = True  # False if the head began inside an uncounted chunk
        self._message_begun = False  # the parser has seen the start of the awaited request
        self._refused = False
        self._plain_tasks = self.loop.get_task_factory() is None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept the connection and give the client ``header_timeout`` to send a request head."""
        super().connection_made(transport)
        self._sweeper.add(self)
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline along with the connection, and cancel an unfinished request.

        uvicorn only flags the cycle as disconnected; a proxy waiting on its
        upstream would never notice. Cancelling the request's task closes the
        upstream connection at once (docs/http.md: a client that disconnects cancels
        its upstream request); the scope's ``router.client_disconnected`` tells
        the app why it was cancelled.
        """
        self._cancel_deadline()
        self._sweeper.discard(self)
        cycle = self.cycle
        super().connection_lost(exc)
        if isinstance(cycle, ProxyCycle) and not cycle.response_complete:
            task = cycle.task
            if task is not None and not task.done():
                cast(dict[str, Any], cycle.scope).setdefault(DISCONNECT_KEY, True)
                task.cancel()
                # A task cancelled before its first step never runs run_asgi's cleanup.
                task.add_done_callback(self.tasks.discard)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, counting the bytes of an incomplete head against the cap."""
        if not self._awaiting_head:
            if self._body_at is not None:
                self._body_at = self.loop.time()
            super().data_received(data)
            return
        if self._refused:
            return
        if not self._message_begun:
            self._head_fully_counted = True
        # While a response is in flight, on_message_begin arms the deadline for a pipelined head.
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_deadline()
        self._head_bytes += len(data)
        super().data_received(data)
        if self._awaiting_head and not self._refused and self._head_bytes > self._max_header_bytes:
            self._refuse(headers_too_large(self._max_header_bytes))

    # httptools parser callbacks

    def on_message_begin(self) -> None:
        """A request starts; a pipelined one that began mid-chunk gets its deadline here."""
        self._message_begun = True
        if self._deadline is None:
            self._arm_deadline()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        """Stop the deadline, enforce the cap and framing rules, then hand over to uvicorn.

        Raising here aborts the parser, so neither this request nor anything pipelined
        after it reaches the app; uvicorn then calls :meth:`send_400_response`.
        """
        self._cancel_deadline()
        self._message_begun = False
        # The count may include body bytes from the same chunk, or miss the start of a pipelined
        # head: measure the parsed head then (and only then).
        if (
            self._head_bytes > self._max_header_bytes or not self._head_fully_counted
        ) and head_size(self.parser.get_method(), self.url, self.headers) > self._max_header_bytes:
            raise headers_too_large(self._max_header_bytes)
        check_head(self.headers, self.parser.get_http_version(), self.parser.should_upgrade())
        self._awaiting_head = False
        self._head_bytes = 0
        self._body_at = self.loop.time()  # cleared by on_message_complete
        self._start_cycle()

    def _start_cycle(self) -> None:
        """uvicorn's ``on_headers_complete``, building a :class:`ProxyCycle` for the request."""
        scope = cast(dict[str, Any], self.scope)
        http_version = self.parser.get_http_version()
        scope["method"] = self.parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if self.parser.should_upgrade() and self._should_upgrade():
            return
        path, raw_path, query = split_target(self.url)
        root_path = self.root_path
        if root_path:
            scope["path"] = root_path + path
            scope["raw_path"] = root_path.encode("ascii") + raw_path
        else:
            scope["path"], scope["raw_path"] = path, raw_path
        scope["query_string"] = query
        app = self.app
        if self.limit_concurrency is not None and (
            len(self.connections) >= self.limit_concurrency
            or len(self.tasks) >= self.limit_concurrency
        ):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        existing_cycle = self.cycle
        self.cycle = ProxyCycle(
            scope=self.scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=MessageEvent(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and self.parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        self.cycle.loop = self.loop
        if existing_cycle is None or existing_cycle.response_complete:
            self._start_asgi_task(self.cycle, app)
        else:  # pipelined: queued until the response in flight completes
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        """uvicorn's task start, keeping the task on the cycle so a disconnect can cancel it."""
        context = contextvars.Context() if self.config.reset_contextvars else None
        if self._plain_tasks:
            # What create_task would make, but named: an unnamed task formats "Task-<n>".
            task = asyncio.Task(cycle.run_asgi(app), loop=self.loop, context=context, name=_TASK)
        else:
            task = self.loop.create_task(cycle.run_asgi(app), context=context)
        self.tasks.add(task)
        if isinstance(cycle, ProxyCycle):
            cycle.task, cycle.tasks = task, self.tasks  # its run_asgi drops it from the set
        else:
            task.add_done_callback(self.tasks.discard)

    def on_body(self, body: bytes) -> None:
        """uvicorn's, keeping a body that comes in one piece as the parser's bytes (no copy)."""
        cycle = self.cycle
        if cycle.response_complete or (self.parser.should_upgrade() and self._should_upgrade()):
            return
        held = cast(ProxyCycle, cycle).body
        if not held:
            held = body
        else:
            if held.__class__ is bytes:
                held = bytearray(held)
            held += body
        cycle.body = held  # type: ignore[assignment]
        if len(held) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        """The request is fully read: whatever comes next is the head of another request."""
        self._awaiting_head = True
        self._body_at = None
        self._head_fully_counted = False  # the next head may begin in the rest of this chunk
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """Answer a parser error (or a refusal raised from a callback) with a JSON error."""
        # uvicorn calls this from inside its ``except HttpParserError`` block; httptools chains
        # an exception raised by a callback as the parser error's ``__context__``.
        exc = sys.exc_info()[1]
        cause = exc.__context__ if isinstance(exc, HttpParserCallbackError) else exc
        if isinstance(cause, RequestRefusedError):
            self._refuse(cause)
            return
        if isinstance(cause, HttpParserInvalidURLError):  # its message quotes the client's URL
            detail = "invalid request target"
        elif isinstance(cause, HttpParserError):
            detail = str(cause)  # llhttp's fixed reason, e.g. "Invalid header value char"
        else:
            detail = msg
        self._refuse(RequestRefusedError(400, "bad_request", detail))

    # internals

    def pause_writing(self) -> None:
        """The client reads slower than we write: the send deadline starts."""
        super().pause_writing()
        self._stalled_since = self.loop.time()

    def resume_writing(self) -> None:
        """The client read enough: the send deadline stops."""
        super().resume_writing()
        self._stalled_since = None

    def check_deadlines(self, now: float) -> None:
        """Called by the server's sweeper: enforce every deadline of the connection."""
        if self._body_at is not None:
            if self.flow.read_paused:  # the router is not reading: not the client's pause
                self._body_at = now
            elif now - self._body_at >= self._body_timeout:
                self._body_at = None
                self._cut_off("body_timeout")
                return
        if self._stalled_since is not None and now - self._stalled_since >= self._send_timeout:
            self._stalled_since = None
            self._cut_off("send_timeout")
        elif self._deadline is not None and now >= self._deadline:
            self._deadline = None
            self._on_deadline()
        elif self._idle_since is not None and now - self._idle_since >= self.timeout_keep_alive:
            self._idle_since = None
            self.timeout_keep_alive_handler()

    def on_response_complete(self) -> None:
        """uvicorn's, with the keep-alive timeout left to the sweeper instead of a new timer."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_since = None
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_since = self.loop.time()

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None

    def _arm_deadline(self) -> None:
        self._deadline = self.loop.time() + self._header_timeout

    def _cancel_deadline(self) -> None:
        self._deadline = None

    def _on_deadline(self) -> None:
        if self._refused or self.transport.is_closing():
            return
        if self._message_begun:
            detail = f"request headers not received within {self._header_timeout:g}s"
            self._refuse(RequestRefusedError(408, "request_timeout", detail))
        else:
            self._refuse(None)

    def _cut_off(self, reason: str) -> None:
        """End a request whose client stalled past a deadline, cancelling it (docs/faults.md)."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        answered = cycle is not None and cycle.response_complete
        if isinstance(cycle, ProxyCycle) and not answered:
            cast(dict[str, Any], cycle.scope)[DISCONNECT_KEY] = reason
        if reason == "body_timeout" and not answered:
            detail = f"request body paused for more than {self._body_timeout:g}s"
            self._refuse(RequestRefusedError(408, "request_timeout", detail))
            return
        hook = self.limits.on_refusal
        if hook is not None:
            hook(reason)
        if reason == "body_timeout":  # answered already (say 404) while the body trickled
            self.transport.close()
        else:  # nothing can be said to a client that does not read: drop the unsent bytes
            self.transport.abort()

    def _refuse(self, refusal: RequestRefusedError | None) -> None:
        """Answer ``refusal`` (nothing if None) and close, sparing a response in flight."""
        self._refused = True
        self._awaiting_head = True  # route later reads to the discarding branch of data_received
        self._cancel_deadline()
        hook = self.limits.on_refusal
        if hook is not None:
            hook(refusal.code if refusal is not None else "idle_timeout")
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if not cycle.more_body:
                # The refusal concerns a later request: finish this response, then close.
                cycle.keep_alive = False
                return
            if cycle.response_started or self.pipeline:
                # This request's body is broken and an error cannot be answered in order.
                self.transport.close()
                return
        if refusal is not None:
            self._write_error(refusal)
        self.transport.close()

    def _write_error(self, refusal: RequestRefusedError) -> None:
        request_id = self.limits.request_id_factory()
        self.transport.write(
            refusal.response(request_id, self.server_state.default_headers)
        )
