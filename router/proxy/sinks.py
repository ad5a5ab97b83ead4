"""Where the proxy hands on what a request leaves behind: counts, log line, observations, mirrors.

``Services`` bundles them for the request path; the proxy builds it once and
every ``Exchange`` reads it, so a request never reaches back into the proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from router.telemetry.inspection import BodyInspector
from router.telemetry.logs import AccessLog
from router.telemetry.metrics import Metrics
from strategies import MirrorPlan

__all__ = ["MirrorJob", "MirrorSink", "RequestSink", "Services"]


@dataclass(frozen=True, slots=True)
class MirrorJob:
    """A finished primary exchange, handed to the shadow dispatcher."""

    route: str
    plan: MirrorPlan
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes | None  # None: larger than plan.max_body (skipped)
    path: str
    request_id: str
    primary_status: int
    primary_body: bytes | None
    primary_latency_s: float


class MirrorSink(Protocol):
    """Takes mirror jobs without waiting (the shadow dispatcher)."""

    def dispatch(self, job: MirrorJob) -> None:
        """Queue ``job`` or count it dropped; never block."""
        ...

    def admits(self, route: str, plan: MirrorPlan) -> bool:
        """Whether a mirror of ``route`` could start now (checked before any copy is made)."""
        ...

    def drop(self, route: str, plan: MirrorPlan) -> None:
        """Count a request not mirrored because ``admits`` said no."""
        ...


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
