"""uvicorn configuration for the proxy listener: httptools pinned, request-head limits on.

The listener runs a raw ASGI app under uvicorn with uvloop and
:class:`~router.server.protocol.HardenedHttpToolsProtocol`, which enforces
``proxy.header_timeout`` and ``proxy.max_header_bytes``, ``proxy.body_timeout``
and ``proxy.send_timeout``, and refuses ambiguous framing and bad ``Host`` headers.
h11 is never used: it accepts bare LF, obs-fold and Content-Length with Transfer-Encoding
(docs/faults.md). Forwarded headers are never trusted here and
uvicorn's access log, which prints query strings, is off (docs/faults.md).
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp

from router.server.borrowed import Config
from router.server.protocol import HardenedHttpToolsProtocol, HeadLimits, RequestRefusedError

__all__ = [
    "HardenedHttpToolsProtocol",
    "HeadLimits",
    "RequestRefusedError",
    "build_uvicorn_config",
    "update_limits",
]

# Settings that keep the listener safe; a caller cannot override them through ``extra``.
_PINNED = frozenset(
    {"http", "http2", "proxy_headers", "forwarded_allow_ips", "access_log", "fd", "uds"}
)


def _limits(
    header_timeout: float, max_header_bytes: int, body_timeout: float, send_timeout: float
) -> HeadLimits:
    """The listener's limits, each refused when it is not positive."""
    if header_timeout <= 0:
        raise ValueError(f"header_timeout must be positive, got {header_timeout!r}")
    if min(body_timeout, send_timeout) <= 0:
        raise ValueError("body_timeout and send_timeout must be positive")
    if max_header_bytes <= 0:
        raise ValueError(f"max_header_bytes must be positive, got {max_header_bytes!r}")
    return HeadLimits(header_timeout, max_header_bytes, body_timeout, send_timeout)


def build_uvicorn_config(
    app: ASGIApp,
    *,
    host: str,
    port: int | None = None,
    sock: socket.socket | None = None,
    header_timeout: float = 10.0,
    max_header_bytes: int = 65536,
    body_timeout: float = 30.0,
    send_timeout: float = 30.0,
    log_level: str = "warning",
    on_refusal: Callable[[str], None] | None = None,
    request_id_factory: Callable[[], str] | None = None,
    **extra: Any,
) -> Config:
    """A ``uvicorn.Config`` serving ``app`` through the hardened httptools protocol.

    Give exactly one of ``port`` and ``sock``. With ``sock`` (an already bound listening
    socket) the caller must start the server as ``Server(config).serve(sockets=[sock])``;
    the config's host and port then only name it in logs. ``extra`` goes to ``uvicorn.Config``
    (e.g. ``lifespan``, default ``"on"``; ``timeout_graceful_shutdown``; ``timeout_keep_alive``;
    ``limit_concurrency``); the settings in ``_PINNED`` cannot be changed. ``on_refusal`` and
    ``request_id_factory`` are described on :class:`HeadLimits`.
    """
    if (port is None) == (sock is None):
        raise ValueError("give exactly one of port and sock")
    pinned = sorted(_PINNED.intersection(extra))
    if pinned:
        raise TypeError(f"build_uvicorn_config does not let callers set {', '.join(pinned)}")
    if sock is not None:
        port = sock.getsockname()[1]
    assert port is not None
    limits = _limits(header_timeout, max_header_bytes, body_timeout, send_timeout)
    limits = dataclasses.replace(limits, on_refusal=on_refusal)
    if request_id_factory is not None:
        limits = dataclasses.replace(limits, request_id_factory=request_id_factory)
    options: dict[str, Any] = {
        "loop": "uvloop",
        "lifespan": "on",
        "ws": "none",
        "interface": "asgi3",
        "server_header": False,
        "date_header": True,
        "log_config": None,  # the router configures logging itself
        **extra,
    }
    return Config(
        app,
        host=host,
        port=port,
        http=HardenedHttpToolsProtocol.with_limits(limits),
        proxy_headers=False,
        access_log=False,
        log_level=log_level,
        **options,
    )


def update_limits(config: Config, **changes: Any) -> None:
    """New :class:`HeadLimits` fields for the next connections of the server built from ``config``.

    uvicorn instantiates the protocol class itself, so the limits live on the class
    ``build_uvicorn_config`` made for this one server; connections already open keep theirs.
    """
    protocol = config.http
    assert isinstance(protocol, type) and issubclass(protocol, HardenedHttpToolsProtocol)
    protocol.limits = dataclasses.replace(protocol.limits, **changes)
