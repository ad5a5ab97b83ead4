"""The bounded request id -> (variant, backend, prediction, time) store behind ground truth.

At the default ``keep`` of 100,000 per route the store is most of a route's memory,
so it is laid out for size: a ring of slots in parallel arrays (ids, variant/backend
pairs, predictions, times) allocated once at ``keep * 5 / 4`` slots, and an
open-addressing table of slot numbers (linear probing on the id's hash, at most half
full) in place of a dict. No object is created per prediction except the id, and the
router's own ids (32 lowercase hex digits) are kept as their 16 bytes; predictions and
variant/backend pairs are shared between slots (a bounded interning cache). That is
about 110 bytes per remembered prediction against about 350 for an ``OrderedDict`` of
tuples (``tests/telemetry/test_prediction_memory.py`` holds the budget).

Order: a new prediction goes at the ring's head; once ``keep`` are remembered the
oldest is dropped. A joined (popped) or replaced prediction leaves a hole that is
skipped; when the ring is full of remembered predictions and holes, the oldest
remembered one is dropped even though fewer than ``keep`` are remembered, so a
prediction is forgotten at the latest ``keep * 5 / 4`` predictions after it was made.
"""

from __future__ import annotations

import gc
from array import array
from collections.abc import Iterator
from typing import TypeVar

from strategies.feedback import Prediction

__all__ = ["PredictionStore", "Row"]

Row = tuple[str, str, Prediction, float]  # variant, backend, prediction, time

_INTERN_MAX = 4096  # distinct predictions and variant/backend pairs shared between slots
_HEX_ID = 32
_T = TypeVar("_T")


def _key(request_id: str) -> bytes | str:
    """The id as stored: 16 bytes for 32 lowercase hex digits (its one spelling), else as is."""
    if len(request_id) == _HEX_ID:
        try:
            raw = bytes.fromhex(request_id)
        except ValueError:
            return request_id
        if raw.hex() == request_id:  # fromhex also takes capitals and spaces
            return raw
    return request_id


