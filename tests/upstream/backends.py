"""Backends for the upstream pool tests: a uvicorn ASGI app and raw asyncio servers.

``backend_app`` is one raw ASGI app whose path picks the behaviour, so a
single uvicorn thread serves a whole test module. ``RawServer`` runs in the
test's own event loop for the misbehaving cases uvicorn would never produce.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MB = 1024 * 1024


class Counters:
    """Bytes produced and received by the streaming endpoints (shared with the test thread)."""

    produced = 0
    received = 0


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _respond(send: Send, status: int, body: bytes, headers: list[Any] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


async def backend_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Behaviour by path: /echo, /stream, /big, /upload, /slow, /storm, /close, /status/N."""
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    if path == "/big":  # ?mb=N streamed in 64 KiB chunks, chunked encoding
        total = int(scope["query_string"].decode().partition("=")[2] or 1) * MB
        Counters.produced = 0
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"x" * 65536
        while Counters.produced < total:
            Counters.produced += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/upload":  # counts the body as it arrives, reading slowly at first
        Counters.received = 0
        while True:
            message = await receive()
            Counters.received += len(message.get("body", b""))
            if Counters.received < 8 * MB:
                await asyncio.sleep(0.002)
            if not message.get("more_body"):
                break
        await _respond(send, 200, str(Counters.received).encode())
    elif path == "/stream":  # ?n=N chunks, one every 50 ms
        count = int(scope["query_string"].decode().partition("=")[2] or 3)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(count):
            await send({"type": "http.response.body", "body": b"%d;" % i, "more_body": True})
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/storm":  # random delays before the head and between body chunks
        await asyncio.sleep(random.random() * 0.01)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            await asyncio.sleep(random.random() * 0.005)
            await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/close":
        await _respond(send, 200, b"bye", [(b"connection", b"close")])
    elif path.startswith("/status/"):
        status = int(path.rpartition("/")[2])
        await _respond(send, status, b"", [(b"content-length", b"0")] if status == 304 else [])
    else:  # /echo and anything else: describe the request
        body = await _read_body(receive)
        description = {
            "method": scope["method"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body_length": len(body),
            "port": scope["client"][1],
        }
        payload = json.dumps(description).encode()
        await _respond(send, 200, payload, [(b"content-type", b"application/json")])


async def eventually(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    """Poll ``predicate`` without blocking the loop; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


def described(body: bytes) -> dict[str, Any]:
    """The echo endpoint's description of the request it saw."""
    result: dict[str, Any] = json.loads(body)
    return result


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """An asyncio TCP server in the test's loop; counts connections, runs ``handler`` for each."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.closed = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self.closed += 1

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """Read one request head (up to the blank line)."""
    return await reader.readuntil(b"\r\n\r\n")


def answer_each(response: bytes) -> Handler:
    """A handler answering every (bodiless) request on a connection with ``response``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_head(reader)
            writer.write(response)

    return handler
