"""One proxied request: forward it, stream the answer back, account for it however it ends.

``Exchange`` holds a request's bookkeeping (route, variant, backend, status,
bytes) so that every way out — an answer, a router-made error, an upstream
failure, a client that went away (499) — is counted and logged exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.types import Scope

from router.proxy.errors import BodyTooLargeError, ClientDisconnectedError, error_body
from router.proxy.headers import filter_response_headers
from router.proxy.sinks import MirrorJob
from router.routing.backends import Backend
from router.routing.snapshot import CompiledRoute
from router.server.cycle import BODY_FOLLOWS
from router.server.protocol import DISCONNECT_KEY
from router.telemetry.inspection import BodyInspector
from router.upstream.errors import (
    PoolTimeoutError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamReadTimeout,
)
from strategies import Decision, MirrorPlan

if TYPE_CHECKING:
    from router.proxy.entry import ProxyApp

__all__ = ["Exchange", "pick_fallback"]

SMALL_BODY = 64 * 1024  # bodies up to this size are read whole (one write upstream)
MAX_CAPTURE = 1024 * 1024  # the primary's answer kept for shadow comparison
_JSON = b"application/json"
_MODEL_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _BodyCopy:
    """The request body kept for the mirrors while it streams, up to their ``max_body``."""

    __slots__ = ("cap", "over", "parts", "size")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[bytes] = []
        self.size = 0
        self.over = False

    def add(self, chunk: bytes) -> None:
        """Keep ``chunk``, or give up on the copy once it passes the cap."""
        if self.over:
            return
        self.size += len(chunk)
        if self.size > self.cap:
            self.over = True
            self.parts.clear()
        else:
            self.parts.append(chunk)

    def body(self) -> bytes | None:
        """The whole body, or None when it was larger than the cap (the mirror is skipped)."""
        return None if self.over else b"".join(self.parts)


_variant_headers: dict[str, tuple[bytes, bytes]] = {}


def _variant_header(variant: str) -> tuple[bytes, bytes]:
    """``x-router-variant`` for ``variant``; strategies name a handful, encoded once each."""
    header = _variant_headers.get(variant)
    if header is None:
        header = _variant_headers[variant] = (b"x-router-variant", variant.encode())
    return header


def pick_fallback(backends: Any, decision: Decision) -> Backend | None:
    """The decision's fallback backend, if it has one and it is up."""
    if decision.fallback_backend is None:
        return None
    fallback: Backend | None = backends.get(decision.fallback_backend)
    return fallback if fallback is not None and fallback.up else None


