"""The route-count sweep of ``make bench``: does a route cost requests that do not use it?

One router per file size (1, 100, 1,000 and 10,000 canary routes with distinct path
prefixes, one line each), all on the same two nginx stand-ins. Each round loads every
router in turn with wrk (GET, 64 connections) on the *last* route in its file, the one a
scan in file order would reach last. Then each file is reloaded twice through
``POST /admin/reload``: with one route edited, and with every route edited. Printed:
requests/s, CPU per request and RSS of each router, both reload times, and the targets
(requests/s at 10,000 routes >= 0.9 x at 1 route; RSS <= 60 MiB above; reload <= 2 s;
no request slower than 50 ms during that reload) as met or not met.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
from cpu import metered, tree_cpu_seconds
from procs import free_port, rss_bytes
from scenarios import CANDIDATE, STABLE
from soak import MIB
from stack import Endpoint, Stack
from wrk import run_wrk, write_script

__all__ = ["SIZES", "SweepRow", "render_routes", "run_route_sweep", "state_section", "targets"]

SIZES = (1, 100, 1_000, 10_000)
RPS_RATIO, RSS_MARGIN_MIB, RELOAD_S = 0.9, 60.0, 2.0
# The longest request while the largest file reloads: a few tens of ms of the router's
# own work at most (a loaded machine adds its scheduling delays on top).
RELOAD_STALL_MS = 50.0
CONNECTIONS = 64


def render_routes(count: int, urls: dict[str, str], port: int, admin_port: int,
                  weight: int = 10, first_weight: int | None = None,
                  state: str = "{store: memory}") -> str:
    """A config of ``count`` canary routes ``/m0/`` ... on one line each (10,000 fit in 1 MiB).

    ``first_weight`` gives the first route another weight (a file with one route edited);
    ``state`` is the ``state:`` section, in flow style.
    """
    lines = [
        f"listen: 127.0.0.1:{port}",
        f"admin: {{listen: '127.0.0.1:{admin_port}'}}",
        f"state: {state}",
        "backends:",
        f"  a: {{url: '{urls[STABLE]}', max_connections: 256}}",
        f"  b: {{url: '{urls[CANDIDATE]}', max_connections: 256}}",
        "routes:",
    ]
    for n in range(count):
        share = first_weight if n == 0 and first_weight is not None else weight
        lines.append(f"- {{name: m{n},match: {{path_prefix: /m{n}/}},"
                     f"strategy: {{type: canary,stable: a,candidate: b,weight: {share}}}}}")
    return "\n".join(lines) + "\n"


def last_path(count: int) -> str:
    """A request path that only the last route of a ``count``-route file matches."""
    return f"/m{count - 1}/infer"


@dataclass(slots=True)
class SweepRow:
    """One file size: medians over the rounds, and its reloads (None: not measured)."""

    routes: int
    file_bytes: int
    rps: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    errors: int = 0
    rss_mib: float = 0.0
    reload_one_s: float | None = None
    reload_all_s: float | None = None
    reload_all_cpu_s: float | None = None  # the router's CPU seconds during that reload
    # Sequential requests to the last route: (median, max) ms before and during the reload
    # of every route.
    idle_ms: tuple[float, float] | None = None
    reloading_ms: tuple[float, float] | None = None


def timed_reload(endpoint: Endpoint, path: Path, text: str) -> float | None:
    """Seconds ``POST /admin/reload`` took to install ``text``; None if it did not change.

    ``path`` is a hard link to the config file in another directory: the router's file
    watcher does not hear of the write, so only this request loads it.
    """
    path.write_text(text)
    started = time.perf_counter()
    answer = httpx.post(f"{endpoint.admin_url}/admin/reload", timeout=60, trust_env=False)
    elapsed = time.perf_counter() - started
    body = answer.json()
    return elapsed if answer.status_code == 200 and body.get("changed") else None


class Prober:
    """Sends one request at a time to ``url`` until stopped, timing each."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30, trust_env=False) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                client.get(self.url)
                self.latencies.append((time.perf_counter() - started) * 1000)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> tuple[float, float] | None:
        """(median, max) in ms, or None when no request finished."""
        if not self.latencies:
            return None
        return statistics.median(self.latencies), max(self.latencies)


def probe_reload(endpoint: Endpoint, path: Path, text: str, row: SweepRow) -> None:
    """Reload every route edited, with latency probes before (1 s) and during it."""
    with Prober(endpoint.url) as idle:
        time.sleep(1.0)
    assert endpoint.service is not None
    with Prober(endpoint.url) as busy:
        before = tree_cpu_seconds(endpoint.service.pid)
        row.reload_all_s = timed_reload(endpoint, path, text)
        row.reload_all_cpu_s = tree_cpu_seconds(endpoint.service.pid) - before
    row.idle_ms, row.reloading_ms = idle.summary(), busy.summary()


