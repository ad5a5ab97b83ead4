"""A state store that keeps its own health: status, metrics and one log line per change.

``WatchedStore`` wraps any ``StateStore``. Every call that fails with
``StateStoreError`` marks the store failing, counts
``router_state_store_errors_total{op}``, sets ``router_state_store_up`` to 0 and
logs ``state_store_error`` -- once per distinct error, not at every retry (a
controller retrying ten times a second must not flood the log). The first call
that succeeds again logs ``state_store_recovered``. A lost compare-and-set is an
answer from the store, so it counts as healthy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from router.config.model import StateSpec
from router.control.file_store import FileStateStore
from router.control.redis_store import RedisStateStore, StoreUnreachableError
from router.control.store import (
    StaleWriteError,
    StateStore,
    StateStoreError,
    StoredState,
    Write,
    WriteOutcome,
    build_state_store,
)
from router.telemetry.events import EventLog
from router.telemetry.logs import get_logger
from router.telemetry.metrics import Metrics

__all__ = ["WatchedStore", "open_store"]

_T = TypeVar("_T")


class WatchedStore:
    """``inner`` with health tracking; the same ``StateStore`` protocol."""

    def __init__(self, inner: StateStore, kind: str, metrics: Metrics) -> None:
        self.inner = inner
        self.kind = kind
        self.ok = True
        self.error: str | None = None
        self._metrics = metrics
        self._log = get_logger("router.control.store")
        metrics.state_store_up.set(1.0)

    @property
    def shared(self) -> bool:
        """Whether other replicas use the same store (their state is not ours to delete)."""
        return self.kind == "redis"

    def health(self) -> dict[str, Any]:
        """``{"kind", "ok", "error"}`` for ``/admin/status``."""
        return {"kind": self.kind, "ok": self.ok, "error": self.error}

    def failed(self, op: str, exc: BaseException) -> None:
        """Record a failure of ``op`` (also for callers that talk to the store directly)."""
        self._metrics.state_store_errors.labels(op).inc()
        message = str(exc) or type(exc).__name__
        if self.ok or message != self.error:
            self._log.warning("state_store_error", op=op, kind=self.kind, reason=message)
        self.ok, self.error = False, message
        self._metrics.state_store_up.set(0.0)

    def succeeded(self) -> None:
        """Record a call the store answered."""
        if not self.ok:
            self._log.info("state_store_recovered", kind=self.kind, after=self.error)
            self.ok, self.error = True, None
            self._metrics.state_store_up.set(1.0)

    async def call(self, op: str, call: Awaitable[_T]) -> _T:
        """Await ``call`` (an operation of ``inner``), recording how it went as ``op``."""
        try:
            result = await call
        except StaleWriteError:
            self.succeeded()
            raise
        except StateStoreError as exc:
            self.failed(op, exc)
            raise
        self.succeeded()
        return result

    async def load_all(self) -> dict[str, StoredState]:
        """Every stored route."""
        return await self.call("read", self.inner.load_all())

    async def get(self, route: str) -> StoredState | None:
        """The route's state, or None."""
        return await self.call("read", self.inner.get(route))

    async def put(
        self,
        route: str,
        data: Mapping[str, Any],
        expected_version: int | None,
        *,
        fence: int | None = None,
    ) -> StoredState:
        """Compare-and-set the route's state (``fence``: a leader's write)."""
        return await self.call("write", self.inner.put(route, data, expected_version, fence=fence))

    async def put_many(self, writes: Sequence[Write]) -> list[WriteOutcome]:
        """Compare-and-set many routes in one go (see ``StateStore.put_many``)."""
        return await self.call("write", self.inner.put_many(writes))

    async def delete(self, route: str) -> None:
        """Forget the route's state."""
        await self.call("delete", self.inner.delete(route))

    async def delete_many(self, routes: Sequence[str]) -> None:
        """Forget these routes' states in one go."""
        await self.call("delete", self.inner.delete_many(routes))

    async def aclose(self) -> None:
        """Close the inner store."""
        await self.inner.aclose()


async def open_store(spec: StateSpec, metrics: Metrics, events: EventLog) -> WatchedStore:
    """The store ``spec`` names, opened and checked; StateStoreError if it cannot be used."""
    inner = build_state_store(
        spec.store, Path(spec.path), spec.url, spec.key_prefix, cache=Path(spec.cache)
    )
    if isinstance(inner, FileStateStore):
        await inner.load_all()
        if inner.recovered_from is not None:
            events.emit(
                "state_recovered", route=None,
                reason=inner.recovery_reason or "state file unreadable",
                moved_to=str(inner.recovered_from),
            )
    watched = WatchedStore(inner, spec.store, metrics)
    if isinstance(inner, RedisStateStore):
        try:
            await inner.check()  # a wrong password or database: StateStoreError, no start
        except StoreUnreachableError as exc:
            watched.failed("read", exc)  # fail static: serve from the cache, retry
    return watched
