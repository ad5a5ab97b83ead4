"""An open-loop, fixed-rate HTTP/1.1 load generator in the style of wrk2.

Request ``i`` is due at ``t0 + i / rate`` whatever happened to the earlier ones;
it goes out on an idle keep-alive connection (a new one is opened when none is
idle, up to ``max_connections``; beyond that it waits, and the stall is
counted). Latency is measured from the *scheduled* send time, so a slow
answer delays nothing and hides nothing (no coordinated omission). The sender
wakes at millisecond granularity, so up to ~1 ms of send lag is part of every
latency, equally for every target; ``lag_*`` in the result says how much.

Run it in a process of its own so its CPU is not the measured server's::

    python bench/openloop.py --url URL --rate R --duration S [--method POST
        --body-file F --header 'Content-Type: application/json'] --json

``run_openloop`` does exactly that and parses the JSON line it prints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

__all__ = ["OpenLoopResult", "main", "run_openloop"]

#: Lag of the last send above which the generator did not keep up.
MAX_END_LAG_S = 0.005
#: Fraction of the asked rate the sends must reach to count as keeping up.
MIN_RATE_FRACTION = 0.95


@dataclass(frozen=True, slots=True)
class OpenLoopResult:
    """One open-loop run over the measured window (warm-up excluded); times in ms."""

    rate: float
    duration_s: float
    sent: int
    completed: int
    non_2xx: int
    socket_errors: int
    timeouts: int
    achieved_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    lag_mean_ms: float
    lag_max_ms: float
    lag_end_ms: float
    connections: int
    stalled: int
    kept_up: bool

    @property
    def errors(self) -> int:
        """Non-2xx answers, socket errors and timeouts together."""
        return self.non_2xx + self.socket_errors + self.timeouts


class _Conn(asyncio.Protocol):
    """One keep-alive connection carrying at most one request at a time."""

    def __init__(self, gen: _Generator) -> None:
        self.gen = gen
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.current: tuple[float, bool] | None = None  # (scheduled time, recorded)
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_message_complete(self) -> None:
        self.gen.on_response(self, self.status, self.parser.should_keep_alive())

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.on_lost(self)

    def close(self) -> None:
        """Close the socket; ``connection_lost`` does the bookkeeping."""
        if self.transport is not None:
            self.transport.close()


class _Generator:
    """The pool of connections, the queue of waiting requests and the counters."""

    def __init__(self, host: str, port: int, request: bytes, max_connections: int) -> None:
        self.host, self.port, self.request = host, port, request
        self.max_connections = max_connections
        self.idle: deque[_Conn] = deque()
        self.pending: deque[tuple[float, bool]] = deque()
        self.conns = self.peak = 0  # open or opening
        self.outstanding = 0  # written, not yet answered
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.sent = self.completed = self.non_2xx = self.socket_errors = self.stalled = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.drained = asyncio.Event()  # set whenever nothing is written or waiting

    def check_drained(self) -> None:
        """Set ``drained`` when no request is in flight or waiting for a connection."""
        if not self.outstanding and not self.pending:
            self.drained.set()

    def dispatch(self, scheduled: float, recorded: bool) -> None:
        """Send now on an idle connection, or queue and open one (unless at the cap)."""
        if self.idle:
            self.send(self.idle.popleft(), scheduled, recorded)
            return
        self.pending.append((scheduled, recorded))
        if self.conns < self.max_connections:
            self.open()
        elif recorded:
            self.stalled += 1

    def open(self) -> None:
        """Start connecting; the new connection then serves the oldest waiting request."""
        self.conns += 1
        self.peak = max(self.peak, self.conns)
        task = asyncio.get_running_loop().create_task(self._connect())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: _Conn(self), self.host, self.port)
        except OSError:
            self.conns -= 1
            if self.pending and self.pending.popleft()[1]:
                self.socket_errors += 1
            self.check_drained()
            return
        self.release(conn)

    def send(self, conn: _Conn, scheduled: float, recorded: bool) -> None:
        """Write the request on ``conn``; the send lag is counted for recorded requests."""
        assert conn.transport is not None
        conn.current = (scheduled, recorded)
        conn.transport.write(self.request)
        self.outstanding += 1
        if recorded:
            self.sent += 1
            self.lags.append(time.perf_counter() - scheduled)

    def release(self, conn: _Conn) -> None:
        """``conn`` is free: it takes the oldest waiting request or goes idle."""
        if self.pending:
            self.send(conn, *self.pending.popleft())
        else:
            self.idle.append(conn)

    def on_response(self, conn: _Conn, status: int, keep_alive: bool) -> None:
        """A full answer on ``conn``: record it, then reuse or close the connection."""
        now = time.perf_counter()
        if conn.current is None:
            conn.close()  # an answer nobody asked for
            return
        scheduled, recorded = conn.current
        conn.current = None
        self.outstanding -= 1
        if recorded:
            self.completed += 1
            self.latencies.append(now - scheduled)
            if not 200 <= status < 300:
                self.non_2xx += 1
        if keep_alive:
            self.release(conn)
        else:
            conn.close()
        self.check_drained()

    def on_lost(self, conn: _Conn) -> None:
        """A connection closed: fail its request, if any, and replace it when needed."""
        self.conns -= 1
        if conn in self.idle:
            self.idle.remove(conn)
        if conn.current is not None:
            self.outstanding -= 1
            if conn.current[1]:
                self.socket_errors += 1
            conn.current = None
        if self.pending and self.conns < self.max_connections:
            self.open()
        self.check_drained()


def _percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of sorted seconds, in ms (0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(ordered[rank - 1] * 1000, 3)


def build_request(url: str, method: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    """The raw HTTP/1.1 request sent every time."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method not in ("GET", "HEAD", "DELETE"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _run(
    url: str, rate: float, duration_s: float, request: bytes, warmup_s: float,
    connections: int, max_connections: int, timeout_s: float,
) -> OpenLoopResult:
    parts = urlsplit(url)
    gen = _Generator(parts.hostname or "127.0.0.1", parts.port or 80, request, max_connections)
    for _ in range(min(connections, max_connections)):
        gen.open()
    while gen.tasks:  # pre-open the initial pool so the first requests find it
        await asyncio.wait(set(gen.tasks))
    n_warm, n_total = round(warmup_s * rate), round((warmup_s + duration_s) * rate)
    t0 = time.perf_counter() + 0.001
    i = 0
    while i < n_total:
        now = time.perf_counter()
        while i < n_total and t0 + i / rate <= now:
            gen.dispatch(t0 + i / rate, i >= n_warm)
            i += 1
        if i < n_total:
            # The loop's timers tick in ms: sleeping less would spin and steal CPU.
            await asyncio.sleep(max(t0 + i / rate - time.perf_counter(), 0.001))
    sent_by = time.perf_counter()
    gen.drained.clear()
    gen.check_drained()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(gen.drained.wait(), timeout_s)
    timeouts = gen.outstanding + sum(1 for _, rec in gen.pending if rec)
    for conn in list(gen.idle):
        conn.close()
    window_start = t0 + n_warm / rate
    span = max(sent_by - window_start, duration_s)
    lat = sorted(gen.latencies)
    lag_end = gen.lags[-1] if gen.lags else 0.0
    achieved = gen.sent / span if span > 0 else 0.0
    return OpenLoopResult(
        rate=rate, duration_s=duration_s, sent=gen.sent, completed=gen.completed,
        non_2xx=gen.non_2xx, socket_errors=gen.socket_errors, timeouts=timeouts,
        achieved_rps=round(achieved, 1),
        p50_ms=_percentile(lat, 50), p90_ms=_percentile(lat, 90), p99_ms=_percentile(lat, 99),
        p999_ms=_percentile(lat, 99.9), max_ms=_percentile(lat, 100),
        mean_ms=round(sum(lat) / len(lat) * 1000, 3) if lat else 0.0,
        lag_mean_ms=round(sum(gen.lags) / len(gen.lags) * 1000, 3) if gen.lags else 0.0,
        lag_max_ms=round(max(gen.lags, default=0.0) * 1000, 3),
        lag_end_ms=round(lag_end * 1000, 3),
        connections=gen.peak, stalled=gen.stalled,
        kept_up=lag_end <= MAX_END_LAG_S and achieved >= MIN_RATE_FRACTION * rate,
    )