class Exchange:
    """One request's bookkeeping: what to log and count, however it ends."""

    __slots__ = (
        "app",
        "backend",
        "bytes_in",
        "bytes_out",
        "client",
        "error_kind",
        "method",
        "path",
        "preread",
        "request_id",
        "route",
        "scope",
        "started",
        "status",
        "variant",
    )

    def __init__(
        self, app: ProxyApp, scope: Scope, request_id: str, method: str, path: str,
        started: float,
    ) -> None:
        self.app = app
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
        app = self.app
        duration = time.perf_counter() - self.started
        if self.route:
            app.metrics.recorder(self.route, self.variant or "none", self.backend or "none").record(
                self.status, duration
            )
            if app.sink is not None and self.variant:
                failed = self.status >= 500 or self.error_kind is not None
                app.sink.observe(
                    self.route, self.variant, self.backend, self.status, duration,
                    failed and self.status != 499,
                )
        if app.access_log:
            app.requests_log.request(
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
        self,
        send: Any,
        receive: Any,
        route: CompiledRoute,
        decision: Decision,
        backend: Backend,
        backends: Any,
        upstream_headers: list[tuple[bytes, bytes]],
        target: bytes,
        content_length: int | None,
        has_body: bool,
        max_body: int,
        expose_headers: bool,
    ) -> None:
        """Send the request upstream and stream the answer back, mapping failures."""
        mirror = self.app.mirror
        plan = decision.mirror if mirror is not None else None
        if plan is not None and mirror is not None and not mirror.admits(route.name, plan):
            mirror.drop(route.name, plan)
            plan = None
        copy = _BodyCopy(plan.max_body) if plan is not None else None
        body: bytes | AsyncIterator[bytes] | None = None
        upstream_started = time.perf_counter()
        try:
            if has_body:
                if self.preread is not None or (
                    content_length is not None and content_length <= SMALL_BODY
                ):
                    body = self.preread
                    if body is None:
                        body = await self.read_body(receive, max_body)
                    if copy is not None:
                        copy.add(body)
                else:
                    body = self._stream_body(receive, max_body, copy)
            response = None
            try:
                response = await backend.pool.request(
                    self.method.encode("latin-1"), target, upstream_headers, body, content_length
                )
            except (UpstreamConnectError, PoolTimeoutError) as exc:
                fallback = pick_fallback(backends, decision)
                if fallback is None or fallback is backend:
                    raise
                self._count_upstream_error(exc)
                self.error_kind = None  # the retry on stable starts clean
                self.variant = decision.fallback_variant or "stable"
                self.backend = fallback.name
                backend = fallback
                response = await backend.pool.request(
                    self.method.encode("latin-1"), target, upstream_headers, body, content_length
                )
            self.status = response.status
            # Byte for byte as the client sent it (SPEC §15): the id was decoded as latin-1.
            request_id = self.request_id.encode("latin-1")
            extra: list[tuple[bytes, bytes]] = [(b"x-request-id", request_id)]
            if expose_headers:
                extra += (route.header, _variant_header(self.variant), backend.header)
            # Model calls carry a body (POST/PUT/PATCH); a GET answers metadata or health,
            # whose inspection would cost the hot path and tell nothing about predictions.
            inspector = self.app.inspector if self.method in _MODEL_METHODS else None
            capture_cap = MAX_CAPTURE if plan is not None else (inspector.cap if inspector else 0)
            captured: list[bytes] | None = [] if capture_cap else None
            captured_len = 0
            try:
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status,
                        "headers": filter_response_headers(response.headers, extra),
                        # The body is already here: it goes out with the head, in one write.
                        BODY_FOLLOWS: response.body_ready,
                    }
                )
                last = False
                async for chunk in response:
                    self.bytes_out += len(chunk)
                    if captured is not None:
                        captured_len += len(chunk)
                        if captured_len <= capture_cap:
                            captured.append(chunk)
                        else:
                            captured = None
                    # The usual small answer arrives whole: end it in the same message.
                    last = response.finished
                    await send({"type": "http.response.body", "body": chunk, "more_body": not last})
                    if last:
                        break
                if not last:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                await response.aclose()
            self.finish()
            answer = b"".join(captured) if captured is not None else None
            if inspector is not None:
                self._inspect(inspector, body, response.status, answer)
            if plan is not None and copy is not None:
                self._dispatch_mirror(
                    route.name, plan, upstream_headers, target, copy.body(), response.status,
                    answer, time.perf_counter() - upstream_started,
                )
        except BodyTooLargeError:
            await self.fail(send, 413, "body_too_large", f"request body exceeds {max_body} bytes")
        except ClientDisconnectedError:
            self.status = 499
            self.finish(error="client_closed")
        except asyncio.CancelledError:
            if not self.scope.get(DISCONNECT_KEY):
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            self.status = 499
            self.finish(error="client_closed")
        except UpstreamError as exc:
            self._count_upstream_error(exc)
            if self.status:
                # The answer had started: all we can do is cut the client's connection short.
                self.finish(error=f"upstream_{exc.kind}")
                raise
            if isinstance(exc, PoolTimeoutError):
                await self.fail(
                    send, 503, "no_healthy_backend",
                    f"all connections to {self.backend} are busy", retry_after=True,
                )
            elif exc.kind == "timeout" or isinstance(exc, UpstreamReadTimeout):
                await self.fail(send, 504, "upstream_timeout", f"{self.backend} timed out")
            else:
                await self.fail(
                    send, 502, "upstream_unavailable", f"{self.backend}: {exc.kind} error"
                )

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
            self.app.log.warning("inspect_error", route=self.route, reason=repr(exc))

    def _count_upstream_error(self, exc: UpstreamError) -> None:
        self.error_kind = exc.kind
        kind = "connect" if exc.kind == "pool" else exc.kind
        self.app.metrics.upstream_errors.labels(self.route, self.backend, kind).inc()
        if self.app.sink is not None and self.status == 0:
            # A candidate that failed before answering counts against it even
            # when the request was rescued by a fallback.
            self.app.sink.observe(self.route, self.variant, self.backend, 502, 0.0, True)

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

    async def read_body(self, receive: Any, max_body: int) -> bytes:
        """The client's whole body (callers know it is small), counted and capped."""
        chunks: list[bytes] = []
        more = True
        while more:
            chunk, more = await self._receive_chunk(receive, max_body)
            if chunk:
                chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _stream_body(
        self, receive: Any, max_body: int, copy: _BodyCopy | None
    ) -> AsyncIterator[bytes]:
        more = True
        while more:
            chunk, more = await self._receive_chunk(receive, max_body)
            if chunk:
                if copy is not None:
                    copy.add(chunk)
                yield chunk

    def _dispatch_mirror(
        self,
        route: str,
        plan: MirrorPlan,
        headers: list[tuple[bytes, bytes]],
        target: bytes,
        body: bytes | None,
        status: int,
        answer: bytes | None,
        latency: float,
    ) -> None:
        job = MirrorJob(
            route=route,
            plan=plan,
            method=self.method.encode("latin-1"),
            target=target,
            headers=headers,
            body=body,
            path=self.path,
            request_id=self.request_id,
            primary_status=status,
            primary_body=answer,
            primary_latency_s=latency,
        )
        assert self.app.mirror is not None
        self.app.mirror.dispatch(job)
