"""Errors raised by the upstream pool, one tree, each with a ``kind`` for metrics.

```
UpstreamError                      kind: the label of router_upstream_errors_total
 ├── UpstreamConnectError          "connect"  refused/unreachable; nothing was sent
 │    └── UpstreamConnectTimeout   "timeout"  no connection within connect_timeout; nothing sent
 ├── UpstreamReadTimeout           "timeout"  no progress for read_timeout (head, body or a write)
 ├── UpstreamResetError            "reset"    closed early; see request_sent / response_started
 ├── UpstreamProtocolError         "protocol" the backend sent something that is not HTTP/1.x
 └── PoolTimeoutError              "pool"     every connection busy for pool_timeout; nothing sent
```

The proxy maps connect, reset and protocol errors to 502, timeouts to 504 and
``PoolTimeoutError`` to 503. ``UpstreamConnectError`` (and its timeout) and
``PoolTimeoutError`` guarantee that no byte reached the backend and that a
request body iterator was not pulled from, so the caller may retry elsewhere;
``safe_to_repeat`` says when an ``UpstreamResetError`` allows the same.
"""

from __future__ import annotations

__all__ = [
    "PoolTimeoutError",
    "UpstreamConnectError",
    "UpstreamConnectTimeout",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamReadTimeout",
    "UpstreamResetError",
    "safe_to_repeat",
]

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS"})


class UpstreamError(Exception):
    """Base of every error the upstream pool raises."""

    kind: str = "connect"


class UpstreamConnectError(UpstreamError):
    """The connection could not be opened: nothing was sent, retrying anywhere is safe."""

    kind = "connect"


class UpstreamConnectTimeout(UpstreamConnectError):  # noqa: N818 (public name, read like httpx)
    """The connection was not established within ``connect_timeout``; nothing was sent."""

    kind = "timeout"


class UpstreamReadTimeout(UpstreamError):  # noqa: N818 (public name, read like httpx)
    """The backend made no progress for ``read_timeout`` (response head, body, or a write)."""

    kind = "timeout"


class UpstreamResetError(UpstreamError):
    """The connection was closed or reset before the exchange was complete.

    ``request_sent`` tells whether any byte of the request was written;
    ``response_started`` whether any byte of the response was received.
    """

    kind = "reset"

    def __init__(self, message: str, *, request_sent: bool, response_started: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent
        self.response_started = response_started


class UpstreamProtocolError(UpstreamError):
    """The backend's response is not valid HTTP/1.x."""

    kind = "protocol"


class PoolTimeoutError(UpstreamError):
    """All ``max_connections`` stayed busy for ``pool_timeout``; nothing was sent."""

    kind = "pool"


def safe_to_repeat(exc: UpstreamResetError, method: bytes, body: object) -> bool:
    """Whether a request the backend closed on can be sent again, here or elsewhere.

    Nothing of an answer arrived, and either no byte of the request was written
    (and its body, if any, is bytes, not a stream already pulled from) or it is
    an idempotent request without a body.
    """
    if exc.response_started:
        return False
    if not exc.request_sent:
        return body is None or isinstance(body, bytes)
    return method in IDEMPOTENT and (body is None or body == b"")
