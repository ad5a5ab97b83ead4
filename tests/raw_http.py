"""A raw HTTP/1.1 client for tests that must send what httpx would refuse or normalise.

Connects to 127.0.0.1, sends bytes as given and parses Content-Length framed answers, so a
test can send a trickled head, two ``Host`` headers or a body that never ends.
"""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Response",
    "assert_refused",
    "connect",
    "exchange",
    "get",
    "parse_responses",
    "read_response",
    "read_until_closed",
]


@dataclass
class Response:
    """One parsed answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def connect(port: int) -> socket.socket:
    """A connection to ``127.0.0.1:port`` with a 5 s timeout."""
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def read_until_closed(conn: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (a reset counts as closed)."""
    conn.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := conn.recv(65536):
            data += chunk
    return data


def parse_responses(data: bytes) -> list[Response]:
    """Split a byte stream into Content-Length framed responses."""
    responses = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {data[:200]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        responses.append(Response(int(status_line.split()[1]), headers, rest[:length]))
        data = rest[length:]
    return responses


def read_response(conn: socket.socket) -> Response:
    """Read exactly one Content-Length framed response, leaving the connection open."""
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(parse_responses(head + b"\r\n\r\n")[0].headers["content-length"])
    while len(body) < length:
        chunk = conn.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    assert len(body) == length, "unexpected bytes after the response"
    return parse_responses(head + b"\r\n\r\n" + body)[0]


def exchange(port: int, raw: bytes) -> tuple[list[Response], bytes]:
    """Send raw bytes, read until the server closes; return the responses and the raw bytes."""
    with connect(port) as conn:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(raw)
        data = read_until_closed(conn)
    return parse_responses(data), data


def get(path: str = "/", *extra: str) -> bytes:
    """A GET request head for ``path`` with ``Host: router.test`` and ``extra`` header lines."""
    lines = [f"GET {path} HTTP/1.1", "Host: router.test", *extra, "", ""]
    return "\r\n".join(lines).encode()


def assert_refused(response: Response, status: int, code: str) -> None:
    """``response`` is a router-made JSON refusal ``code`` with ``status``, closing."""
    assert response.status == status
    assert response.headers["connection"] == "close"
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == code
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
