"""Input drift across a fleet: the leader judges the sum of every replica's live window.

Each replica samples the requests it serves (``router.telemetry.drift``). In the
replica's once-a-second round trip to Redis (``router.control.fleet_beat``):

- the leader publishes its reference's bins, ``{prefix}:drift:{route}:edges``
  (``{"version", "edges"}``: the decile edges of each numeric feature), once its
  reference is ready; a follower counts its live window into those bins from then on;
- a follower publishes its live window as the fleet sums it (per feature: counts per
  bin, category counts, missing values, rows), one field of the hash
  ``{prefix}:drift:{route}:live``, tagged with the bins' version and the time;
- the leader reads the hash and judges its own window plus every live follower's
  counted in its current bins (sent within ``FRESH_S``): the PSI gauge, the
  ``input_drift`` events (once, by the leader) and the report, which it publishes as
  ``{prefix}:drift:{route}:report`` for the followers' ``GET .../drift``;
- ``pin`` on a follower sets ``{prefix}:drift:{route}:pin``; the leader pins at its next
  beat (its own live window, a sample of the fleet's traffic, becomes the reference) and
  publishes the new bins.

A new leader keeps the bins it had adopted, so the fleet's figures carry on.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from redis.asyncio.client import Pipeline

from router.control.redis_store import RedisStateStore
from router.telemetry.drift import DriftMonitor
from router.telemetry.drift_samples import Figures

__all__ = ["FRESH_S", "FleetDrift"]

FRESH_S = 10.0  # a follower's live window older than this is left out of the sum
KEEP_S = 60  # Redis expiry of the published windows and reports


def edges_version(edges: Mapping[str, Sequence[float]]) -> str:
    """A short fingerprint of a set of bins: replicas counting into the same bins agree."""
    text = json.dumps(sorted((name, list(cut)) for name, cut in edges.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FleetDrift:
    """One replica's share of the fleet's drift: its live windows out, the leader's bins and
    report in (a follower), or the followers' windows in (the leader)."""

    def __init__(
        self, redis: RedisStateStore, drift: DriftMonitor, *, replica: str,
        members: Callable[[], list[str]], clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.drift = drift
        self.replica = replica
        self.members = members  # ids of the live replicas
        self.clock = clock
        self._versions: dict[str, str | None] = {}  # (leader) route -> its bins' version
        self._reads: list[tuple[str, int]] = []  # (route, first reply) of this beat's reads

    def queue(self, pipe: Pipeline, leading: bool) -> None:
        """Queue this beat's writes and reads on ``pipe`` (``received`` takes the replies)."""
        now = self.clock()
        self._reads = []
        for name in self.drift.routes():
            if leading:
                self._queue_leader(pipe, name, now)
            else:
                self._queue_follower(pipe, name, now)

    def _queue_leader(self, pipe: Pipeline, name: str, now: float) -> None:
        edges = self.drift.edges(name)
        self._versions[name] = None
        if edges is not None:
            version = self._versions[name] = edges_version(edges)
            pipe.set(self._key(name, "edges"),
                     json.dumps({"version": version, "edges": edges}), ex=KEEP_S)
        report = self.drift.report(name, now)
        if report is not None:
            pipe.set(self._key(name, "report"), json.dumps(report), ex=KEEP_S)
        self._reads.append((name, len(pipe.command_stack)))
        pipe.hgetall(self._key(name, "live"))
        pipe.get(self._key(name, "pin"))  # GET then DEL: GETDEL needs Redis 6.2
        pipe.delete(self._key(name, "pin"))

    def _queue_follower(self, pipe: Pipeline, name: str, now: float) -> None:
        figures, version = self.drift.live_figures(name, now), self.drift.fleet_version(name)
        if figures is not None and version is not None:
            live = {"at": now, "edges": version, "features": figures}
            pipe.hset(self._key(name, "live"), self.replica, json.dumps(live))
            pipe.expire(self._key(name, "live"), KEEP_S)
        if name in self.drift.pin_requests:
            pipe.set(self._key(name, "pin"), self.replica, ex=KEEP_S)
            self.drift.pin_requests.discard(name)
        self._reads.append((name, len(pipe.command_stack)))
        pipe.get(self._key(name, "edges"))
        pipe.get(self._key(name, "report"))

    def received(self, replies: list[Any], leading: bool) -> None:
        """After the round trip: the followers' windows (leader), or the bins and the report
        to follow (follower)."""
        now = self.clock()
        for name, at in self._reads:
            if leading:
                self._leader_read(name, replies[at], replies[at + 1], now)
            else:
                self._follower_read(name, replies[at], replies[at + 1])
        self._reads = []

    def _leader_read(self, name: str, live: dict[bytes, bytes], pin: bytes | None,
                     now: float) -> None:
        members, version = set(self.members()), self._versions.get(name)
        others: list[dict[str, Figures]] = []
        for replica, raw in live.items():
            found = _window(raw)
            if (
                found is not None and replica.decode() in members
                and replica.decode() != self.replica and found[0] == version
                and 0 <= now - found[1] <= FRESH_S
            ):
                others.append(found[2])
        self.drift.set_others(name, others)
        if pin is not None:
            self.drift.pin(name, now)

    def _follower_read(self, name: str, edges: bytes | None, report: bytes | None) -> None:
        try:
            published = json.loads(edges) if edges else None
            if published is not None and published["version"] != self.drift.fleet_version(name):
                self.drift.adopt_edges(name, published["edges"], str(published["version"]))
            if report:
                self.drift.fleet_reports[name] = (self.clock(), json.loads(report))
            else:  # no leader published lately: this replica's own report meanwhile
                self.drift.fleet_reports.pop(name, None)
        except (ValueError, KeyError, TypeError):
            return  # not what this version writes

    def _key(self, route: str, what: str) -> str:
        return self.redis.key(f"drift:{route}:{what}")

    def forget(self) -> None:
        """Leadership lost: judge no follower's window any more."""
        for name in self.drift.routes():
            self.drift.set_others(name, [])


def _window(raw: bytes) -> tuple[str, float, dict[str, Figures]] | None:
    """A follower's published window: (bins' version, time, figures by feature)."""
    try:
        found = json.loads(raw)
        features = {
            name: (None if bins is None else [float(n) for n in bins],
                   {str(k): int(v) for k, v in counts.items()}, int(missing), int(rows))
            for name, (bins, counts, missing, rows) in found["features"].items()
        }
        return str(found["edges"]), float(found["at"]), features
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