def run_openloop(
    url: str, rate: float, duration_s: float, method: str = "GET", body: bytes = b"",
    headers: Mapping[str, str] | None = None, *, warmup_s: float = 1.0, connections: int = 8,
    max_connections: int = 256, timeout_s: float = 10.0,
) -> OpenLoopResult:
    """Run the generator in a child process against ``url``; raise RuntimeError on failure."""
    with tempfile.NamedTemporaryFile(prefix="openloop-body-") as body_file:
        body_file.write(body)
        body_file.flush()
        cmd = [
            sys.executable, str(Path(__file__).resolve()), "--url", url, "--rate", str(rate),
            "--duration", str(duration_s), "--method", method, "--body-file", body_file.name,
            "--warmup", str(warmup_s), "--connections", str(connections),
            "--max-connections", str(max_connections), "--timeout", str(timeout_s), "--json",
        ]
        for name, value in (headers or {}).items():
            cmd += ["--header", f"{name}: {value}"]
        limit = warmup_s + duration_s + timeout_s + 30
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"openloop failed ({out.returncode}): {out.stderr.strip()}")
    return OpenLoopResult(**json.loads(lines[-1]))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run once, print the result (one JSON line with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--url", required=True)
    add("--rate", type=float, required=True, help="requests per second")
    add("--duration", type=float, required=True, help="measured seconds, after the warm-up")
    add("--warmup", type=float, default=1.0, help="seconds at the same rate, not recorded (1)")
    add("--method", default="GET")
    add("--body-file", type=Path, help="request body")
    add("--header", action="append", default=[], metavar="'NAME: VALUE'")
    add("--connections", type=int, default=8, help="connections opened up front (8)")
    add("--max-connections", type=int, default=256, help="cap; beyond it requests wait (256)")
    add("--timeout", type=float, default=10.0, help="seconds to wait for the last answers (10)")
    add("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0:
        parser.error("--rate and --duration must be positive")
    body = args.body_file.read_bytes() if args.body_file else b""
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {name.strip(): value.strip() for name, value in headers.items()}
    request = build_request(args.url, args.method.upper(), body, headers)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        runner = asyncio.run
    else:
        runner = uvloop.run
    gc.disable()  # a collection pause would show up as latency
    result = runner(_run(
        args.url, args.rate, args.duration, request, args.warmup,
        args.connections, args.max_connections, args.timeout,
    ))
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        data: dict[str, Any] = asdict(result)
        print("\n".join(f"{key:>14} {value}" for key, value in data.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
