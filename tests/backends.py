"""The tests' fake backends: real servers that behave as a test needs.

ASGI apps served by a real uvicorn (``tests.support.ServerThread``): ``echo_app`` describes
the request it got, ``sse_app`` streams events, ``slow_app`` waits and records arrivals and
disconnects, ``status_app`` always fails, ``webhook_app`` and ``model_app`` play a receiver
and a model server, and ``backend_app`` (the upstream pool's tests) picks its behaviour by
path, so one uvicorn thread serves a whole test module. ``RawServer`` runs in the test's own
event loop for the misbehaving cases uvicorn would never produce.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import threading
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MB = 1024 * 1024


async def read_request(scope: dict[str, Any], receive: Any) -> tuple[bytes, dict[str, str]]:
    """The whole request body and the headers (the first of each name, decoded)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return body, headers


class Recorder:
    """What a backend saw: requests and disconnects, readable from the test thread."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.arrived = 0
        self.disconnects = 0
        self.completed = 0
        self.clients: set[tuple[str, int]] = set()


def echo_app(recorder: Recorder | None = None, name: str = "echo") -> Callable[..., Any]:
    """Answers JSON describing the request (method, raw path, query, headers, body length)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        size = 0
        digest = hashlib.sha256()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            digest.update(message.get("body", b""))
            if not message.get("more_body"):
                break
        info = {
            "backend": name,
            "method": scope["method"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body_length": size,
            "body_sha256": digest.hexdigest(),
        }
        if recorder is not None:
            recorder.requests.append(info)
            if scope.get("client"):
                recorder.clients.add(tuple(scope["client"]))
        body = json.dumps(info).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"set-cookie", b"session=abc"),
                    (b"connection", b"x-hop"),
                    (b"x-hop", b"secret-hop"),
                    (b"keep-alive", b"timeout=5"),
                    (b"x-backend", name.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def sse_app(events: int = 3, gap_s: float = 0.4) -> Callable[..., Any]:
    """Server-sent events, one every ``gap_s`` seconds."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for i in range(events):
            await send(
                {"type": "http.response.body", "body": f"data: {i}\n\n".encode(), "more_body": True}
            )
            await asyncio.sleep(gap_s)
        await send({"type": "http.response.body", "body": b""})

    return app


def slow_app(recorder: Recorder, default_s: float = 2.0) -> Callable[..., Any]:
    """Waits ``?s=SECONDS`` before answering; records arrivals and the disconnects it notices
    meanwhile."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        query = dict(
            part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part
        )
        delay = float(query.get("s", default_s))
        recorder.arrived += 1
        message = await receive()
        while message.get("more_body"):
            message = await receive()
        try:
            disconnected = asyncio.ensure_future(receive())
            done, _ = await asyncio.wait({disconnected}, timeout=delay)
            if done:
                recorder.disconnects += 1
                return
            disconnected.cancel()
        except asyncio.CancelledError:
            recorder.disconnects += 1
            raise
        recorder.completed += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"slow done"})

    return app


def status_app(status: int = 500) -> Callable[..., Any]:
    """Always answers ``status``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b'{"error": "boom"}'})

    return app


class Inbox:
    """What a ``webhook_app`` received: bodies, signature checks, and a gate to hold it."""

    def __init__(self, secret: bytes | None = None, statuses: list[int] | None = None) -> None:
        self.secret = secret
        self.statuses = list(statuses or [])  # answered in turn; 200 once used up
        self.bodies: list[bytes] = []
        self.signatures_ok: list[bool] = []
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.release.set()  # cleared by a test that wants the receiver to hang


def webhook_app(inbox: Inbox) -> Callable[..., Any]:
    """A webhook receiver that checks ``X-Router-Signature`` with ``inbox.secret``."""
    from router.notify.payload import verify

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, headers = await read_request(scope, receive)
        inbox.bodies.append(body)
        if inbox.secret is not None:
            inbox.signatures_ok.append(
                verify(inbox.secret, body, headers.get("x-router-signature"))
            )
        inbox.arrived.set()
        await asyncio.to_thread(inbox.release.wait, 60)
        status = inbox.statuses.pop(0) if inbox.statuses else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


async def send_json(send: Any, body: bytes, status: int = 200) -> None:
    """Answer ``body`` as ``application/json`` with its length."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def model_app(prediction: int | float) -> Callable[..., Any]:
    """A model server answering every request with one OIP V2 prediction: ``prediction``
    as a class label (INT64) when it is an int, as a regression value (FP64) when a float."""
    datatype = "INT64" if isinstance(prediction, int) else "FP64"
    body = json.dumps(
        {"outputs": [{"name": "predict", "datatype": datatype, "shape": [1], "data": [prediction]}]}
    ).encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await read_request(scope, receive)
            await send_json(send, body)

    return app


def flood_app(total: int = 200 * 1024 * 1024, chunk: int = 64 * 1024) -> Callable[..., Any]:
    """Streams ``total`` bytes of ``x`` (chunked) to any request, as fast as it is read."""
    piece = b"x" * chunk

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(total // chunk):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


# -- the upstream pool's backends: one app for a whole module, raw servers, helpers -----------


class Counters:
    """Bytes produced and received by the streaming endpoints (shared with the test thread)."""

    produced = 0
    received = 0


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
        body, _ = await read_request(scope, receive)
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


async def eventually(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
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


def gated_sse_app(gates: list[threading.Event], usage: bytes = b"") -> Callable[..., Any]:
    """Server-sent events ``data: <i>``, each sent once the test sets ``gates[i]``; then
    ``usage`` (a final event, if given) and the end of the stream."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await read_request(scope, receive)
        headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, gate in enumerate(gates):
            if not await asyncio.to_thread(gate.wait, 30):
                return
            body = f"data: {i}\n\n".encode()
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": usage})

    return app
