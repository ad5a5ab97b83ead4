"""What the proxy hands the shadow side: a finished exchange to mirror, and who takes it.

Owned here, by the receiving side, so the arrow points one way: the proxy
imports these; nothing in ``router.shadow`` imports the proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from strategies import MirrorPlan

__all__ = ["MirrorJob", "MirrorSink"]


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
