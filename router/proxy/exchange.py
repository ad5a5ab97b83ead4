"""One proxied request: forward it, stream the answer back, account for it however it ends.

``Exchange`` holds a request's bookkeeping (route, variant, backend, status,
bytes) so that every way out — an answer, a router-made error, an upstream
failure, a client that went away (499) — is counted and logged exactly once.
``forward`` reads as its steps, one method each: read the client's body
(whole when small, streamed otherwise), send it upstream (once more on the
fallback when the first backend cannot be reached), relay the answer while
capturing it for inspection and mirroring (``AnswerRelay``, router/proxy/relay.py),
hand the captures on; and, when a
step fails, map the failure to the router's error answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.types import Scope

from router.config.model import ProxySpec
from router.proxy.errors import (
    BodyTooLargeError,
    ClientDisconnectedError,
    RouterError,
    error_body,
)
from router.proxy.pieces import Capture, upstream_failure
from router.proxy.relay import WITH_END, AnswerRelay
from router.proxy.sinks import Services
from router.routing.backends import Backend
from router.routing.snapshot import CompiledRoute
from router.server.keys import DISCONNECT_KEY
from router.shadow.jobs import MirrorJob
from router.telemetry.inspection import BodyInspector
from router.upstream import (
    PoolTimeoutError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamResetError,
    UpstreamResponse,
    safe_to_repeat,
)
from strategies import Decision, MirrorPlan

__all__ = ["Exchange"]

SMALL_BODY = 64 * 1024  # bodies up to this size are read whole (one write upstream)
MAX_CAPTURE = 1024 * 1024  # the primary's answer kept for shadow comparison
_JSON = b"application/json"
_MODEL_METHODS = frozenset({"POST", "PUT", "PATCH"})
_Body = bytes | AsyncIterator[bytes] | None
_clock = time.perf_counter


class Exchange(AnswerRelay):
    """One request's bookkeeping: what to log and count, however it ends.

    The proxy fills in the outgoing request (``target``, ``upstream_headers``,
    ``content_length``, ``has_body``) before it calls ``forward``.
    """

    __slots__ = (
        "backend",
        "bytes_in",
        "client",
        "content_length",
        "error_kind",
        "has_body",
        "method",
        "path",
        "preread",
        "request_id",
        "route",
        "scope",
        "services",
        "started",
        "target",
        "upstream_headers",
        "variant",
    )

    target: bytes
    upstream_headers: list[tuple[bytes, bytes]]
    content_length: int | None
    has_body: bool

    def __init__(
        self, services: Services, scope: Scope, request_id: str, method: str, path: str,
        started: float,
    ) -> None:
        self.services = services
        self.scope = scope
        self.request_id = request_id
        self.method = method
        self.path = path
        self.started = started
        self.route = ""
        self.variant = ""
        self.backend = ""
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.error_kind: str | None = None
        self.client = ""
        self.preread: bytes | None = None  # the body, when routing had to read it first
        # perf_counter() when the answer's first body byte was relayed; WITH_END when that
        # byte came with the last one (the usual small answer), so finish()'s clock read serves.
        self.first_byte = 0.0

    def fall_back(
        self, backends: Mapping[str, Backend], decision: Decision, failed: Backend,
        cause: UpstreamError | None = None,
    ) -> Backend | None:
        """Switch to the decision's fallback in place of ``failed``; None when there is none.

        The one place the router falls back: for a backend marked down before
        the request is sent, and for one that could not be reached or closed the
        connection unanswered on a request safe to repeat (``cause``, counted
        against it) when it was.
        """
        name = decision.fallback_backend
        fallback = backends.get(name) if name is not None else None
        if fallback is None or not fallback.up or fallback is failed:
            return None
        if cause is not None:
            self._count_upstream_error(cause)
            self.error_kind = None  # the retry on the fallback starts clean
        self.variant = decision.fallback_variant or "stable"
        self.backend = fallback.name
        return fallback

    async def fail(
        self, send: Any, status: int, code: str, detail: str, *, retry_after: bool = False
    ) -> None:
        """Answer with a router-made JSON error and record it."""
        body = error_body(code, detail, self.request_id)
        headers = [
            (b"content-type", _JSON),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", self.request_id.encode("latin-1")),
        ]
        if retry_after:
            headers.append((b"retry-after", b"1"))
        if status in (400, 431):
            headers.append((b"connection", b"close"))
        self.status = status
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            self.bytes_out = len(body)
        finally:
            self.finish(error=code)

    def finish(self, error: str | None = None) -> None:
        """Count and log the request once."""
        services = self.services
        duration = _clock() - self.started
        if self.route:
            first = self.first_byte
            ttfb = None if not first else duration if first == WITH_END else first - self.started
            services.metrics.recorder(
                self.route, self.variant or "none", self.backend or "none"
            ).record(self.status, duration, ttfb)
            if services.sink is not None and self.variant:
                failed = self.status >= 500 or self.error_kind is not None
                services.sink.observe(
                    self.route, self.variant, self.backend, self.status, duration,
                    failed and self.status != 499, ttfb,
                )
        if services.access_log is not None:
            services.access_log.request(
                request_id=self.request_id,
                route=self.route or None,
                variant=self.variant or None,
                backend=self.backend or None,
                method=self.method,
                path=self.path,
                client=self.client or None,
                status=self.status,
                # round(x, 3) goes through a decimal conversion: 3x the cost of this.
                duration_ms=int(duration * 1_000_000 + 0.5) / 1000,
                bytes_in=self.bytes_in,
                bytes_out=self.bytes_out,
                error=error,
            )

    async def forward(
        self, send: Any, receive: Any, route: CompiledRoute, decision: Decision,
        backend: Backend, backends: Mapping[str, Backend], proxy: ProxySpec,
    ) -> None:
        """Send the request upstream and stream the answer back; a failure becomes an answer."""
        plan = self._admit_mirror(route.name, decision.mirror) if decision.mirror else None
        copy = Capture(plan.max_body) if plan is not None else None
        started = _clock() if plan is not None else 0.0  # the mirror compares latencies
        try:
            body: _Body = None
            if self.has_body:
                small = self.preread is not None or (
                    self.content_length is not None and self.content_length <= SMALL_BODY
                )
                body = (
                    await self.read_body(receive, proxy.max_request_body, copy) if small
                    else self._stream_body(receive, proxy.max_request_body, copy)
                )
            try:
                response = await backend.pool.request(
                    self.method.encode("latin-1"), self.target, self.upstream_headers, body,
                    self.content_length,
                )
            except (UpstreamConnectError, PoolTimeoutError) as exc:
                response, backend = await self._retry_on_fallback(
                    backends, decision, backend, exc, body
                )
            except UpstreamResetError as exc:
                # A backend going away can accept a connection and close it unanswered.
                if not safe_to_repeat(exc, self.method.encode("latin-1"), body):
                    raise
                response, backend = await self._retry_on_fallback(
                    backends, decision, backend, exc, body
                )
            # Model calls carry a body (POST/PUT/PATCH); a GET answers metadata or health,
            # whose inspection would cost the hot path and tell nothing about predictions.
            inspector = self.services.inspector if self.method in _MODEL_METHODS else None
            # The mirror compares the whole answer; the inspector reads it up to its cap.
            cap = MAX_CAPTURE if plan is not None else inspector.cap if inspector else 0
            answer = await self._relay(send, response, route, backend, proxy.expose_headers, cap)
            self.finish()
            if inspector is not None:
                self._inspect(inspector, body, response.status, answer)
            if plan is not None and copy is not None:
                self._mirror(route.name, plan, copy.body(), answer, _clock() - started)
        except (RouterError, UpstreamError) as exc:
            await self._answer_failure(send, exc, proxy.max_request_body)
        except asyncio.CancelledError:
            why = self.scope.get(DISCONNECT_KEY)
            if not why:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            self.client_gone(why)

    # -- the steps ---------------------------------------------------------

    def _admit_mirror(self, route: str, plan: MirrorPlan) -> MirrorPlan | None:
        """The decision's mirror plan if the dispatcher can take one now (else counted dropped)."""
        mirror = self.services.mirror
        if mirror is None:
            return None
        if not mirror.admits(route, plan):
            mirror.drop(route, plan)
            return None
        return plan

    async def read_body(
        self, receive: Any, max_body: int, copy: Capture | None = None
    ) -> bytes:
        """The client's whole body (callers know it is small), counted and capped.

        The body routing already read (``preread``) is not read twice.
        """
        body = self.preread
        if body is None:
            chunks: list[bytes] = []
            more = True
            while more:
                chunk, more = await self._receive_chunk(receive, max_body)
                if chunk:
                    chunks.append(chunk)
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if copy is not None:
            copy.add(body)
        return body

    async def _retry_on_fallback(
        self, backends: Mapping[str, Backend], decision: Decision, failed: Backend,
        exc: UpstreamError, body: _Body,
    ) -> tuple[UpstreamResponse, Backend]:
        """Send once more to the fallback when ``failed`` could not be reached or closed the
        connection unanswered on a request safe to repeat; else re-raise."""
        fallback = self.fall_back(backends, decision, failed, exc)
        if fallback is None:
            raise exc
        response = await fallback.pool.request(
            self.method.encode("latin-1"), self.target, self.upstream_headers, body,
            self.content_length,
        )
        return response, fallback

    async def _answer_failure(
        self, send: Any, exc: RouterError | UpstreamError, max_body: int
    ) -> None:
        """Answer, count and log a request that failed; re-raise when the answer had started."""
        if isinstance(exc, BodyTooLargeError):
            await self.fail(send, 413, "body_too_large", f"request body exceeds {max_body} bytes")
        elif isinstance(exc, ClientDisconnectedError):
            self.client_gone()
        elif isinstance(exc, UpstreamError):
            self._count_upstream_error(exc)
            if self.status:
                # The answer had started: all we can do is cut the client's connection short.
                self.finish(error=f"upstream_{exc.kind}")
                raise exc
            status, code, detail = upstream_failure(exc, self.backend)
            await self.fail(send, status, code, detail, retry_after=status == 503)

    # -- helpers -----------------------------------------------------------

    def client_gone(self, why: object = True) -> None:
        """The client left (499), or the server cut a stalled one off: ``body_timeout`` (408)."""
        self.status = 408 if why == "body_timeout" else 499
        self.finish(error=why if isinstance(why, str) else "client_closed")

    def _inspect(
        self, inspector: BodyInspector, body: object, status: int, answer: bytes | None
    ) -> None:
        try:
            inspector.observe(
                self.route, self.variant, self.path,
                body if isinstance(body, bytes) else None, self.bytes_in, status,
                answer if answer is not None and len(answer) <= inspector.cap else None,
                self.request_id, self.backend,
            )
        except Exception as exc:  # inspection must never fail a request
            self.services.log.warning("inspect_error", route=self.route, reason=repr(exc))

    def _count_upstream_error(self, exc: UpstreamError) -> None:
        self.error_kind = exc.kind
        kind = "connect" if exc.kind == "pool" else exc.kind
        self.services.metrics.upstream_errors.labels(self.route, self.backend, kind).inc()
        if self.services.sink is not None and self.status == 0:
            # A candidate that failed before answering counts against it even
            # when the request was rescued by a fallback.
            self.services.sink.observe(self.route, self.variant, self.backend, 502, 0.0, True)

    async def _receive_chunk(self, receive: Any, max_body: int) -> tuple[bytes, bool]:
        """The next piece of the client's body and whether more follows; counts and caps it."""
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError()
        chunk: bytes = message.get("body", b"")
        self.bytes_in += len(chunk)
        if self.bytes_in > max_body:
            raise BodyTooLargeError()
        return chunk, message.get("more_body", False)

    async def _stream_body(
        self, receive: Any, max_body: int, copy: Capture | None
    ) -> AsyncIterator[bytes]:
        more = True
        while more:
            chunk, more = await self._receive_chunk(receive, max_body)
            if chunk:
                if copy is not None:
                    copy.add(chunk)
                yield chunk

    def _mirror(
        self, route: str, plan: MirrorPlan, body: bytes | None, answer: bytes | None,
        latency: float,
    ) -> None:
        """Hand the finished exchange to the shadow dispatcher (it never waits)."""
        mirror = self.services.mirror
        assert mirror is not None  # a plan is only admitted when there is a mirror
        mirror.dispatch(
            MirrorJob(
                route=route,
                plan=plan,
                method=self.method.encode("latin-1"),
                target=self.target,
                headers=self.upstream_headers,
                body=body,
                path=self.path,
                request_id=self.request_id,
                primary_status=self.status,
                primary_body=answer,
                primary_latency_s=latency,
            )
        )
