"""The LLM demo's load driver: streamed chat completions from sticky users, timed to first token.

Each request is an OpenAI-style ``POST /v1/chat/completions`` with ``"stream": true``
and a ``user`` field from a pool of users, so a canary's ``sticky.body_field: user``
keeps each user's conversation on one version. The time to first token is when the
first event arrived; which version answered is read from the router's headers.
"""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import orjson

from router.demo.traffic import UNKNOWN, LoadStats, Outcome, answered

__all__ = ["chat_body", "drive_llm"]

QUESTIONS = (
    "What is the capital of France?",
    "Summarise the plot of Hamlet in one sentence.",
    "Write a haiku about load balancers.",
    "Explain canary releases to a five year old.",
)


def chat_body(rng: random.Random, users: int) -> bytes:
    """One streamed chat completion request from a random user of ``users``."""
    return orjson.dumps({
        "model": "llama-demo",
        "user": f"user-{rng.randrange(users)}",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": rng.choice(QUESTIONS)}],
    })


async def _one(client: httpx.AsyncClient, url: str, body: bytes) -> Outcome:
    started = time.monotonic()
    ttft = None
    async with client.stream(
        "POST", url, content=body, headers={"content-type": "application/json"}
    ) as response:
        async for _ in response.aiter_raw():
            if ttft is None:
                ttft = time.monotonic() - started
        return answered(response, started, ttft)


async def _worker(
    client: httpx.AsyncClient, url: str, stats: LoadStats, rng: random.Random, users: int
) -> None:
    while True:
        started = time.monotonic()
        try:
            stats.record(await _one(client, url, chat_body(rng, users)))
        except httpx.HTTPError:
            stats.record(Outcome(time.monotonic(), UNKNOWN, UNKNOWN, UNKNOWN, 0,
                                 time.monotonic() - started))
            await asyncio.sleep(0.2)


async def drive_llm(
    url: str, stats: LoadStats, *, workers: int = 8, users: int = 200, seed: int | None = None
) -> None:
    """Keep ``workers`` streamed chat completions in flight at ``url`` until cancelled."""
    rng = random.Random(seed)  # noqa: S311 - user choice, not a secret
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(timeout=30.0, limits=limits, trust_env=False) as client:
        await asyncio.gather(*(_worker(client, url, stats, rng, users) for _ in range(workers)))
