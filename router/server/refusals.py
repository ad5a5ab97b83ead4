"""What the proxy listener refuses before the app sees a request, and how it answers.

:class:`HeadLimits` holds one server's request-head limits and refusal hooks;
:class:`RequestRefusedError` is one refusal, which knows its SPEC §5 JSON answer
(sent with ``Connection: close``, after which the connection closes).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

__all__ = ["HeadLimits", "RequestRefusedError"]


def _new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """Per-server limits on reading a request head, and hooks for reporting refusals.

    ``on_refusal`` is called with the error code of every refused request or connection
    (``request_timeout``, ``headers_too_large``, ``bad_request``, ``not_implemented``, or
    ``idle_timeout`` for a connection closed before it began a request); it must not raise.
    """

    header_timeout: float = 10.0
    max_header_bytes: int = 65536
    request_id_factory: Callable[[], str] = field(default=_new_request_id)
    on_refusal: Callable[[str], None] | None = None


class RequestRefusedError(Exception):
    """A request refused before the app saw it: the status, SPEC error code and detail to send."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail

    def response(self, request_id: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
        """The whole HTTP answer: status line, headers (``Connection: close``), JSON body."""
        body = json.dumps(
            {"error": self.code, "detail": self.detail, "request_id": request_id}
        ).encode()
        content = [STATUS_LINE[self.status]]
        for name, value in default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body),
                b"x-request-id: " + request_id.encode("latin-1") + b"\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        return b"".join(content)
