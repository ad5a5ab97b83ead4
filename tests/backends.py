"""Small real backends for proxy tests (raw ASGI apps served by uvicorn)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any


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
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        info = {
            "backend": name,
            "method": scope["method"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body_length": size,
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
