"""A replica's once-a-second round trip to Redis: who is in the fleet, and what it decided.

One pipeline a second carries everything a replica tells the fleet and reads
from it in the background:

- its per-second figures (``FleetFigures.queue_report``);
- its heartbeat, ``{prefix}:replicas`` hash: id -> ``{"config_version", "leader",
  "seen"}``, read back whole: the fleet list of ``/admin/status``;
- the labels it relays and the accuracy tallies it shares, and the labels relayed to
  it (``FleetFeedback``);
- its drift routes' live windows, or (the leader) the bins, reports and the followers'
  windows (``FleetDrift``);
- the decision events it emitted since the last beat, pushed on
  ``{prefix}:events`` (newest first, the last ``EVENTS_KEPT``), which
  ``/admin/events`` on any replica reads: the fleet's decisions, each once,
  tagged with the replica that made it.

Replicas not seen for ``FORGET_S`` are removed from the hash.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Callable
from typing import Any

from router.control.fleet_drift import FleetDrift
from router.control.fleet_feedback import FleetFeedback
from router.control.fleet_figures import FleetFigures
from router.control.redis_store import RedisStateStore
from router.control.store_health import WatchedStore
from router.telemetry.events import iso_time

__all__ = ["EVENTS_KEPT", "FleetBeat"]

EVENTS_KEPT = 1000
LIVE_S = 10.0  # a replica seen within this is listed as live
FORGET_S = 300.0


class FleetBeat:
    """Heartbeat, fleet list and shared events of one replica."""

    def __init__(
        self,
        watched: WatchedStore,
        redis: RedisStateStore,
        figures: FleetFigures,
        *,
        replica: str,
        config_version: Callable[[], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.watched = watched
        self.redis = redis
        self.figures = figures
        self.replica = replica
        self.config_version = config_version
        self.clock = clock
        self.members: dict[str, dict[str, Any]] = {}
        self.feedback: FleetFeedback | None = None  # labels relayed, accuracy shared
        self.drift: FleetDrift | None = None  # live windows shared, the leader's bins
        self._outbox: collections.deque[dict[str, Any]] = collections.deque(maxlen=EVENTS_KEPT)

    def offer(self, record: dict[str, Any]) -> None:
        """An ``EventLog`` listener: share the event at the next beat."""
        self._outbox.append({**record, "replica": self.replica})

    async def beat(self, leading: bool) -> None:
        """One round trip: figures, heartbeat and events out, the fleet list in."""
        now = self.clock()
        pipe = self.redis.client.pipeline(transaction=False)
        self.figures.queue_report(pipe)
        if self.feedback is not None:
            self.feedback.queue(pipe)
        if self.drift is not None:
            self.drift.queue(pipe, leading)
        members_key, events_key = self.redis.key("replicas"), self.redis.key("events")
        heartbeat = {"config_version": self.config_version(), "leader": leading, "seen": now}
        pipe.hset(members_key, self.replica, json.dumps(heartbeat))
        gone = [m for m, info in self.members.items() if now - info["seen"] > FORGET_S]
        if gone:
            pipe.hdel(members_key, *gone)
        sent = list(self._outbox)
        if sent:
            pipe.lpush(events_key, *(json.dumps(record, default=str) for record in sent))
            pipe.ltrim(events_key, 0, EVENTS_KEPT - 1)
        pipe.hgetall(members_key)
        replies = await self.watched.call("report", self.redis.run_pipeline(pipe))
        for _ in sent:
            self._outbox.popleft()
        self.members = _members(replies[-1])
        if self.feedback is not None:
            self.feedback.received(replies)
        if self.drift is not None:
            self.drift.received(replies, leading)

    def live(self) -> list[str]:
        """The ids of the live replicas (this one included once it has beaten)."""
        return [member["id"] for member in self.fleet()]

    def fleet(self) -> list[dict[str, Any]]:
        """The live replicas (seen within ``LIVE_S``): id, config version, leader, last seen."""
        now = self.clock()
        return [
            {"id": member, "config_version": info.get("config_version"),
             "leader": bool(info.get("leader")), "last_seen": iso_time(info["seen"])}
            for member, info in sorted(self.members.items())
            if now - info["seen"] <= LIVE_S
        ]

    async def recent_events(self, limit: int) -> list[dict[str, Any]]:
        """The fleet's most recent decision events, newest first."""
        pipe = self.redis.client.pipeline(transaction=False)
        pipe.lrange(self.redis.key("events"), 0, max(0, limit - 1))
        raw = (await self.watched.call("read", self.redis.run_pipeline(pipe)))[0]
        events = []
        for item in raw if limit > 0 else []:
            try:
                events.append(json.loads(item))
            except ValueError:
                continue
        return events


def _members(raw: dict[bytes, bytes]) -> dict[str, dict[str, Any]]:
    members: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        try:
            info = json.loads(value)
            float(info["seen"])
        except (ValueError, KeyError, TypeError):
            continue
        members[key.decode()] = info
    return members
