"""Where the proxy hands on what a request leaves behind: counts, log line, observations, mirrors.

``Services`` bundles them for the request path; the proxy builds it once and
every ``Exchange`` reads it, so a request never reaches back into the proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from router.shadow.jobs import MirrorSink
from router.telemetry.inspection import BodyInspector
from router.telemetry.logs import AccessLog
from router.telemetry.metrics import Metrics

__all__ = ["RequestSink", "Services"]


class RequestSink(Protocol):
    """Receives every finished request (analysis windows, input/output health)."""

    def observe(
        self,
        route: str,
        variant: str,
        backend: str,
        status: int,
        duration_s: float,
        error: bool,
        ttfb_s: float | None = None,
    ) -> None:
        """Record one finished request; ``ttfb_s`` is its time to first body byte, if any."""
        ...


@dataclass(slots=True)
class Services:
    """What every request reports to, built once by the proxy and shared by its exchanges.

    ``inspector`` is replaced when a reload changes ``proxy.inspect_max_body``;
    the rest is fixed for the process's life.
    """

    metrics: Metrics
    log: Any  # the proxy's structlog logger, for the rare event that is not a request
    sink: RequestSink | None = None
    mirror: MirrorSink | None = None
    inspector: BodyInspector | None = None
    access_log: AccessLog | None = None  # None: request lines are off
