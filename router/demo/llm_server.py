"""An OpenAI-compatible stand-in LLM server: chat completions, streamed or not, with usage.

It does not run a model: the answer is a fixed sentence naming the model, one
"token" per word, so tests and the demo know what to expect. What it imitates
faithfully is the wire: ``POST /v1/chat/completions`` answers a ``chat.completion``
object, or with ``"stream": true`` server-sent ``chat.completion.chunk`` events (a
role delta, one content delta per token, a finish event, a ``usage`` event when
``stream_options.include_usage`` is set, then ``data: [DONE]``), as vLLM and the
OpenAI API do. ``first_token_s`` delays the first token (time to first token) and
``token_gap_s`` spaces the rest. ``GET /v1/models`` lists the model; ``GET /health``
answers 200.

    python -m router.demo.llm_server --port 8101 --model llama-demo --first-token-ms 400
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn

__all__ = ["LlmBehaviour", "create_llm_app", "main"]

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
_SSE = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class LlmBehaviour:
    """What the stand-in answers and how fast: the model's name, its sentence, its pace."""

    model: str = "llama-demo"
    first_token_s: float = 0.05
    token_gap_s: float = 0.01
    tokens: int = 12

    def words(self) -> list[str]:
        """The answer, one token per word."""
        sentence = f"This is {self.model} answering your question with a short canned reply"
        words = sentence.split()
        return [words[i % len(words)] for i in range(self.tokens)]


def _prompt_tokens(request: dict[str, Any]) -> int:
    messages = request.get("messages")
    if not isinstance(messages, list):
        return 0
    return sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))


async def _read_json(receive: Receive) -> Any:
    body = b""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return orjson.loads(body) if body else {}


async def _answer(send: Send, status: int, doc: Any) -> None:
    body = orjson.dumps(doc)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Chat:
    """One chat completion request and the documents that answer it."""

    def __init__(self, behaviour: LlmBehaviour, request: dict[str, Any]) -> None:
        self.behaviour = behaviour
        self.id = f"chatcmpl-{next(_ids)}"
        self.created = int(time.time())
        self.words = behaviour.words()
        self.usage = {
            "prompt_tokens": _prompt_tokens(request),
            "completion_tokens": len(self.words),
            "total_tokens": _prompt_tokens(request) + len(self.words),
        }
        options = request.get("stream_options")
        self.include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

    def _doc(self, kind: str, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        doc = {"id": self.id, "object": kind, "created": self.created,
               "model": self.behaviour.model, "choices": choices}
        doc.update(extra)
        return doc

    def whole(self) -> dict[str, Any]:
        """The non-streamed answer."""
        message = {"role": "assistant", "content": " ".join(self.words)}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        return self._doc("chat.completion", [choice], usage=self.usage)

    async def events(self) -> AsyncIterator[bytes]:
        """The streamed answer, event by event, at the behaviour's pace."""
        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return self._doc("chat.completion.chunk", [choice])

        # Like vLLM, nothing is sent before the first token exists (the prefill).
        await asyncio.sleep(self.behaviour.first_token_s)
        yield _event(chunk({"role": "assistant", "content": ""}))
        for i, word in enumerate(self.words):
            if i:
                await asyncio.sleep(self.behaviour.token_gap_s)
            yield _event(chunk({"content": word if i == 0 else " " + word}))
        yield _event(chunk({}, "stop"))
        if self.include_usage:
            yield _event(self._doc("chat.completion.chunk", [], usage=self.usage))
        yield b"data: [DONE]\n\n"


def _event(doc: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(doc) + b"\n\n"


def create_llm_app(behaviour: LlmBehaviour) -> Callable[[dict[str, Any], Receive, Send],
                                                         Awaitable[None]]:
    """The raw ASGI app of one stand-in model server."""

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method == "GET" and path == "/health":
            return await _answer(send, 200, {"status": "ok", "model": behaviour.model})
        if method == "GET" and path == "/v1/models":
            model = {"id": behaviour.model, "object": "model", "owned_by": "traffic-router-demo"}
            return await _answer(send, 200, {"object": "list", "data": [model]})
        if method != "POST" or path != "/v1/chat/completions":
            return await _answer(send, 404, {"error": {"message": f"no route {method} {path}"}})
        try:
            request = await _read_json(receive)
        except orjson.JSONDecodeError:
            return await _answer(send, 400, {"error": {"message": "body is not JSON"}})
        chat = _Chat(behaviour, request if isinstance(request, dict) else {})
        if not (isinstance(request, dict) and request.get("stream")):
            await asyncio.sleep(behaviour.first_token_s + behaviour.token_gap_s * len(chat.words))
            return await _answer(send, 200, chat.whole())
        await send({"type": "http.response.start", "status": 200, "headers": _SSE})
        async for event in chat.events():
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve one stand-in model with uvicorn until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m router.demo.llm_server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--model", default="llama-demo", help="the model name it answers as")
    parser.add_argument("--first-token-ms", type=float, default=50.0)
    parser.add_argument("--token-gap-ms", type=float, default=10.0)
    parser.add_argument("--tokens", type=int, default=12, help="tokens per answer")
    args = parser.parse_args(argv)
    behaviour = LlmBehaviour(args.model, args.first_token_ms / 1000, args.token_gap_ms / 1000,
                             args.tokens)
    uvicorn.run(create_llm_app(behaviour), host=args.host, port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
