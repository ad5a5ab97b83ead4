"""The router's own error responses (docs/http.md) and its exception tree.

Exception tree::

    RouterError
    ├── BodyTooLargeError        the body passed proxy.max_request_body (413 body_too_large)
    └── ClientDisconnectedError  the client went away (logged as 499)

Upstream failures have their own tree in ``router.upstream.errors``.
"""

from __future__ import annotations

import orjson

__all__ = [
    "BodyTooLargeError",
    "ClientDisconnectedError",
    "RouterError",
    "error_body",
]


class RouterError(Exception):
    """Base of the router's own exceptions."""


class BodyTooLargeError(RouterError):
    """The request body exceeds ``proxy.max_request_body``."""


class ClientDisconnectedError(RouterError):
    """The client closed its connection before the response was complete."""


def error_body(code: str, detail: str, request_id: str) -> bytes:
    """The JSON body of a router-made error: ``{"error", "detail", "request_id"}``."""
    return orjson.dumps({"error": code, "detail": detail, "request_id": request_id})
