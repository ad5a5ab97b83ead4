"""What the admin listener refuses before a handler runs: cross-site actions, odd or big bodies.

A browser page on another site can send a "simple" request (``text/plain``, or an empty
POST) to a loopback admin API without a preflight; with no token configured nothing else
would stop it. :class:`BodyGuard` therefore, for every request that may change something
(any method but GET, HEAD and OPTIONS):

- without a token, refuses with 403 an ``Origin`` that does not name the ``Host`` the
  request was sent to, and ``Sec-Fetch-Site: cross-site`` or ``same-site``;
- refuses with 415 a body that is not ``Content-Type: application/json`` (an empty body is
  fine);
- refuses with 413 a body over the route's cap (64 KiB unless ``body_limits`` gives its
  path more), before reading it when ``Content-Length`` says so, else while reading it.

Admin bodies are small, so an accepted one is read whole here and handed to the handler as
one message: a chunked body over the cap is cut off at the cap, never buffered further.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_BODY_LIMIT", "BodyGuard", "origin_matches_host"]

DEFAULT_BODY_LIMIT = 64 * 1024
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CROSS_SITE = frozenset({b"cross-site", b"same-site"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host_port(host: str, default_port: int) -> tuple[str, int] | None:
    """``host[:port]`` (``[v6]:port`` too) as a lower-case host and a port; None if malformed."""
    parts = urlsplit(f"//{host.strip()}")
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path:
        return None
    return parts.hostname, port if port is not None else default_port


def origin_matches_host(origin: str, host: str) -> bool:
    """Whether an ``Origin`` header (``scheme://host[:port]``) names the same place as ``Host``."""
    parts = urlsplit(origin.strip())
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    if default is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        return False  # "null", a file: origin, or not an origin at all
    sent = _host_port(parts.netloc, default)
    return sent is not None and sent == _host_port(host, default)


def _media_type(value: bytes) -> bytes:
    return value.partition(b";")[0].strip().lower()


class BodyGuard:
    """ASGI middleware applying the module's refusals; ``tokenless()`` says whether they apply."""

    def __init__(
        self,
        app: ASGIApp,
        tokenless: Callable[[], bool],
        respond: Callable[[int, str, str], Callable[[Scope, Receive, Send], Awaitable[None]]],
        body_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.tokenless = tokenless
        self.respond = respond
        self.body_limits = dict(body_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)
        refusal = self._refusal(headers)
        if refusal is None:
            cap = self.body_limits.get(scope["path"], DEFAULT_BODY_LIMIT)
            body = await self._read_body(receive, headers, cap)
            if body is None:
                refusal = (413, "body_too_large", f"request body exceeds {cap} bytes")
            elif body and _media_type(headers.get(b"content-type", b"")) != b"application/json":
                refusal = (415, "unsupported_media_type", "a body must be application/json")
        if refusal is not None:
            await self.respond(*refusal)(scope, receive, _closing(send))
            return
        await self.app(scope, _replay(body or b"", receive), send)

    def _refusal(self, headers: Mapping[bytes, bytes]) -> tuple[int, str, str] | None:
        if not self.tokenless():
            return None
        if headers.get(b"sec-fetch-site", b"").strip().lower() in _CROSS_SITE:
            return 403, "forbidden", "cross-site requests cannot act on the admin API"
        origin = headers.get(b"origin")
        if origin is not None and not origin_matches_host(
            origin.decode("latin-1"), headers.get(b"host", b"").decode("latin-1")
        ):
            return 403, "forbidden", "the request's Origin does not match its Host"
        return None

    @staticmethod
    async def _read_body(
        receive: Receive, headers: Mapping[bytes, bytes], cap: int
    ) -> bytes | None:
        """The whole body, or None once it passes ``cap`` (read no further)."""
        declared = headers.get(b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > cap:
            return None
        parts: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                return None
            parts.append(chunk)
            more = message.get("more_body", False)
        return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` giving ``body`` as one message, then the client's own (disconnect)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def _closing(send: Send) -> Send:
    """``send`` with ``Connection: close`` on the response: the unread body is not drained."""

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", ()), (b"connection", b"close")]
            message = {**message, "headers": headers}
        await send(message)

    return closing

