"""Helpers for the rollout end-to-end tests (canary, blue-green): real routers, real backends.

``Knobs``/``knob_app`` are backends whose faults a test switches at run time; ``burst``
and ``Load`` send traffic over keep-alive connections and record who answered; ``Stack``
is a router process whose config file a test rewrites; the ``*_fixture`` helpers are the
bodies of the module fixtures both test modules declare.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support import RouterProcess, ServerThread, wait_until

__all__ = [
    "Knobs",
    "Load",
    "Outcome",
    "Stack",
    "burst",
    "failures",
    "knob_app",
    "metric",
    "reset_knobs",
    "running_backends",
    "running_stack",
    "share",
]


# -- fault-injectable backends ---------------------------------------------------------


@dataclass
class Knobs:
    """What a ``knob_app`` backend does; the test mutates it while the backend runs."""

    fail: bool = False
    health_status: int = 200
    delay_s: float = 0.0
    served: int = 0
    # The JSON answer to the n-th request (a model's prediction), instead of the default.
    answer: Callable[[int], Any] | None = None

    def reset(self) -> None:
        """Back to healthy and fast."""
        self.fail, self.health_status, self.delay_s = False, 200, 0.0
        self.answer = None


def knob_app(name: str, knobs: Knobs) -> Callable[..., Any]:
    """A backend naming itself (JSON ``backend`` and ``x-backend``); ``/health`` and
    failures (500) follow ``knobs``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        message = await receive()
        while message.get("more_body"):
            message = await receive()
        if scope["path"] == "/health":
            status = knobs.health_status
        else:
            knobs.served += 1
            if knobs.delay_s:
                await asyncio.sleep(knobs.delay_s)
            status = 500 if knobs.fail else 200
        doc = {"backend": name, "status": status}
        if knobs.answer is not None and status == 200:
            doc = knobs.answer(knobs.served)
        body = json.dumps(doc).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"x-backend", name.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


# -- traffic ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One client request: when it started and ended (monotonic), and how it went."""

    started: float
    ended: float
    status: int
    backend: str | None
    error: str | None = None


