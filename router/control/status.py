"""The admin's read model: ``/admin/status`` and ``/admin/stats`` bodies, built from the parts.

``StatusViews`` reads; it changes nothing. The parts that exist only once the
router has started (rollouts, store, fleet) and the one a reload replaces (the
body inspector) are read through the callables it was given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.control.fleet import Fleet, fleet_status
from router.control.reload import Reloader
from router.control.rollouts import Rollouts
from router.control.store_health import WatchedStore
from router.routing.selection import ALL_ROUTES, RouteQuery, route_phase, select_routes
from router.routing.snapshot import CompiledRoute, Snapshot
from router.telemetry.dashboard_stats import build_stats
from router.telemetry.drift import DriftMonitor
from router.telemetry.feedback import GroundTruth
from router.telemetry.inspection import BodyInspector
from router.telemetry.metrics import Metrics
from router.telemetry.windows import WindowSet

__all__ = ["StatusViews"]


@dataclass(frozen=True, slots=True)
class StatusViews:
    """Builds the status and stats bodies of the routes a query selects."""

    config_path: Path
    replica_id: str
    snapshot: Callable[[], Snapshot]
    rollouts: Callable[[], Rollouts | None]
    store: Callable[[], WatchedStore | None]
    fleet: Callable[[], Fleet | None]
    inspector: Callable[[], BodyInspector | None]
    shadow_stats: Callable[[str], dict[str, Any]]
    reloader: Reloader
    windows: WindowSet
    truth: GroundTruth
    drift: DriftMonitor
    metrics: Metrics

    def select(self, query: RouteQuery) -> tuple[list[CompiledRoute], dict[str, Any] | None]:
        """The routes a status or stats call covers, and its ``page`` (None: no query)."""
        rollouts = self.rollouts()
        assert rollouts is not None
        routes = self.snapshot().routes
        if not query.given:
            return list(routes), None
        now = time.time()
        active = rollouts.active
        page, matched = select_routes(
            routes, active, query, lambda route: route_phase(route, now)
        )
        return page, {
            "matched": matched, "total": len(routes), "active": len(active),
            "offset": query.offset, "limit": query.limit,
        }

    def stats(self, query: RouteQuery = ALL_ROUTES) -> dict[str, Any]:
        """``GET /admin/stats``: per-version rates, latency, health and sparklines."""
        selected, page = self.select(query)
        routes = [(route.name, route.strategy.variants) for route in selected]
        body = build_stats(
            self.windows, routes, time.time(), self.inspector(), self.drift,
            self.metrics.streamed,
        )
        if page is not None:
            body["page"] = page
        return body

    def status(self, query: RouteQuery = ALL_ROUTES) -> dict[str, Any]:
        """``GET /admin/status`` (docs/http.md), of the routes ``query`` selects."""
        snapshot = self.snapshot()
        selected, page = self.select(query)
        body = {
            "config": {
                "path": str(self.config_path),
                "version": snapshot.version,
                "last_reload": dict(self.reloader.last_reload),
            },
            "routes": {route.name: self._route_status(route) for route in selected},
            **fleet_status(self.fleet(), self.replica_id, self.store(), snapshot.version),
            "backends": {
                name: {"url": backend.url, "healthy": backend.up}
                for name, backend in snapshot.backends.items()
            },
        }
        if page is not None:
            body["page"] = page
        return body

    def _route_status(self, route: CompiledRoute) -> dict[str, Any]:
        rollouts = self.rollouts()
        assert rollouts is not None
        body = rollouts.status(route)
        if "shadow" in route.strategy.variants:
            body["shadow"] = self.shadow_stats(route.name)
        feedback = self.truth.summary(route.name, time.time())
        if feedback is not None:
            fleet = self.fleet()
            sums = fleet.feedback.sums.get(route.name) if fleet is not None else None
            if sums:  # the leader, judging accuracy on every replica's labels
                feedback["fleet_variants"] = {v: t.render() for v, t in sorted(sums.items())}
            body["feedback"] = feedback
        return body
