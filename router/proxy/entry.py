"""The proxy listener: a raw ASGI callable (no Starlette objects on the hot path).

Per request: read the snapshot once, match a route, ask its picker for a
``Decision``, then hand the request to an ``Exchange`` that forwards it through
the backend's keep-alive pool and streams the answer back (``router.proxy.exchange``).
Router-made errors are JSON (docs/http.md). A client that goes away cancels the
request task (see ``router.server.protocol``); the upstream connection is then
closed, never reused, and the request is logged with status 499.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from typing import Any

from starlette.types import Receive, Scope, Send

from router.config.model import ProxySpec
from router.proxy.errors import ClientDisconnectedError
from router.proxy.exchange import Exchange
from router.proxy.headers import build_upstream_headers, client_address
from router.proxy.sinks import RequestSink, Services
from router.routing.backends import Backend
from router.routing.matching import body_fields
from router.routing.snapshot import CompiledRoute, Snapshot, SnapshotHolder
from router.shadow.jobs import MirrorSink
from router.telemetry.inspection import BodyInspector
from router.telemetry.logs import access_log as shared_access_log
from router.telemetry.logs import get_logger
from router.telemetry.metrics import Metrics
from strategies import Decision, RequestView

__all__ = ["ProxyApp"]

_rand = random.random


_ids = ""  # hex digits of random bytes from the OS, 32 per request id
_ids_at = 0
_IDS_BATCH = 4096  # bytes read at once: 256 ids per getrandom() call instead of one each


def _new_request_id() -> str:
    """32 hex digits the OS's random source chose (ids may be used to claim feedback)."""
    global _ids, _ids_at
    at = _ids_at
    if at >= len(_ids):
        _ids, at = os.urandom(_IDS_BATCH).hex(), 0
    _ids_at = at + 32
    return _ids[at:at + 32]


def _forget_ids() -> None:
    global _ids, _ids_at
    _ids, _ids_at = "", 0


os.register_at_fork(after_in_child=_forget_ids)  # a forked worker draws its own ids


MAX_REQUEST_ID = 1024  # longer ids are replaced: one goes into every log line of the request


def _valid_request_id(value: str | None) -> bool:
    # Kept byte for byte (docs/faults.md), whatever its bytes: the parser has already refused
    # control characters in header values, and logs are escaped JSON.
    return value is not None and 0 < len(value) <= MAX_REQUEST_ID


