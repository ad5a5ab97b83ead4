"""The open-loop load generator of ``bench/openloop.py`` against a real uvicorn backend."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable
from typing import Any

import pytest

from bench.openloop import OpenLoopResult, run_openloop
from tests.support import ServerThread

pytestmark = pytest.mark.e2e  # starts other processes (tests/conftest.py)

RATE = 200.0
DURATION_S = 1.0


def delayed_app(delay_for: Callable[[int], float]) -> Callable[..., Any]:
    """A raw ASGI app: drains the body, sleeps ``delay_for(n)`` on the n-th request, answers."""
    counter = itertools.count()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await asyncio.sleep(delay_for(next(counter)))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def load(app: Callable[..., Any], method: str = "GET", body: bytes = b"") -> OpenLoopResult:
    """Run the generator for ``DURATION_S`` at ``RATE`` against ``app`` on a free port."""
    with ServerThread(app, lifespan="off") as server:
        return run_openloop(
            f"{server.url}/infer", RATE, DURATION_S, method, body,
            {"Content-Type": "application/json"}, warmup_s=0.2,
        )


def test_steady_backend_every_request_scheduled_answered_and_timed() -> None:
    delay_s = 0.005
    result = load(delayed_app(lambda n: delay_s), "POST", b'{"inputs": []}')
    expected = RATE * DURATION_S
    assert result.sent == pytest.approx(expected, rel=0.05)
    assert result.completed == pytest.approx(expected, rel=0.05)
    assert (result.non_2xx, result.socket_errors, result.timeouts) == (0, 0, 0)
    assert result.p50_ms >= delay_s * 1000
    assert result.p50_ms <= result.p90_ms <= result.p99_ms <= result.p999_ms <= result.max_ms
    # Keeping to the schedule is the machine's doing as much as the generator's: on a machine
    # busier than its cores (other test runs, CI neighbours) it may fall 10 ms behind.
    assert result.kept_up or os.getloadavg()[0] > (os.cpu_count() or 1), result


def test_slow_tenth_request_shows_in_p99_counted_from_schedule() -> None:
    result = load(delayed_app(lambda n: 0.05 if n % 10 == 9 else 0.0))
    assert result.errors == 0
    assert result.completed == pytest.approx(RATE * DURATION_S, rel=0.05)
    assert result.p99_ms >= 50.0