class PredictionStore:
    """The newest ``keep`` predictions of one route, by request id."""

    __slots__ = (
        "_at", "_bucket_of", "_head", "_home_of", "_ids", "_live", "_mask", "_pairs",
        "_shared_pairs", "_shared_values", "_size", "_table", "_tail", "_values", "keep",
    )

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._size = keep + max(keep // 4, 1)
        # Allocated at the first prediction (a shadow's store may never see one).
        self._ids: list[bytes | str | None] = []
        self._pairs: list[tuple[str, str] | None] = []
        self._values: list[Prediction | None] = []
        self._at = array("d")
        self._bucket_of = array("i")  # per slot: its bucket in the table
        self._home_of = array("i")  # per slot: its id's first bucket (hash & mask)
        self._table = array("i")  # per bucket: slot + 1; 0 is empty
        self._mask = 0
        self._shared_pairs: dict[tuple[str, str], tuple[str, str]] = {}
        self._shared_values: dict[Prediction, Prediction] = {}
        self._head = self._tail = self._live = 0  # next slot to write, oldest slot, count

    def _allocate(self) -> None:
        size = self._size
        self._ids, self._pairs, self._values = [None] * size, [None] * size, [None] * size
        self._at = array("d", bytes(8 * size))
        self._bucket_of = array("i", bytes(4 * size))
        self._home_of = array("i", bytes(4 * size))
        buckets = 1 << (2 * size).bit_length()  # at most half full
        self._table = array("i", bytes(4 * buckets))
        self._mask = buckets - 1
        # Out of the cyclic collector's passes: its full passes would walk the slot lists
        # (three times ``keep * 5/4`` entries) every time, and they hold no cycle.
        gc.freeze()

    def __len__(self) -> int:
        return self._live

    def add(
        self, request_id: str, variant: str, backend: str, value: Prediction, at: float
    ) -> None:
        """Remember one prediction; a repeated id keeps only its newest prediction."""
        if not self._table:
            self._allocate()
        key = _key(request_id)
        table, ids, mask = self._table, self._ids, self._mask
        home = bucket = hash(key) & mask
        while table[bucket]:  # to the bucket holding the key, or the first empty one
            if ids[table[bucket] - 1] == key:
                self._forget(table[bucket] - 1)
                bucket = self._find(key, home)
                break
            bucket = (bucket + 1) & mask
        slot = self._head
        if self._live >= self.keep or ids[slot] is not None:
            hole = self._drop_oldest()
            # The one bucket emptied may now be the first free one of the key's probe run.
            if (hole - home) & mask < (bucket - home) & mask:
                bucket = hole
        if self._live and slot == self._tail:  # a full ring whose oldest slot is a hole
            self._tail = (slot + 1) % self._size
        self._head = (slot + 1) % self._size
        ids[slot] = key
        pair = (variant, backend)
        self._pairs[slot] = self._shared_pairs.get(pair) or _share(self._shared_pairs, pair)
        self._values[slot] = (
            value if value == 0.0 else self._shared_values.get(value)
            or _share(self._shared_values, value)
        )
        self._at[slot] = at
        table[bucket] = slot + 1
        self._bucket_of[slot] = bucket
        self._home_of[slot] = home
        self._live += 1

    def pop(self, request_id: str) -> Row | None:
        """The prediction for ``request_id``, forgotten (a label joins once); None if unknown."""
        if not self._live:
            return None
        key = _key(request_id)
        slot = self._table[self._find(key, hash(key) & self._mask)] - 1
        if slot < 0:
            return None
        row = self._row(slot)
        self._forget(slot)
        return row

    def resized(self, keep: int) -> PredictionStore:
        """A store of capacity ``keep`` holding the newest of these predictions."""
        fresh = PredictionStore(keep)
        for request_id, row in list(self._rows())[-keep:]:
            fresh.add(request_id, *row)
        return fresh

    def _rows(self) -> Iterator[tuple[str, Row]]:
        """(request id, row) of every remembered prediction, oldest first."""
        if not self._live:
            return
        for offset in range(self._size):
            slot = (self._tail + offset) % self._size
            key = self._ids[slot]
            if key is not None:
                yield (key.hex() if isinstance(key, bytes) else key), self._row(slot)

    def _row(self, slot: int) -> Row:
        pair, value = self._pairs[slot], self._values[slot]
        assert pair is not None and value is not None
        return pair[0], pair[1], value, self._at[slot]

    def _find(self, key: bytes | str, bucket: int) -> int:
        """From ``key``'s home ``bucket``: the bucket holding its slot, else the first empty."""
        table, ids, mask = self._table, self._ids, self._mask
        while True:
            slot = table[bucket]
            if not slot or ids[slot - 1] == key:
                return bucket
            bucket = (bucket + 1) & mask

    def _drop_oldest(self) -> int:
        """Forget the oldest remembered prediction; the bucket left empty."""
        ids, tail = self._ids, self._tail
        while ids[tail] is None:  # holes left by joins and repeated ids
            tail = (tail + 1) % self._size
        self._tail = tail
        return self._forget(tail)

    def _forget(self, slot: int) -> int:
        """Empty ``slot`` and take it out of the table; the bucket left empty."""
        self._ids[slot] = self._pairs[slot] = self._values[slot] = None
        live = self._live = self._live - 1
        if not live:
            self._tail = self._head
        elif slot == self._tail:
            self._tail = (slot + 1) % self._size
        return self._unlink(self._bucket_of[slot])

    def _unlink(self, hole: int) -> int:
        """Remove ``hole`` from the table, moving later entries of its probe run back into it."""
        table, bucket_of, home_of, mask = self._table, self._bucket_of, self._home_of, self._mask
        bucket = hole
        while True:
            bucket = (bucket + 1) & mask
            slot = table[bucket]
            if not slot:
                break
            home = home_of[slot - 1]
            # The entry may move back to the hole unless its home lies in (hole, bucket].
            if (bucket - home) & mask >= (bucket - hole) & mask:
                table[hole] = slot
                bucket_of[slot - 1] = hole
                hole = bucket
        table[hole] = 0
        return hole


def _share(cache: dict[_T, _T], value: _T) -> _T:
    """``value``, kept in ``cache`` (while under its bound) for later equal values to share."""
    if len(cache) < _INTERN_MAX:
        cache[value] = value
    return value
