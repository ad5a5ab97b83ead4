"""Ground truth across a fleet: a label joins its prediction on whichever replica made it,
and the leader judges accuracy on the fleet's sum.

Each replica remembers the predictions it answered (``router.telemetry.feedback``). A
label posted to a replica that does not remember its request id is relayed, in the
replica's once-a-second round trip to Redis (``router.control.fleet_beat``):

- it goes onto the inbox of the first other live replica (``{prefix}:fbin:{replica}``,
  a list, each entry a batch: ``{"items": [[request_id, label], ...], "left": [...]}``)
  with the replicas still to try;
- each replica pops its inbox at its next beat, joins what it remembers, and passes the
  rest to the next live replica in ``left``; the last one counts what nobody joined as
  ``unknown_request``. So a label is tried once on each live replica (a fleet of N
  replicas answers within N - 1 beats) and counted once, joined or unknown.

Bounds: an inbox keeps at most ``INBOX_KEPT`` batches (a feedback post is at most 1 MiB)
and expires after ``INBOX_EXPIRE_S`` without a push; a replica sends at most
``OUTBOX_KEPT`` batches a beat and counts labels beyond as unknown. Labels in the
inbox of a replica that dies are lost (neither joined nor counted); so are those in
flight while Redis is unreachable.

Accuracy: every verdict a replica scores is also added, in the same round trip, to
``{prefix}:acc:{route}:{variant}:{width}:{bucket}`` (HINCRBY ``c``/``w``/``s``,
HINCRBYFLOAT ``ae``), the buckets of the route's ``feedback.window`` (60 per window,
kept one window). The leader reads the window's buckets every second and the accuracy
gate judges those sums, so it sees every replica's labels.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from redis.asyncio.client import Pipeline

from router.control.redis_store import RedisStateStore
from router.control.store_health import WatchedStore
from router.telemetry.feedback import BUCKETS, GroundTruth
from strategies.feedback import FeedbackError, FeedbackItem, LabelTally, parse_feedback

__all__ = ["INBOX_EXPIRE_S", "INBOX_KEPT", "OUTBOX_KEPT", "FleetFeedback"]

INBOX_KEPT = 1000
INBOX_EXPIRE_S = 300
OUTBOX_KEPT = 1000
_POP = 100  # inbox batches read a beat


class FleetFeedback:
    """One replica's relay of labels it cannot join, and its share of the accuracy sums."""

    def __init__(
        self, watched: WatchedStore, redis: RedisStateStore, truth: GroundTruth, *,
        replica: str, members: Callable[[], list[str]], clock: Callable[[], float] = time.time,
    ) -> None:
        self.watched = watched
        self.redis = redis
        self.truth = truth
        self.replica = replica
        self.members = members  # ids of the live replicas
        self.clock = clock
        self.sums: dict[str, dict[str, LabelTally]] = {}  # on the leader: route -> variant
        self._outbox: collections.deque[tuple[str, str]] = collections.deque()
        self._sent = 0
        self._inbox_at = -1
        truth.relay = self.relay
        truth.unshared = {}

    def relay(self, items: list[FeedbackItem]) -> bool:
        """Hand ``items`` to the other live replicas; False when there are none (or too many
        batches wait), and the caller counts them as unknown."""
        others = sorted(m for m in self.members() if m != self.replica)
        return self._send(items, others)

    def _send(self, items: list[FeedbackItem], left: list[str]) -> bool:
        if not left or len(self._outbox) >= OUTBOX_KEPT:
            return False
        batch = {"items": [[i.request_id, i.label] for i in items], "left": left[1:]}
        self._outbox.append((left[0], json.dumps(batch)))
        return True

    def queue(self, pipe: Pipeline) -> None:
        """Queue on ``pipe`` the batches to relay, the tallies to sum, and the read of this
        replica's inbox (``received`` takes the replies)."""
        for target, batch in self._outbox:
            inbox = self._inbox(target)
            pipe.rpush(inbox, batch)
            pipe.ltrim(inbox, -INBOX_KEPT, -1)
            pipe.expire(inbox, INBOX_EXPIRE_S)
        self._sent = len(self._outbox)
        unshared, self.truth.unshared = self.truth.unshared or {}, {}
        for (route, variant, width, bucket), tally in unshared.items():
            key = self._bucket_key(route, variant, width, bucket)
            for field, count in (("c", tally.correct), ("w", tally.wrong), ("s", tally.scored)):
                if count:
                    pipe.hincrby(key, field, count)
            if tally.abs_error:
                pipe.hincrbyfloat(key, "ae", tally.abs_error)
            pipe.expire(key, int(width * BUCKETS) + 60)
        self._inbox_at = len(pipe.command_stack)
        pipe.lrange(self._inbox(self.replica), 0, _POP - 1)
        pipe.ltrim(self._inbox(self.replica), _POP, -1)

    def received(self, replies: list[Any]) -> None:
        """After the round trip: drop the batches sent, and try the batches received."""
        for _ in range(self._sent):
            self._outbox.popleft()
        self._sent = 0
        live = set(self.members())
        for raw in replies[self._inbox_at]:
            try:
                batch = json.loads(raw)
                pairs = batch["items"]
                items = parse_feedback([{"request_id": i, "label": label} for i, label in pairs])
                left = [m for m in batch["left"] if m in live and m != self.replica]
            except (ValueError, KeyError, TypeError, FeedbackError):
                continue  # not a batch this version wrote
            _, unmatched = self.truth.match(items, self.clock())
            if unmatched and not self._send(unmatched, left):
                self.truth.count_unknown(len(unmatched))

    async def read(self, routes: Iterable[tuple[str, tuple[str, ...]]]) -> None:
        """(Leader) the fleet's tallies over the window of each feedback route ``routes``
        names (those under analysis): ``sums``."""
        windows = self.truth.windows_s()
        wanted = [(route, variants, windows[route]) for route, variants in routes
                  if route in windows]
        now = self.clock()
        pipe = self.redis.client.pipeline(transaction=False)
        for route, variants, window_s in wanted:
            width = window_s / BUCKETS
            newest = int(now // width)
            for variant in variants:
                for bucket in range(newest - BUCKETS + 1, newest + 1):
                    pipe.hgetall(self._bucket_key(route, variant, width, bucket))
        replies = iter(await self.watched.call("read", self.redis.run_pipeline(pipe)))
        # Routes no longer analysed keep the sums last read (what the gate judged last).
        sums = {route: found for route, found in self.sums.items() if route in windows}
        for route, variants, _ in wanted:
            sums[route] = {}
            for variant in variants:
                total = LabelTally()
                for _ in range(BUCKETS):
                    total = total.plus(_tally(next(replies)))
                if total.labels:
                    sums[route][variant] = total
        self.sums = sums

    def forget(self) -> None:
        """Drop the sums read (leadership lost)."""
        self.sums = {}

    def _inbox(self, replica: str) -> str:
        return self.redis.key(f"fbin:{replica}")

    def _bucket_key(self, route: str, variant: str, width: float, bucket: int) -> str:
        return self.redis.key(f"acc:{route}:{variant}:{width:g}:{bucket}")


def _tally(raw: dict[bytes, bytes]) -> LabelTally:
    """A bucket's hash as a tally."""
    fields = {key.decode(): value for key, value in raw.items()}
    return LabelTally(
        correct=int(fields.get("c", 0)), wrong=int(fields.get("w", 0)),
        scored=int(fields.get("s", 0)), abs_error=float(fields.get("ae", 0.0)),
    )
