"""The router's own error responses (SPEC §5) and its exception tree.

Exception tree::

    RouterError
    ├── ClientError            the client sent something the router refuses
    │   ├── BodyTooLargeError  413 body_too_large
    │   └── BadRequestError    400 bad_request
    └── ClientDisconnectedError  the client went away (logged as 499)

Upstream failures have their own tree in ``router.upstream.errors``.
"""

from __future__ import annotations

import orjson

__all__ = [
    "BadRequestError",
    "BodyTooLargeError",
    "ClientDisconnectedError",
    "ClientError",
    "RouterError",
    "error_body",
]


class RouterError(Exception):
    """Base of the router's own exceptions."""


class ClientError(RouterError):
    """A request the router refuses; carries the status and error code to answer with."""

    status = 400
    code = "bad_request"


class BodyTooLargeError(ClientError):
    """The request body exceeds ``proxy.max_request_body``."""

    status = 413
    code = "body_too_large"


class BadRequestError(ClientError):
    """A malformed or ambiguous request (e.g. Content-Length with Transfer-Encoding)."""


class ClientDisconnectedError(RouterError):
    """The client closed its connection before the response was complete."""


def error_body(code: str, detail: str, request_id: str) -> bytes:
    """The JSON body of a router-made error: ``{"error", "detail", "request_id"}``."""
    return orjson.dumps({"error": code, "detail": detail, "request_id": request_id})
