"""The bounded request id -> (variant, backend, prediction, time) store behind ground truth.

Laid out for the request path first, size second. A ring of slots in parallel arrays
(ids, variant/backend pairs, predictions, times) allocated once at ``keep * 5 / 4``
slots keeps the order; a dict from id to slot finds a prediction. Every operation is a
few dict and list operations in C: about 1 µs an insertion on a full store, where a
table probed in Python cost 3.5 µs (and twice that in a busy router, between cache
misses). The router's own ids (32 lowercase hex digits) are kept as their 16 bytes;
predictions and variant/backend pairs are shared between slots (a bounded interning
cache). That is about 150 to 250 bytes per remembered prediction, as the dict's table
stands between its doublings (``tests/telemetry/test_prediction_memory.py`` holds the
budget), against about 350 for an ``OrderedDict`` of tuples.

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
Key = bytes | str

_INTERN_MAX = 4096  # distinct predictions and variant/backend pairs shared between slots
_HEX_ID = 32
_T = TypeVar("_T")


def _key(request_id: str) -> Key:
    """The id as stored: 16 bytes for 32 lowercase hex digits (its one spelling), else as is."""
    if len(request_id) == _HEX_ID:
        try:
            raw = bytes.fromhex(request_id)
        except ValueError:
            return request_id
        if raw.hex() == request_id:  # fromhex also takes capitals and spaces
            return raw
    return request_id


def _id_of(key: Key) -> str:
    return key.hex() if isinstance(key, bytes) else key


class PredictionStore:
    """The newest ``keep`` predictions of one route, by request id."""

    __slots__ = (
        "_at", "_head", "_ids", "_index", "_pairs", "_shared_pairs", "_shared_values",
        "_size", "_tail", "_values", "keep",
    )

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._size = keep + max(keep // 4, 1)
        # Allocated at the first prediction (a shadow's store may never see one).
        self._ids: list[Key | None] = []
        self._pairs: list[tuple[str, str] | None] = []
        self._values: list[Prediction | None] = []
        self._at = array("d")
        self._index: dict[Key, int] = {}
        self._shared_pairs: dict[tuple[str, str], tuple[str, str]] = {}
        self._shared_values: dict[Prediction, Prediction] = {}
        self._head = self._tail = 0  # next slot to write, oldest slot

    def _allocate(self) -> None:
        size = self._size
        self._ids, self._pairs, self._values = [None] * size, [None] * size, [None] * size
        self._at = array("d", bytes(8 * size))
        # Out of the cyclic collector's passes: its full passes would walk the slot lists
        # (three times ``keep * 5/4`` entries) every time, and they hold no cycle. The
        # index holds only ids and numbers, so the collector never tracks it.
        gc.freeze()

    def __len__(self) -> int:
        return len(self._index)

    def add(
        self, request_id: str, variant: str, backend: str, value: Prediction, at: float
    ) -> None:
        """Remember one prediction; a repeated id keeps only its newest prediction."""
        ids = self._ids
        if not ids:
            self._allocate()
            ids = self._ids
        key = _key(request_id)
        index = self._index
        replaced = index.pop(key, None)
        if replaced is not None:
            self._forget(replaced)
        slot, size = self._head, self._size
        if len(index) >= self.keep or ids[slot] is not None:  # drop the oldest
            tail = self._tail
            while ids[tail] is None:  # holes left by joins and repeated ids
                tail = tail + 1 if tail + 1 < size else 0
            oldest = ids[tail]
            assert oldest is not None
            del index[oldest]
            ids[tail] = self._pairs[tail] = self._values[tail] = None
            self._tail = tail + 1 if tail + 1 < size else 0
        elif slot == self._tail and index:  # a full ring whose oldest slot is a hole
            self._tail = slot + 1 if slot + 1 < size else 0
        self._head = slot + 1 if slot + 1 < size else 0
        ids[slot] = key
        pair = (variant, backend)
        self._pairs[slot] = self._shared_pairs.get(pair) or _share(self._shared_pairs, pair)
        self._values[slot] = (
            value if value == 0.0 else self._shared_values.get(value)
            or _share(self._shared_values, value)
        )
        self._at[slot] = at
        index[key] = slot

    def pop(self, request_id: str) -> Row | None:
        """The prediction for ``request_id``, forgotten (a label joins once); None if unknown."""
        slot = self._index.pop(_key(request_id), None)
        if slot is None:
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
        if not self._index:
            return
        for offset in range(self._size):
            slot = (self._tail + offset) % self._size
            key = self._ids[slot]
            if key is not None:
                yield _id_of(key), self._row(slot)

    def _row(self, slot: int) -> Row:
        pair, value = self._pairs[slot], self._values[slot]
        assert pair is not None and value is not None
        return pair[0], pair[1], value, self._at[slot]

    def _forget(self, slot: int) -> None:
        """Empty ``slot``, already out of the index."""
        self._ids[slot] = self._pairs[slot] = self._values[slot] = None
        if not self._index:
            self._tail = self._head
        elif slot == self._tail:
            self._tail = slot + 1 if slot + 1 < self._size else 0


def _share(cache: dict[_T, _T], value: _T) -> _T:
    """``value``, kept in ``cache`` (while under its bound) for later equal values to share."""
    if len(cache) < _INTERN_MAX:
        cache[value] = value
    return value
