"""What the admin listener reads and drives of a running router.

The composition root (``router.app.RouterApp``) provides it; the admin side
names only this, so it never imports the root that builds it.
"""

from __future__ import annotations

from typing import Any, Protocol

from router.control.reload import ReloadResult
from router.control.rollouts import Rollouts
from router.routing.selection import RouteQuery
from router.routing.snapshot import Snapshot
from router.telemetry.drift import DriftMonitor
from router.telemetry.events import EventLog
from router.telemetry.feedback import GroundTruth
from router.telemetry.metrics import Metrics

__all__ = ["RouterView"]


class RouterView(Protocol):
    """The router as its admin API sees it: views to read, a reload and rollout actions."""

    ready: bool
    metrics: Metrics
    events: EventLog
    truth: GroundTruth
    drift: DriftMonitor
    rollouts: Rollouts | None

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot serving now."""
        ...

    async def recent_events(self, limit: int) -> list[dict[str, Any]]:
        """The most recent decision events (the fleet's, with a shared store), newest first."""
        ...

    @property
    def state_read(self) -> bool:
        """Whether the rollout state was read once (not ready before)."""
        ...

    def status(self, query: RouteQuery = ...) -> dict[str, Any]:
        """``GET /admin/status``, for the routes ``query`` selects."""
        ...

    def stats(self, query: RouteQuery = ...) -> dict[str, Any]:
        """``GET /admin/stats``, for the routes ``query`` selects."""
        ...

    async def reload(self, source: str) -> ReloadResult:
        """Re-read the config file; ``source`` says who asked."""
        ...
