"""Small real backends for proxy tests (raw ASGI apps served by uvicorn)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any


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
    """Waits ``?s=SECONDS`` before answering; records disconnects it notices meanwhile."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        query = dict(
            part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part
        )
        delay = float(query.get("s", default_s))
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