def targets(rows: Sequence[SweepRow]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for the smallest against the largest file."""
    small, large = rows[0], rows[-1]
    ratio = statistics.median(large.rps) / max(statistics.median(small.rps), 1e-9)
    growth = large.rss_mib - small.rss_mib
    reload_s = large.reload_all_s
    stall = large.reloading_ms[1] if large.reloading_ms else None
    return [
        (f"req/s at {large.routes:,} routes >= {RPS_RATIO} x at {small.routes}",
         f"{ratio:.2f} x", ratio >= RPS_RATIO),
        (f"RSS at {large.routes:,} routes <= {RSS_MARGIN_MIB:.0f} MiB above {small.routes}",
         f"{growth:+.1f} MiB", growth <= RSS_MARGIN_MIB),
        (f"reload of the {large.routes:,}-route file (every route edited) <= {RELOAD_S:g} s",
         "not measured" if reload_s is None else f"{reload_s:.2f} s",
         reload_s is not None and reload_s <= RELOAD_S),
        (f"longest request during that reload <= {RELOAD_STALL_MS:g} ms",
         "not measured" if stall is None else f"{stall:.0f} ms",
         stall is not None and stall <= RELOAD_STALL_MS),
    ]


def _ms(pair: tuple[float, float] | None) -> str:
    return "n/a" if pair is None else f"{pair[0]:.1f} / {pair[1]:.1f}"


def render(rows: Sequence[SweepRow]) -> str:
    """The sweep's table and its targets."""
    out = [f"  {'routes':>7} {'file KiB':>9} {'req/s':>9} {'CPU/req':>9} {'RSS MiB':>8} "
           f"{'reload, 1 edited':>17} {'reload, all edited':>19}"]

    def secs(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f} s"

    for row in rows:
        out.append(
            f"  {row.routes:>7,} {row.file_bytes / 1024:>9.0f} {statistics.median(row.rps):>9,.0f} "
            f"{statistics.median(row.cpu_us):>6.0f} µs {row.rss_mib:>8.1f} "
            f"{secs(row.reload_one_s):>17} {secs(row.reload_all_s):>19}"
            + (f"  ERRORS: {row.errors}" if row.errors else "")
        )
    out.append("\n  Sequential requests to the last route, median / max ms: idle, and while "
               "every route is reloaded")
    for row in rows:
        idle, busy = _ms(row.idle_ms), _ms(row.reloading_ms)
        used = row.reload_all_cpu_s
        cpu = "" if used is None else f"   (the reload: {used:.2f} s of CPU)"
        out.append(f"  {row.routes:>7,}   idle {idle}   reloading {busy}{cpu}")
    out.append("")
    for label, measured, met in targets(rows):
        out.append(f"  {'met    ' if met else 'NOT MET'}  {label}: {measured}")
    return "\n".join(out)


def state_section(store: str, directory: Path) -> str:
    """The ``state:`` section for ``store`` (``memory`` or ``file``, kept in ``directory``)."""
    if store == "file":
        # Not beside the config: each rewrite of it would wake the config watcher.
        return f"{{store: file, path: '{directory / 'state' / 'state.json'}'}}"
    return "{store: memory}"


def _start(stack: Stack, count: int, store: str) -> tuple[Endpoint, Path, Callable[..., str]]:
    port, admin_port = free_port(), free_port()
    urls = {name: instance.url for name, instance in stack.backends.items()}
    state = state_section(store, stack.workdir / f"state-{count}")
    text = partial(render_routes, count, urls, port, admin_port, state=state)
    path = stack.workdir / f"routes-{count}.yaml"
    path.write_text(text())
    endpoint = stack.launch_router(
        f"routes-{count}", path, port, admin_port, last_path(count), ready_timeout=120
    )
    unwatched = stack.workdir / "unwatched" / path.name
    unwatched.parent.mkdir(exist_ok=True)
    unwatched.hardlink_to(path)
    return endpoint, unwatched, text


def run_route_sweep(workdir: Path, duration: float, rounds: int,
                    sizes: Sequence[int] = SIZES, store: str = "memory") -> list[SweepRow]:
    """Start the stand-ins and one router per size (its state on ``store``), measure,
    reload, stop everything."""
    stack = Stack(workdir)
    try:
        stack.start([], {})
        script = write_script(workdir, "GET")
        started = {count: _start(stack, count, store) for count in sizes}
        rows = {count: SweepRow(count, path.stat().st_size) for count, (_, path, _) in
                started.items()}
        stand_ins = [i.service.pid for i in stack.backends.values() if i.service is not None]
        for endpoint, _, _ in started.values():  # warm-up: connections, lazy imports
            run_wrk(endpoint.url, script, 16, 1.0)
        for rnd in range(rounds):
            for count in sizes[rnd % len(sizes):] + sizes[:rnd % len(sizes)]:
                endpoint, row = started[count][0], rows[count]
                assert endpoint.service is not None
                result, cpu = metered(
                    partial(run_wrk, endpoint.url, script, CONNECTIONS, duration),
                    endpoint.service.pid, stand_ins, time.monotonic,
                )
                row.rps.append(result.rps)
                row.cpu_us.append(cpu.per_request_us(result.requests)[0])
                row.errors += result.errors
                print(f"  round {rnd + 1}/{rounds} {count:>6,} routes {result.rps:>9,.0f} req/s",
                      flush=True)
        for count, (endpoint, path, text) in started.items():
            assert endpoint.service is not None
            rows[count].rss_mib = rss_bytes(endpoint.service.pid) / MIB
            probe_reload(endpoint, path, text(weight=20), rows[count])
            edited = text(weight=20, first_weight=30)
            rows[count].reload_one_s = timed_reload(endpoint, path, edited)
        return [rows[count] for count in sizes]
    finally:
        stack.close()
