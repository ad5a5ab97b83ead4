"""The replicas that share one Redis store: how each learns of the others' changes.

Every write to the Redis store publishes the route's name and bumps a serial
(``router.control.redis_store``). Each replica here

- listens on the change channel and re-reads the shared state at once when a
  message arrives (pub/sub: milliseconds);
- polls the serial every ``POLL_S`` as the safety net, since pub/sub messages
  are lost while a subscriber reconnects, and re-reads when it moved.

So an action taken through any replica is in effect on every replica within a
second.

One replica leads: it holds a lease in Redis (``SET NX PX``), renewed every
third of the lease, and only it runs the controller (steps, analysis, switch
checks). Taking the lease issues a new fencing token that every controller
write carries; Redis refuses a write with an older token, so a leader that was
paused past its lease cannot overwrite what its successor decided. A leader
stops leading by its own clock when it could not renew within the lease
(measured from before the renew call, so never later than Redis lets the lease
go), and a stopping leader lets go of the lease at once. A new leader reads the
shared state before its first decision. The leader judges the fleet's traffic:
every replica reports its per-second figures (``router.control.fleet_figures``) and
its true labels' verdicts, and relays labels it cannot join
(``router.control.fleet_feedback``).

Store failures are counted and logged by the ``WatchedStore``; these loops just
try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from router.control.fleet_beat import FleetBeat
from router.control.fleet_drift import FleetDrift
from router.control.fleet_feedback import FleetFeedback
from router.control.fleet_figures import FleetFigures
from router.control.redis_store import RedisStateStore
from router.control.rollouts import Rollouts
from router.control.store import StateStoreError
from router.control.store_health import WatchedStore
from router.telemetry.drift import DriftMonitor
from router.telemetry.events import EventLog, iso_time
from router.telemetry.feedback import GroundTruth
from router.telemetry.logs import get_logger
from router.telemetry.metrics import Metrics
from router.telemetry.quality import QualityWindows
from router.telemetry.windows import WindowSet

__all__ = ["POLL_S", "Fleet", "fleet_status"]

POLL_S = 0.25
BEAT_S = 1.0
RECONNECT_S = 1.0


class Fleet:
    """One replica's part in a fleet sharing ``store`` (a Redis store inside ``watched``)."""

    def __init__(
        self,
        watched: WatchedStore,
        rollouts: Rollouts,
        *,
        replica: str,
        lease_s: float,
        metrics: Metrics,
        events: EventLog,
        windows: WindowSet,
        quality: QualityWindows,
        truth: GroundTruth,
        drift: DriftMonitor,
        config_version: Callable[[], str],
    ) -> None:
        assert isinstance(watched.inner, RedisStateStore)
        self.redis: RedisStateStore = watched.inner
        self.watched = watched
        self.rollouts = rollouts
        self.replica = replica
        self.lease_s = lease_s
        self.leader: str | None = None  # who holds the lease, as last read
        self._token: int | None = None
        self._valid_until = 0.0
        self._metrics = metrics
        self._changed = asyncio.Event()
        self._log = get_logger("router.control.fleet")
        self.figures = FleetFigures(watched, self.redis, windows, quality)
        self.beat = FleetBeat(
            watched, self.redis, self.figures, replica=replica, config_version=config_version
        )
        self.feedback = FleetFeedback(
            watched, self.redis, truth, replica=replica, members=self.beat.live
        )
        self.beat.feedback = self.feedback
        self.drift = FleetDrift(self.redis, drift, replica=replica, members=self.beat.live)
        self.beat.drift = self.drift
        drift.leading = lambda: self.leading
        events.listeners.append(self.beat.offer)
        metrics.leader.set(0.0)

    @property
    def leading(self) -> bool:
        """Whether this replica leads now (its lease is held and not past due)."""
        return self._token is not None and time.monotonic() < self._valid_until

    async def run(self) -> None:
        """Follow (or lead) the fleet until cancelled."""
        await asyncio.gather(self._listen(), self._follow(), self._lead(), self._count())

    async def release(self) -> None:
        """Let go of the lease (on a clean stop), so another replica leads at once."""
        if self._token is not None:
            self._set_leading(None, "stopping")
            with contextlib.suppress(StateStoreError):
                await self.redis.release_lease(self.replica)

    async def _lead(self) -> None:
        """Take, renew or lose the lease; every third of the lease."""
        while True:
            started = time.monotonic()
            try:
                if self._token is None:
                    token = await self.watched.call(
                        "lease", self.redis.acquire_lease(self.replica, self.lease_s)
                    )
                    if token is not None:
                        await self.rollouts.sync_all()  # decide on the latest shared state
                        self._valid_until = started + self.lease_s
                        self._set_leading(token, "lease taken")
                elif await self.watched.call(
                    "lease", self.redis.renew_lease(self.replica, self.lease_s, self._token)
                ):
                    self._valid_until = started + self.lease_s
                else:
                    self._set_leading(None, "lease taken by another replica")
                self.leader = await self.watched.call("read", self.redis.leader())
            except StateStoreError:
                pass
            if self._token is not None and not self.leading:
                self._set_leading(None, "lease not renewed in time")
            await asyncio.sleep(self.lease_s / 3)

    async def _count(self) -> None:
        """The beat every second (figures, heartbeat, events); the leader reads the figures."""
        while True:
            await asyncio.sleep(BEAT_S)
            with contextlib.suppress(StateStoreError):
                await self.beat.beat(self.leading)
                if self.leading:
                    analysed = self._analysed()
                    await self.figures.read(analysed)
                    await self.feedback.read((name, (*variants, "shadow"))
                                             for name, variants, _ in analysed)

    def _analysed(self) -> list[tuple[str, tuple[str, ...], float]]:
        """The routes whose strategy runs an analysis now: variants and window."""
        found = []
        for name, route in list(self.rollouts.active.items()):  # what the tick visits
            window = route.strategy.analysis_window(route.spec, route.cell.state)
            if window:
                found.append((name, route.strategy.variants, window))
        return found

    def _set_leading(self, token: int | None, reason: str) -> None:
        self._token = token
        self.rollouts.fence = token
        self._metrics.leader.set(0.0 if token is None else 1.0)
        if token is not None:
            self.leader = self.replica
        else:
            self.figures.forget()
            self.feedback.forget()
            self.drift.forget()
        kind = "leader_elected" if token is not None else "leader_lost"
        self._log.info(kind, replica=self.replica, reason=reason, token=token)

    async def _listen(self) -> None:
        """Set ``_changed`` for every change message (and after each (re)subscription)."""
        channel = self.redis.keys["changes"]
        while True:
            pubsub = self.redis.client.pubsub()
            try:
                await pubsub.subscribe(channel)
                self._changed.set()  # whatever was published while we were not listening
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        self._changed.set()
            except (RedisError, OSError):
                await asyncio.sleep(RECONNECT_S)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    async def _follow(self) -> None:
        """Re-read the shared state when told to, or when the serial moved."""
        last: int | None = None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), POLL_S)
            notified = self._changed.is_set()
            self._changed.clear()
            try:
                serial = await self.watched.call("read", self.redis.serial())
                if notified or serial != last:
                    await self.rollouts.sync_all()
                    last = serial
            except StateStoreError:
                last = None  # read everything once the store answers again


def fleet_status(
    fleet: Fleet | None, replica: str, store: WatchedStore | None, version: str
) -> dict[str, Any]:
    """The ``replica``, ``state_store`` and ``fleet`` parts of ``/admin/status``.

    Without a shared store the fleet is this one process, which leads itself.
    """
    if fleet is None:
        members = [{"id": replica, "config_version": version, "leader": True,
                    "last_seen": iso_time(time.time())}]
        leader: str | None = replica
    else:
        members, leader = fleet.beat.fleet(), fleet.leader
    return {
        "replica": {"id": replica, "leader": fleet.leading if fleet is not None else True},
        "state_store": store.health() if store is not None else None,
        "fleet": {"leader": leader, "replicas": members},
    }
