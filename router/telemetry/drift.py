"""Input drift per route (``drift:``): sampled off the request path, judged in the background.

On the request path, ``DriftMonitor.offer`` (called by the body inspector after
the client has its answer) draws one random number and, for a ``sample`` share
of a drift route's requests, appends the body it already holds to a bounded
queue (1,024 bodies and 4 MiB; beyond, the body is dropped and counted): O(1),
nothing parsed. ``run`` drains the queue four times a second, at most 256
feature rows each time so the event loop is never held long — parse, read the
rows, add them to the route's bounded samples
(``router.telemetry.drift_samples``) — and every
``EVALUATE_S`` computes each feature's PSI, sets
``router_input_drift_psi{route,feature}`` and emits ``input_drift`` when a
feature crosses ``max_psi`` (once per crossing: again only after it fell back
below). A reference ``file`` is read off the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from router.telemetry.drift_samples import Figures, RouteSamples
from router.telemetry.events import EventLog, iso_time
from router.telemetry.logs import get_logger
from router.telemetry.metrics import Metrics
from strategies.drift import DriftSpec, FeatureReport, Value, extract_rows, extract_table
from strategies.payloads import parse_body

__all__ = ["DRAIN_S", "EVALUATE_S", "READ_BYTES_PER_S", "DriftMonitor", "read_reference_file"]

QUEUE = 1024  # bodies waiting to be read, and at most QUEUE_BYTES of them
QUEUE_BYTES = 4 * 1024 * 1024
READ_BYTES_PER_S = 128 * 1024  # sampled body bytes a route reads a second, at most
DRAIN_S = 0.25
DRAIN_ROWS = 256  # feature rows read per drain: the event loop is never held long
EVALUATE_S = 2.0
STALE_S = 10.0  # a follower shows its own report once the leader's is this old
MAX_FILE_ROWS = 200_000

_rand = random.random


def read_reference_file(path: str) -> list[dict[str, Value]]:
    """The feature rows of a JSONL file of request bodies (blocking; at most 200,000 rows)."""
    rows: list[dict[str, Value]] = []
    with Path(path).open("rb") as lines:
        for line in lines:
            parsed = parse_body(line) if line.strip() else None
            if parsed is not None:
                rows.extend(extract_rows(None, parsed[0]))
                if len(rows) >= MAX_FILE_ROWS:
                    break
    return rows


class _Route:
    """One drift route: its samples, the sampling share, and which features are over."""

    __slots__ = ("judged", "latest", "loading", "others", "over", "samples", "spec")

    def __init__(self, spec: DriftSpec, rng: random.Random) -> None:
        self.spec = spec
        self.samples = RouteSamples(spec, rng)
        self.over: set[str] = set()
        self.loading = spec.reference_file is not None
        self.latest: tuple[float, list[FeatureReport]] | None = None  # (when, reports)
        self.judged: tuple[int, int] | None = None  # (samples' changes, live slice) last judged
        # On a fleet's leader: the other replicas' live windows, per feature (FleetDrift).
        self.others: dict[str, list[Figures]] = {}

    def reports(self, now: float) -> list[FeatureReport]:
        """The features' reports, reused for ``EVALUATE_S`` (a report reads every sample)."""
        if self.latest is None or not 0 <= now - self.latest[0] < EVALUATE_S:
            self.latest = (now, self.samples.reports(now, self.others))
        return self.latest[1]


