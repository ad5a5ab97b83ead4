"""Micro-benchmark: router.upstream.UpstreamPool against httpx.AsyncClient (not a test).

A uvicorn backend (httptools, uvloop) runs in a child process and answers
every GET with a small JSON body. The client side runs on uvloop in this
process and makes N GETs, first one at a time, then from C concurrent workers,
reading each body to the end. It prints requests/s and the client's CPU time
per request (the number the hot path cares about; the backend's share of the
2 cores limits requests/s).

    .venv/bin/python bench/pool_micro.py [-n 5000] [-c 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router.upstream import UpstreamPool

__all__ = ["app", "main"]

BODY = b'{"model":"demo","version":"v1","outputs":[{"name":"y","data":[0.25,0.75]}]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]

Fetch = Callable[[], Awaitable[int]]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The backend: a fixed small JSON answer."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def _serve(port: int) -> None:
    import uvicorn

    uvicorn.run(
        app, host="127.0.0.1", port=port, http="httptools", loop="uvloop",
        log_level="warning", access_log=False, lifespan="off",
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("backend did not start")


async def _run(fetch: Fetch, total: int, concurrency: int) -> tuple[float, float]:
    """Requests/s and client CPU microseconds per request."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            assert await fetch() == len(BODY)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return total / wall, cpu / total * 1e6


async def _bench(url: str, total: int, concurrency: int, rounds: int) -> None:
    pool = UpstreamPool(url, max_connections=100)
    client = httpx.AsyncClient(
        base_url=url, trust_env=False, timeout=30,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    )
    headers = [(b"host", b"backend"), (b"accept", b"application/json")]

    async def via_pool() -> int:
        async with await pool.request(b"GET", b"/v1/predict?x=1", headers) as response:
            return len(await response.read())

    async def via_httpx() -> int:
        response = await client.get("/v1/predict?x=1", headers={"accept": "application/json"})
        return len(response.content)

    clients: dict[str, Fetch] = {"UpstreamPool": via_pool, "httpx.AsyncClient": via_httpx}
    for fetch in clients.values():  # warm up: connections, caches
        await _run(fetch, 500, concurrency)
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(rounds):  # interleaved, so drift hits both alike
        for name, fetch in clients.items():
            for mode, conc in (("sequential", 1), (f"concurrent x{concurrency}", concurrency)):
                results.setdefault((name, mode), []).append(await _run(fetch, total, conc))
    print(f"{total} GETs per run, best of {rounds} runs, uvloop client, uvicorn backend")
    print(f"{'client':<20} {'mode':<16} {'req/s':>9} {'client CPU/req':>15}")
    for (name, mode), runs in results.items():
        rps = max(r for r, _ in runs)
        cpu = min(c for _, c in runs)
        print(f"{name:<20} {mode:<16} {rps:>9,.0f} {cpu:>12,.0f} µs")
    await client.aclose()
    await pool.aclose()


def main() -> None:
    """Start the backend, run the comparison, stop the backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="GETs per run")
    parser.add_argument("-c", type=int, default=32, help="concurrent workers")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve)
        return
    port = _free_port()
    backend = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        _wait_listening(port)
        uvloop.run(_bench(f"http://127.0.0.1:{port}", args.n, args.c, args.rounds))
    finally:
        backend.terminate()
        backend.wait(timeout=10)


if __name__ == "__main__":
    main()
