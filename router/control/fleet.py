"""The replicas that share one Redis store: how each learns of the others' changes.

Every write to the Redis store publishes the route's name and bumps a serial
(``router.control.redis_store``). Each replica here

- listens on the change channel and re-reads the shared state at once when a
  message arrives (pub/sub: milliseconds);
- polls the serial every ``POLL_S`` as the safety net, since pub/sub messages
  are lost while a subscriber reconnects, and re-reads when it moved.

So an action taken through any replica is in effect on every replica within a
second. Store failures are counted and logged by the ``WatchedStore``; these
loops just try again.
"""

from __future__ import annotations

import asyncio
import contextlib

from redis.exceptions import RedisError

from router.control.redis_store import RedisStateStore
from router.control.rollouts import Rollouts
from router.control.store import StateStoreError
from router.control.store_health import WatchedStore
from router.telemetry.logs import get_logger

__all__ = ["POLL_S", "Fleet"]

POLL_S = 0.25
RECONNECT_S = 1.0


class Fleet:
    """One replica's part in a fleet sharing ``store`` (a Redis store inside ``watched``)."""

    def __init__(self, watched: WatchedStore, rollouts: Rollouts) -> None:
        assert isinstance(watched.inner, RedisStateStore)
        self.redis: RedisStateStore = watched.inner
        self.watched = watched
        self.rollouts = rollouts
        self._changed = asyncio.Event()
        self._log = get_logger("router.control.fleet")

    async def run(self) -> None:
        """Follow the fleet until cancelled."""
        await asyncio.gather(self._listen(), self._follow())

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