class DriftMonitor:
    """Every drift route's samples; the queue from the request path; gauges and events."""

    def __init__(
        self, metrics: Metrics, events: EventLog, *, seed: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self.events = events
        self.rng = random.Random(seed)  # noqa: S311 - sampling, not a secret
        self._routes: dict[str, _Route] = {}
        self._shares: dict[str, float] = {}
        self._budgets: dict[str, list[float]] = {}  # per route: [bytes it may still read, when]
        self._queue: collections.deque[tuple[str, str | None, bytes, float]] = (
            collections.deque()
        )
        self._queued_bytes = 0
        self.dropped = 0  # sampled bodies not read: the queue was full
        self.skipped = 0  # sampled bodies not read: past the route's bytes a second
        self._loads: set[asyncio.Task[None]] = set()
        self._log = get_logger("router.telemetry.drift")
        # In a fleet (router.control.fleet_drift): only the leader judges, on the fleet's
        # sum; a follower shows the leader's report and hands a pin on to it.
        self.leading: Callable[[], bool] = lambda: True
        # On a follower: the leader's latest report of each route, and when it came.
        self.fleet_reports: dict[str, tuple[float, dict[str, Any]]] = {}
        self.pin_requests: set[str] = set()  # on a follower: pins for the leader to make

    def configure(self, specs: Mapping[str, DriftSpec]) -> None:
        """Follow a new config: unchanged routes keep their samples; others start afresh."""
        routes: dict[str, _Route] = {}
        for name, spec in specs.items():
            old = self._routes.get(name)
            routes[name] = old if old is not None and old.spec == spec else _Route(spec, self.rng)
        for name, old in self._routes.items():
            if routes.get(name) is not old:
                self._clear_gauges(name, old)
        self._routes = routes
        self._shares = {name: spec.sample for name, spec in specs.items()}
        self._budgets = {name: self._budgets.get(name) or [READ_BYTES_PER_S, 0.0]
                         for name in specs}

    def offer(self, route: str, protocol: str | None, body: bytes) -> None:
        """Queue a sampled request body of ``route`` (hot path: a lookup and a draw).

        A route reads at most ``READ_BYTES_PER_S`` of sampled bodies a second (a token
        bucket of bytes): reading costs about as much as the body is long, so drift's
        cost is bounded per second, whatever the traffic; past it a sampled body is
        skipped (``skipped``), not queued.
        """
        share = self._shares.get(route)
        if share is None or _rand() >= share:
            return
        budget, now = self._budgets[route], self.clock()
        budget[0] = min(READ_BYTES_PER_S, budget[0] + (now - budget[1]) * READ_BYTES_PER_S)
        budget[1] = now
        if budget[0] < len(body):
            self.skipped += 1
            return
        budget[0] -= len(body)
        if len(self._queue) >= QUEUE or self._queued_bytes + len(body) > QUEUE_BYTES:
            self.dropped += 1
            return
        self._queued_bytes += len(body)
        self._queue.append((route, protocol, body, now))

    async def run(self) -> None:
        """Drain the queue and evaluate, until cancelled."""
        last = 0.0
        while True:
            await asyncio.sleep(DRAIN_S)
            try:
                self._start_loads()
                self.drain()
                now = self.clock()
                if now - last >= EVALUATE_S:
                    last = now
                    for name in list(self._routes):
                        self.evaluate(now, name)
                        await asyncio.sleep(0)  # many drift routes: requests get turns between
            except Exception as exc:  # drift must outlive one bad body or tick
                self._log.exception("drift_error", reason=repr(exc))

    def drain(self) -> int:
        """Add queued bodies' rows to their routes, up to ``DRAIN_ROWS`` rows; bodies read.

        Rows are gathered per route, feature names and live slice, and each batch is
        counted at once (a column per feature), not row by row.
        """
        read = rows = 0
        batches: dict[tuple[str, tuple[str, ...], int], tuple[float, list[Sequence[Any]]]] = {}
        while self._queue and rows < DRAIN_ROWS:
            name, protocol, body, at = self._queue.popleft()
            self._queued_bytes -= len(body)
            route = self._routes.get(name)
            parsed = parse_body(body) if route is not None else None
            if route is None or parsed is None:
                continue
            names, table = extract_table(protocol, parsed[0])
            if table:
                key = (name, names, int(at // route.samples.slice_s))
                batches.setdefault(key, (at, []))[1].extend(table)
                rows += len(table)
            read += 1
        for (name, names, _), (at, table) in batches.items():
            route = self._routes.get(name)
            if route is not None:
                route.samples.add_rows(names, table, at)
        return read

    def _start_loads(self) -> None:
        for name, route in self._routes.items():
            if route.loading and not any(t.get_name() == name for t in self._loads):
                task = asyncio.create_task(self._load(name, route), name=name)
                self._loads.add(task)
                task.add_done_callback(self._loads.discard)

    async def _load(self, name: str, route: _Route) -> None:
        path = route.spec.reference_file
        assert path is not None
        try:
            rows = await asyncio.to_thread(read_reference_file, path)
        except OSError as exc:
            self._log.warning("drift_reference_unreadable", route=name, reason=str(exc))
            rows = []
        route.loading = False
        count = route.samples.load_reference(rows)
        route.latest = None
        self._log.info("drift_reference_loaded", route=name, path=path, rows=count)

    def evaluate(self, now: float, only: str | None = None) -> None:
        """Set the PSI gauges and emit ``input_drift`` for features that crossed ``max_psi``
        (of every route, or of route ``only``)."""
        for name, route in self._routes.items():
            if only is not None and name != only:
                continue
            if not self.leading():
                continue  # a follower: the leader judges the fleet's sum
            samples = route.samples
            # No PSI before the reference is ready; none new while no row came and the
            # window did not move: the gauges and crossings already say it.
            state = (samples.changes, int(now // samples.slice_s))
            if not samples.reference_ready or state == route.judged:
                continue
            route.judged = state
            route.latest = None  # judge on fresh numbers
            for report in route.reports(now):
                if report.psi is None:
                    continue
                self.metrics.input_drift_psi.labels(name, report.name).set(report.psi)
                self._crossing(name, route, report)

    def _crossing(self, name: str, route: _Route, report: FeatureReport) -> None:
        assert report.psi is not None
        limit = route.spec.max_psi
        if report.psi > limit and report.name not in route.over:
            route.over.add(report.name)
            self.events.emit(
                "input_drift", route=name,
                reason=f"input drift: {report.name} psi {report.psi:.2f} > {limit:g} "
                f"({report.live_count:,} live vs {report.reference_count:,} reference values)",
                feature=report.name, psi=round(report.psi, 4), max_psi=limit,
                missing_live=report.missing_live, missing_reference=report.missing_reference,
            )
        elif report.psi < limit:
            route.over.discard(report.name)

    def _clear_gauges(self, name: str, route: _Route) -> None:
        for feature in route.samples.names:
            with contextlib.suppress(KeyError):
                self.metrics.input_drift_psi.remove(name, feature)

    def report(self, name: str, now: float, limit: int | None = None) -> dict[str, Any] | None:
        """``GET /admin/routes/{name}/drift``; None when the route has no ``drift``."""
        route = self._routes.get(name)
        if route is None:
            return None
        published = self.fleet_reports.get(name)
        if published is not None and not self.leading() and 0 <= now - published[0] <= STALE_S:
            return published[1]
        samples = route.samples
        features = route.reports(now)
        return {
            "route": name,
            "window_s": route.spec.window,
            "max_psi": route.spec.max_psi,
            "sample": route.spec.sample,
            "dropped": self.dropped,
            "skipped": self.skipped,
            "reference": {
                "source": "pinned" if samples.pinned_at is not None else route.spec.reference,
                "rows": samples.reference_rows,
                "ready": samples.reference_ready,
                "pinned_at": iso_time(samples.pinned_at) if samples.pinned_at else None,
            },
            "drifting": sorted(route.over),
            "replicas": self.fleet_size(name),  # whose live windows the figures sum
            "features": [f.render() for f in features[:limit]],
        }

    def pin(self, name: str, now: float) -> dict[str, Any] | None:
        """Make the live window ``name``'s reference; the new report, or None without drift."""
        route = self._routes.get(name)
        if route is None:
            return None
        if not self.leading():
            self.pin_requests.add(name)
            return {**(self.report(name, now) or {}), "pin": "requested from the leader"}
        route.samples.pin(now)
        route.loading = False
        route.over.clear()
        route.latest = None
        self.events.emit("drift_pinned", route=name, reason="live window pinned as the reference")
        return self.report(name, now)

    def routes(self) -> list[str]:
        """The drift routes."""
        return list(self._routes)

    def edges(self, name: str) -> dict[str, tuple[float, ...]] | None:
        """``name``'s bins (numeric features' edges) once its reference is ready, else None."""
        route = self._routes.get(name)
        if route is None or not route.samples.reference_ready:
            return None
        return dict(route.samples.edges)

    def adopt_edges(self, name: str, edges: Mapping[str, Sequence[float]], version: str) -> None:
        """Count ``name``'s live window into the fleet's bins (a follower)."""
        route = self._routes.get(name)
        if route is not None:
            route.samples.adopt_edges(edges, version)
            route.latest = None

    def fleet_version(self, name: str) -> str | None:
        """The version of the fleet's bins ``name`` counts into (None: none taken yet, or
        the route's samples started afresh after a reload)."""
        route = self._routes.get(name)
        return None if route is None else route.samples.fleet_version

    def live_figures(self, name: str, now: float) -> dict[str, Figures] | None:
        """``name``'s live window as the fleet sums it, or None without drift."""
        route = self._routes.get(name)
        return None if route is None else route.samples.live_figures(now)

    def set_others(self, name: str, others: list[dict[str, Figures]]) -> None:
        """(Leader) the other replicas' live windows of ``name``: judged with this one's."""
        route = self._routes.get(name)
        if route is None:
            return
        by_feature: dict[str, list[Figures]] = {}
        for figures in others:
            for feature, found in figures.items():
                by_feature.setdefault(feature, []).append(found)
        if by_feature != route.others:
            route.others = by_feature
            route.latest = route.judged = None

    def fleet_size(self, name: str) -> int:
        """Replicas whose live window ``name``'s report sums (this one included)."""
        route = self._routes.get(name)
        return 1 + max((len(v) for v in route.others.values()), default=0) if route else 1

    async def aclose(self) -> None:
        """Stop reading reference files."""
        for task in list(self._loads):
            task.cancel()
