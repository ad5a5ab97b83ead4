"""Event gaps of server-sent streams, direct and through the router, at N concurrent streams.

Starts the stand-in LLM server (``router.demo.llm_server``: one event per token,
``--token-gap-ms`` apart) and a router with one direct route to it, then opens
``--streams`` concurrent streamed chat completions against each in turn and
records, at the client, the time between consecutive events of every stream. The
router measures every event it relays (SSE counters and gap histogram), so the
difference between the two p99s is what the router, streaming metrics included,
adds to event delivery. Raw sockets on the client side: httpx's own cost would
blur the figure.

    python bench/stream_gaps.py --streams 100 --tokens 50 --token-gap-ms 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from procs import Service, free_port, http_status, wait_for

__all__ = ["main", "render", "run_stream_gaps"]

_BODY = json.dumps({"model": "llama-demo", "stream": True,
                    "messages": [{"role": "user", "content": "hello"}]}).encode()


async def _stream(port: int, gaps: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(_BODY)}\r\n"
            "Connection: close\r\n\r\n").encode()
    writer.write(head + _BODY)
    last = None
    buffer = b""
    try:
        while chunk := await reader.read(65536):
            now = time.perf_counter()
            buffer += chunk
            events = buffer.count(b"\n\n")
            buffer = buffer[buffer.rfind(b"\n\n") + 2:] if events else buffer
            for i in range(events):
                if last is not None:
                    gaps.append(0.0 if i else now - last)
                last = now
    finally:
        writer.close()


async def _measure(port: int, streams: int) -> list[float]:
    gaps: list[float] = []
    await asyncio.gather(*(_stream(port, gaps) for _ in range(streams)))
    return gaps


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _start(workdir: Path, tokens: int, gap_ms: float) -> tuple[Service, Service, int, int]:
    """The stand-in LLM server and a router with one direct route to it; their ports."""
    llm_port, port, admin_port = free_port(), free_port(), free_port()
    backend = Service("llm", [sys.executable, "-m", "router.demo.llm_server", "--port",
                              str(llm_port), "--first-token-ms", "5", "--token-gap-ms",
                              str(gap_ms), "--tokens", str(tokens)],
                      workdir / "llm.log").start()
    config = {
        "listen": f"127.0.0.1:{port}", "admin": {"listen": f"127.0.0.1:{admin_port}"},
        "state": {"store": "memory"},
        "backends": {"llm": {"url": f"http://127.0.0.1:{llm_port}", "max_connections": 512}},
        "routes": [{"name": "chat", "match": {"path_prefix": "/"},
                    "strategy": {"type": "direct", "backend": "llm"}}],
    }
    (workdir / "router.yaml").write_text(yaml.safe_dump(config))
    router = Service("router", [sys.executable, "-m", "router", "serve", "--config",
                                str(workdir / "router.yaml"), "--log-format", "json",
                                "--no-access-log"], workdir / "router.log")
    wait_for("llm", lambda: http_status(f"http://127.0.0.1:{llm_port}/health") == 200)
    router.start()
    wait_for("router", lambda: http_status(f"http://127.0.0.1:{admin_port}/readyz") == 200)
    return backend, router, llm_port, port


def run_stream_gaps(
    streams: int = 100, tokens: int = 50, gap_ms: float = 20.0, rounds: int = 2
) -> dict[str, Any]:
    """Gap p50/p99 (ms) direct and through the router, interleaved over ``rounds``."""
    workdir = Path(tempfile.mkdtemp(prefix="router-gaps-"))
    backend = router = None
    try:
        backend, router, llm_port, port = _start(workdir, tokens, gap_ms)
        gaps: dict[str, list[float]] = {"direct": [], "router": []}
        for _ in range(rounds):
            for name, target in (("direct", llm_port), ("router", port)):
                gaps[name] += asyncio.run(_measure(target, streams))
    finally:
        for service in (router, backend):
            if service is not None:
                service.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    result: dict[str, Any] = {"streams": streams, "gaps": len(gaps["router"])}
    for name, values in gaps.items():
        result[name] = {"p50_ms": _p(values, 0.5) * 1000, "p99_ms": _p(values, 0.99) * 1000,
                        "mean_ms": statistics.fmean(values) * 1000}
    result["added_p99_ms"] = result["router"]["p99_ms"] - result["direct"]["p99_ms"]
    return result


def render(result: dict[str, Any]) -> str:
    """The result as a few lines."""
    lines = [
        f"{name}: p50 {result[name]['p50_ms']:.2f} ms, p99 {result[name]['p99_ms']:.2f} ms, "
        f"mean {result[name]['mean_ms']:.2f} ms" for name in ("direct", "router")
    ]
    lines.append(f"router adds {result['added_p99_ms']:.2f} ms to the p99 event gap at "
                 f"{result['streams']} streams ({result['gaps']:,} gaps each; target: 1 ms)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the gap p50/p99 direct and through the router, and their difference."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--token-gap-ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per target")
    args = parser.parse_args(argv)
    print(render(run_stream_gaps(args.streams, args.tokens, args.token_gap_ms, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