class ProxyApp:
    """The raw ASGI proxy application."""

    def __init__(
        self,
        holder: SnapshotHolder,
        metrics: Metrics,
        *,
        sink: RequestSink | None = None,
        mirror: MirrorSink | None = None,
        inspector: BodyInspector | None = None,
        access_log: bool = True,
    ) -> None:
        self.holder = holder
        self.requests_log = shared_access_log()
        self.services = Services(
            metrics,
            get_logger("router.proxy.entry"),
            sink=sink,
            mirror=mirror,
            inspector=inspector,
            access_log=self.requests_log if access_log else None,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        kind = scope["type"]
        if kind == "http":
            await self._handle(scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    @staticmethod
    async def _read_fields(
        ctx: Exchange, receive: Receive, headers: Mapping[str, str], proxy: ProxySpec
    ) -> Mapping[str, Any]:
        """Read a small body before routing (kept for the forward) and return its JSON fields.

        Bodies of unknown length or over ``inspect_max_body`` are not read: they stream
        as usual and match no body rule.
        """
        length = headers.get("content-length", "")
        cap = min(proxy.inspect_max_body, proxy.max_request_body)
        if not length.isdigit() or not 0 < int(length) <= cap:
            return body_fields(b"")
        ctx.preread = await ctx.read_body(receive, proxy.max_request_body)
        return body_fields(ctx.preread)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        snapshot = self.holder.current
        headers: dict[str, str] = {}  # by lower-case name, the first value of each
        for name, value in scope["headers"]:
            key = name.decode("latin-1")
            if key not in headers:
                headers[key] = value.decode("latin-1")
        request_id = headers.get("x-request-id")
        if not _valid_request_id(request_id):
            request_id = _new_request_id()
        assert request_id is not None
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        ctx = Exchange(
            self.services, scope, request_id, scope["method"], raw_path.decode("latin-1"), started
        )
        if snapshot is None:
            return await ctx.fail(send, 503, "no_healthy_backend", "no configuration loaded")
        proxy = snapshot.config.proxy
        try:
            # Header size, header deadline and ambiguous framing (CL + TE) are refused by the
            # server protocol before a request gets here (router.server.protocol).
            if not raw_path.startswith(b"/"):
                raise _Refusal(400, "bad_request", "request target must be a path")
            index = snapshot.index.match(ctx.method, ctx.path, headers)
            fields: Mapping[str, Any] | None = None
            if index is not None and snapshot.routes[index].reads_body:
                fields = await self._read_fields(ctx, receive, headers, proxy)
                if snapshot.routes[index].rule.body:  # the body may rule this route out
                    index = snapshot.index.match(ctx.method, ctx.path, headers, fields)
            route, decision, backend = _pick(ctx, snapshot, index, headers, fields)
            _prepare(ctx, scope, proxy, backend, raw_path, headers)
        except _Refusal as refusal:
            status, code, detail = refusal.args
            return await ctx.fail(send, status, code, detail, retry_after=status == 503)
        except ClientDisconnectedError:
            return ctx.client_gone()
        await ctx.forward(send, receive, route, decision, backend, snapshot.backends, proxy)


class _Refusal(Exception):  # noqa: N818 (a signal inside this module, not an error)
    """A request the proxy answers itself: args are (status, code, detail)."""


def _pick(
    ctx: Exchange, snapshot: Snapshot, index: int | None, headers: Mapping[str, str],
    fields: Mapping[str, Any] | None,
) -> tuple[CompiledRoute, Decision, Backend]:
    """The matched route, its picker's decision and the backend to send to (or its fallback)."""
    if index is None:
        raise _Refusal(404, "no_route", f"no route matches {ctx.method} {ctx.path}")
    route = snapshot.routes[index]
    ctx.route = route.name
    decision = route.cell.picker(
        RequestView(ctx.method, ctx.path, headers, route.name, fields), _rand()
    )
    backend = snapshot.backends[decision.backend]
    ctx.variant, ctx.backend = decision.variant, backend.name
    if not backend.up:
        fallback = ctx.fall_back(snapshot.backends, decision, backend)
        if fallback is None:
            raise _Refusal(503, "no_healthy_backend", f"backend {backend.name} is down")
        backend = fallback
    return route, decision, backend


def _content_length(value: str, max_body: int) -> int:
    """The announced body length; refuses one that is malformed or over ``max_body``."""
    try:
        length = int(value)
    except ValueError:
        raise _Refusal(400, "bad_request", "invalid Content-Length") from None
    if length < 0:
        raise _Refusal(400, "bad_request", "invalid Content-Length")
    if length > max_body:
        raise _Refusal(
            413, "body_too_large", f"request body of {length} bytes exceeds {max_body}"
        )
    return length


def _prepare(
    ctx: Exchange, scope: Scope, proxy: ProxySpec, backend: Backend, raw_path: bytes,
    headers: Mapping[str, str],
) -> None:
    """Fill in the outgoing request: framing, client address, upstream headers, target."""
    length = headers.get("content-length")
    content_length = None if length is None else _content_length(length, proxy.max_request_body)
    ctx.content_length = content_length
    ctx.has_body = (content_length is not None and content_length > 0) or (
        "transfer-encoding" in headers
    )
    raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    ctx.client = client_address(peer, raw_headers, proxy.trusted_proxies)
    host = headers.get("host", "").encode("latin-1") if proxy.preserve_host else backend.host
    ctx.upstream_headers = build_upstream_headers(
        raw_headers,
        host=host or backend.host,
        client_ip=peer.encode("latin-1"),
        scheme=scope.get("scheme", "http").encode("latin-1"),
        request_id=ctx.request_id.encode("latin-1"),
        has_connection_header="connection" in headers,
    )
    query: bytes = scope.get("query_string", b"")
    ctx.target = raw_path + b"?" + query if query else raw_path
