"""What the proxy listener refuses before the app sees a request, and how it answers.

:class:`HeadLimits` holds one server's request-head limits and refusal hooks;
:class:`RequestRefusedError` is one refusal, which knows its JSON answer (docs/http.md)
(sent with ``Connection: close``, after which the connection closes); :func:`check_head`
holds the rules on a parsed head's framing and ``Host``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from router.server.borrowed import STATUS_LINE

__all__ = ["HeadLimits", "RequestRefusedError", "check_head", "head_size", "headers_too_large"]

# RFC 3986 host (a reg-name of unreserved, sub-delims and %-escapes, or an [IP-literal]) and
# an optional port: no spaces, slashes, "@" or control bytes.
# Hosts already found valid: clients send a handful, so most requests skip the regex (~0.5 µs).
_MAX_VALID_HOSTS = 256
_valid_hosts: set[bytes] = set()
_VALID_HOST = re.compile(rb"(?:[A-Za-z0-9._~!$&'()*+,;=%-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def _new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """Per-server limits on reading a request head, and hooks for reporting refusals.

    ``on_refusal`` is called with the error code of every refused request or connection
    (``request_timeout``, ``headers_too_large``, ``bad_request``, ``not_implemented``, or
    ``idle_timeout`` for a connection closed before it began a request, ``body_timeout``,
    ``send_timeout``); it must not raise.
    """

    header_timeout: float = 10.0
    max_header_bytes: int = 65536
    body_timeout: float = 30.0  # longest pause of a client sending a request body (408)
    send_timeout: float = 30.0  # longest a client may leave a response unread (closed)
    request_id_factory: Callable[[], str] = field(default=_new_request_id)
    on_refusal: Callable[[str], None] | None = None

    def sweep_period(self, keep_alive: float) -> float:
        """How often deadlines are checked: a tenth of the shortest timeout (``keep_alive``,
        the idle connections' one, included), within 50 ms..0.5 s."""
        shortest = min(self.header_timeout, self.body_timeout, self.send_timeout, keep_alive)
        return min(0.5, max(0.05, shortest / 10))


class RequestRefusedError(Exception):
    """A request refused before the app saw it: the status, error code and detail to send."""

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


_CHECKED = frozenset({b"host", b"transfer-encoding", b"content-length"})


def check_head(headers: list[tuple[bytes, bytes]], http_version: str, upgrade: bool) -> None:
    """Refuse a parsed head whose framing or ``Host`` is ambiguous or invalid.

    ``Content-Length`` with ``Transfer-Encoding``, or ``Transfer-Encoding`` in HTTP/1.0: 400;
    a transfer coding other than chunked: 501; two ``Host`` headers, none in HTTP/1.1, or one
    that is not a valid ``host[:port]``: 400 (as nginx); a body on an Upgrade request: 400.
    """
    transfer_encoding: bytes | None = None
    content_length: bytes | None = None
    host: bytes | None = None
    for name, value in headers:
        if name not in _CHECKED:  # the usual header: one set test instead of three compares
            continue
        if name == b"host":
            if host is not None:
                raise RequestRefusedError(400, "bad_request", "more than one Host header")
            host = value
        elif name == b"transfer-encoding":
            if transfer_encoding is not None:
                raise RequestRefusedError(400, "bad_request", "repeated Transfer-Encoding")
            transfer_encoding = value
        elif name == b"content-length":
            content_length = value
    if host is None:
        if http_version == "1.1":
            raise RequestRefusedError(400, "bad_request", "an HTTP/1.1 request needs a Host")
    elif host not in _valid_hosts:
        if not _VALID_HOST.fullmatch(host):
            raise RequestRefusedError(400, "bad_request", "Host is not a valid host[:port]")
        if len(_valid_hosts) < _MAX_VALID_HOSTS:
            _valid_hosts.add(host)
    if transfer_encoding is not None:
        if content_length is not None:
            detail = "both Content-Length and Transfer-Encoding"
            raise RequestRefusedError(400, "bad_request", detail)
        if http_version != "1.1":
            detail = "Transfer-Encoding in an HTTP/1.0 request"
            raise RequestRefusedError(400, "bad_request", detail)
        if transfer_encoding.strip().lower() != b"chunked":
            detail = "transfer codings other than chunked are not supported"
            raise RequestRefusedError(501, "not_implemented", detail)
    has_body = transfer_encoding is not None or (
        content_length is not None and content_length.strip().lstrip(b"0") != b""
    )
    # httptools hands whatever follows an Upgrade request's head to the new protocol, so
    # its body would silently vanish (upgrades are not served here; ws is "none").
    if has_body and upgrade:
        detail = "a request asking for a protocol upgrade cannot carry a body"
        raise RequestRefusedError(400, "bad_request", detail)


def headers_too_large(limit: int) -> RequestRefusedError:
    """The 431 for a request head over ``limit`` bytes."""
    return RequestRefusedError(431, "headers_too_large", f"request headers exceed {limit} bytes")


def head_size(method: bytes, url: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """A request head's size as parsed: request line, header lines, final CRLF."""
    size = len(method) + len(url) + 14
    for name, value in headers:
        size += len(name) + len(value) + 4
    return size