class _Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP for these tests.

    httpx costs ~10 ms of CPU per request here (it shares the GIL with the backends'
    uvicorn threads), which would make thousands of requests take minutes.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str, headers: dict[str, str], body: bytes | None = None) -> Outcome:
        """A GET, or a POST of ``body`` (JSON) when given."""
        started = time.monotonic()
        try:
            status, found = await asyncio.wait_for(self._exchange(path, headers, body), 15)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            self.close()
            return Outcome(started, time.monotonic(), 0, None, repr(exc))
        return Outcome(started, time.monotonic(), status, found.get("x-backend"))

    async def _exchange(
        self, path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str]]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        method = "GET" if body is None else "POST"
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines += ["content-type: application/json", f"content-length: {len(body)}"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        found: dict[str, str] = {}
        for line in head[1:]:
            if line:
                key, _, value = line.partition(":")
                found[key.strip().lower()] = value.strip()
        if "content-length" in found:
            await reader.readexactly(int(found["content-length"]))
        elif found.get("transfer-encoding", "").lower() == "chunked":
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                await reader.readexactly(size + 2)
            await reader.readuntil(b"\r\n")
        else:
            await reader.read()
            self.close()
        if found.get("connection", "").lower() == "close":
            self.close()
        return status, found

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


def _target(url: str) -> tuple[str, int, str]:
    parts = httpx.URL(url)
    assert parts.port is not None
    return parts.host, parts.port, parts.raw_path.decode("ascii")


def burst(
    url: str, n: int, concurrency: int = 24,
    headers: Callable[[int], dict[str, str]] = lambda i: {}, body: bytes | None = None,
) -> list[Outcome]:
    """``n`` GETs (POSTs of ``body`` when given) to ``url`` with ``concurrency`` in flight;
    ``headers(i)`` for request ``i``."""

    async def main() -> list[Outcome]:
        host, port, path = _target(url)
        queue = iter(range(n))
        results: list[Outcome | None] = [None] * n

        async def worker() -> None:
            connection = _Connection(host, port)
            for i in queue:
                results[i] = await connection.get(path, headers(i), body)
            connection.close()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return [r for r in results if r is not None]

    return asyncio.run(main())


class Load:
    """Continuous concurrent GET traffic from a background thread, until ``stop``.

    Each worker waits ``gap_s`` between its requests, so the load is steady
    without starving the router of the machine's two cores.
    """

    def __init__(
        self, url: str, workers: int = 4, gap_s: float = 0.005,
        headers: dict[str, str] | None = None, body: bytes | None = None,
    ) -> None:
        self.url = url
        self.body = body
        self.workers = workers
        self.gap_s = gap_s
        self.headers = headers or {}
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        host, port, path = _target(self.url)

        async def worker() -> None:
            connection = _Connection(host, port)
            while not self._stop.is_set():
                self.outcomes.append(await connection.get(path, self.headers, self.body))
                await asyncio.sleep(self.gap_s)
            connection.close()

        await asyncio.gather(*(worker() for _ in range(self.workers)))

    def start(self) -> Load:
        """Start the workers and wait for the first answer."""
        self._thread.start()
        wait_until(lambda: self.outcomes, timeout=10)
        return self

    def stop(self) -> list[Outcome]:
        """Stop the workers; every outcome so far."""
        self._stop.set()
        self._thread.join(timeout=20)
        return list(self.outcomes)

    def since(self, moment: float) -> list[Outcome]:
        """Outcomes of requests started at or after ``moment`` (monotonic)."""
        return [o for o in list(self.outcomes) if o.started >= moment]

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def failures(outcomes: list[Outcome]) -> list[Outcome]:
    """Outcomes that are not a 200."""
    return [o for o in outcomes if o.status != 200]


# -- the router under test ---------------------------------------------------------------


class Stack:
    """A router process whose config file the test rewrites (routes and backends)."""

    def __init__(self, directory: Path, backends: dict[str, str], store: str = "file") -> None:
        self.dir = directory
        self.config = directory / "router.yaml"
        self.backends: dict[str, dict[str, Any]] = {n: {"url": u} for n, u in backends.items()}
        self.routes: dict[str, dict[str, Any]] = {}
        self.store = store
        self.state_options: dict[str, Any] = {}  # more of the ``state`` section (path, url...)
        self.sections: dict[str, Any] = {}  # other top-level sections (proxy, admin...)
        self.router: RouterProcess | None = None

    def render(self) -> bytes:
        """The config file for the current backends and routes."""
        state: dict[str, Any] = {"store": self.store}
        if self.store == "file":
            state["path"] = str(self.dir / "state.json")
        state.update(self.state_options)
        routes = [
            {"name": name, "match": {"path_prefix": f"/r/{name}"}, "strategy": strategy}
            for name, strategy in self.routes.items()
        ] or [{"name": "none", "match": {"path_prefix": "/none"},
               "strategy": {"type": "direct", "backend": next(iter(self.backends))}}]
        doc = {**self.sections, "state": state, "backends": self.backends, "routes": routes}
        return yaml.safe_dump(doc, sort_keys=False).encode()

    def write(self) -> str:
        """Write the file; the version the router will report for it."""
        raw = self.render()
        self.config.write_bytes(raw)
        return hashlib.sha256(raw).hexdigest()[:8]

    def apply(self, timeout: float = 20.0) -> float:
        """Write the file and wait until the router serves it; the seconds that took."""
        started = time.monotonic()
        version = self.write()
        if self.router is not None:
            wait_until(lambda: self.status()["config"]["version"] == version, timeout=timeout)
        return time.monotonic() - started

    def start(self) -> RouterProcess:
        """A new router process on the current file (the state file is kept)."""
        self.write()
        self.router = RouterProcess(self.config).start()
        return self.router

    def restart(self) -> RouterProcess:
        """Stop the router and start a new process on the same file and state."""
        assert self.router is not None
        self.router.stop()
        return self.start()

    def add_route(self, name: str, strategy: dict[str, Any]) -> None:
        """Add (or replace) a route in the file and wait until it is served."""
        self.routes[name] = strategy
        self.apply()

    def stop(self) -> None:
        """Stop the router, if running."""
        if self.router is not None:
            self.router.stop()

    @property
    def live(self) -> RouterProcess:
        """The running router."""
        assert self.router is not None
        return self.router

    def url(self, route: str) -> str:
        """The proxy URL of ``route``."""
        return f"{self.live.url}/r/{route}"

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call to the admin API."""
        return httpx.request(method, f"{self.live.admin_url}{path}", timeout=10, **kwargs)

    def status(self) -> dict[str, Any]:
        """``GET /admin/status``."""
        body: dict[str, Any] = self.admin("GET", "/admin/status").json()
        return body

    def route_status(self, route: str) -> dict[str, Any]:
        """One route's part of the status."""
        body: dict[str, Any] = self.status()["routes"][route]
        return body

    def act(self, route: str, action: str, reason: str | None = None) -> httpx.Response:
        """``POST /admin/routes/{route}/{action}``."""
        body = {"reason": reason} if reason else None
        return self.admin("POST", f"/admin/routes/{route}/{action}", json=body)

    def events(self, route: str, kind: str | None = None) -> list[dict[str, Any]]:
        """``/admin/events`` of ``route`` (of one ``kind``), newest first."""
        found = self.admin("GET", "/admin/events?limit=1000").json()["events"]
        return [e for e in found if e.get("route") == route and kind in (None, e["event"])]

    def log_events(self, route: str, kind: str) -> list[dict[str, Any]]:
        """Decision lines of ``route`` and ``kind`` in the router's JSON log."""
        return [record for record in self.log_records(kind) if record.get("route") == route]

    def log_records(self, kind: str) -> list[dict[str, Any]]:
        """Every line of event ``kind`` in the router's JSON log."""
        found = []
        for line in self.live.logs().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == kind:
                found.append(record)
        return found


def metric(admin_url: str, name: str, **labels: str) -> float | None:
    """The value of sample ``name`` with ``labels`` on ``/metrics``, or None if absent."""
    text = httpx.get(f"{admin_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def share(outcomes: list[Outcome], backend: str) -> float:
    """The fraction of ``outcomes`` answered by ``backend``."""
    return sum(o.backend == backend for o in outcomes) / len(outcomes)


# -- fixture bodies -----------------------------------------------------------------------


@contextlib.contextmanager
def running_backends(
    knobs: dict[str, Knobs], prefix: str = ""
) -> Iterator[dict[str, ServerThread]]:
    """One ``knob_app`` server per knob, named ``prefix + key``; stopped on exit."""
    started = {
        f"{prefix}{key}": ServerThread(knob_app(f"{prefix}{key}", k)).start()
        for key, k in knobs.items()
    }
    try:
        yield started
    finally:
        for server in started.values():
            server.stop()


def reset_knobs(knobs: dict[str, Knobs]) -> Iterator[None]:
    """Every backend healthy before and after a test (an autouse fixture's body)."""
    for k in knobs.values():
        k.reset()
    yield
    for k in knobs.values():
        k.reset()


@contextlib.contextmanager
def running_stack(
    directory: Path, backends: dict[str, ServerThread], store: str, *, start: bool = True
) -> Iterator[Stack]:
    """A ``Stack`` on ``backends`` (started unless ``start`` is False), stopped on exit."""
    stack = Stack(directory, {n: s.url for n, s in backends.items()}, store)
    if start:
        stack.start()
    try:
        yield stack
    finally:
        stack.stop()
