"""The rollout controller: the loop that advances every rollout, and what it observes.

Every ``TICK_S`` the leader (or the only process) asks ``Rollouts.tick`` to
advance the routes under way, judging each on an ``Observation`` read from the
parts that count live traffic. Every ``STORE_SYNC_S`` it writes what a failed
store write left unsaved and, with a store other processes share, reads their
changes. A bad tick is logged and survived.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from router.control.file_store import FileStateStore
from router.control.fleet import Fleet
from router.control.metric_checks import MetricChecks
from router.control.rollouts import Observer, Rollouts
from router.control.store import StateStoreError
from router.control.store_health import WatchedStore
from router.routing.backends import Backend
from router.routing.snapshot import CompiledRoute
from router.telemetry.feedback import GroundTruth
from router.telemetry.logs import get_logger
from router.telemetry.quality import QualityWindows
from router.telemetry.windows import WindowSet
from strategies import Observation
from strategies.observation import ShadowCounts

__all__ = ["STORE_SYNC_S", "TICK_S", "Controller", "LiveObserver"]

TICK_S = 0.1
STORE_SYNC_S = 1.0


class LiveObserver:
    """The live numbers of a route over a trailing window, as its strategy judges them."""

    def __init__(
        self, windows: WindowSet, quality: QualityWindows, truth: GroundTruth,
        metric_checks: MetricChecks, shadow_counts: Callable[[str], ShadowCounts],
        backends: Callable[[], Mapping[str, Backend]], fleet: Callable[[], Fleet | None],
    ) -> None:
        self.windows = windows
        self.fleet = fleet
        self.quality = quality
        self.truth = truth
        self.metric_checks = metric_checks
        self.shadow_counts = shadow_counts
        self.backends = backends

    def __call__(self, route: CompiledRoute, window_s: float, now: float) -> Observation:
        """The observation of ``route`` over the last ``window_s`` seconds at ``now``."""
        variants = route.strategy.variants
        # The current second is still filling up: read ``window_s`` whole seconds
        # plus it, so a short window neither misses traffic nor lags a second.
        span = window_s + 1.0
        fleet = self.fleet()
        if fleet is not None:  # the leader judges the whole fleet's traffic
            figures = fleet.figures
            stats = {v: figures.stats(route.name, v, window_s) for v in variants}
            totals = {v: figures.tally(route.name, v) for v in variants}
            quality = figures.quality_view(route.name, variants, window_s)
            feedback = fleet.feedback.sums.get(route.name, {})
        else:
            stats = {v: self.windows.stats(route.name, v, now, span) for v in variants}
            totals = {v: self.windows.tally(route.name, v) for v in variants}
            quality = self.quality.view(route.name, variants, now, span)
            feedback = self.truth.tallies(route.name, now)
        return Observation(
            window_s=window_s,
            variants=stats,
            backend_up={name: backend.up for name, backend in self.backends().items()},
            totals=totals,
            quality=quality,
            feedback=feedback,
            metrics=self.metric_checks.readings(route, now),
            shadow=self.shadow_counts(route.name),
        )


class Controller:
    """Advances the rollouts on a fixed tick while this process leads."""

    def __init__(
        self, rollouts: Rollouts, store: WatchedStore, observe: Observer,
        leading: Callable[[], bool],
    ) -> None:
        self.rollouts = rollouts
        self.store = store
        self.observe = observe
        self.leading = leading
        # The state file as it was before the last sync read it (None: there was none).
        self._synced: tuple[int, int, int, int] | None = None
        self._synced_once = False
        self._log = get_logger("router.control.controller")

    async def run(self) -> None:
        """Tick until cancelled."""
        last_sync = time.monotonic()
        while True:
            await asyncio.sleep(TICK_S)
            try:
                if time.monotonic() - last_sync >= STORE_SYNC_S:
                    last_sync = time.monotonic()
                    await self.sync()
                if self.leading():
                    await self.rollouts.tick(self.observe)
            except StateStoreError:
                pass  # the store logs and counts its failures; reads are retried next second
            except Exception as exc:  # the controller must outlive one bad tick
                self._log.exception("controller_error", reason=str(exc))

    async def sync(self) -> None:
        """Write what a failed write left unsaved; read another process's changes to a file."""
        await self.rollouts.flush_unsaved()
        if self.store.kind == "file" and self.store_changed():
            # Another process's changes to read (a memory store is ours alone; a fleet
            # on Redis follows the store in ``Fleet``, outside the rollouts' lock).
            key = self._file_key()  # taken first: a write during the read means one more
            await self.rollouts.sync_all()
            self._synced, self._synced_once = key, True

    def store_changed(self) -> bool:
        """Whether the state file may hold news since the last sync (it was rewritten).

        Reading and copying 10,000 routes' states takes some 80 ms of CPU: an unchanged
        file is not read again. Our own writes change it too, and cost one more read.
        """
        return not self._synced_once or self._file_key() != self._synced

    def _file_key(self) -> tuple[int, int, int, int] | None:
        inner = self.store.inner
        return inner.stat_key() if isinstance(inner, FileStateStore) else None
