"""The bounded request id -> (variant, backend, prediction, time) store behind ground truth.

Laid out for the request path first, size second. Predictions are remembered in blocks
of ``keep / 8``: a ring of slots in parallel arrays (variant/backend pairs, predictions,
times) allocated once, and per block a dict from id to slot. An insertion is one dict
insertion and three array stores, all in C, touching one random place in memory (the new
id's bucket); when the newest block is full, the oldest block's dict is dropped whole and
its slots are reused. Dropping predictions one by one (a dict deletion per insertion, or a
table probed in Python) touched four or five random places and cost two to five times as
much inside a busy router. The router's own ids (32 lowercase hex digits) are kept as
their 16 bytes; predictions and variant/backend pairs are shared between slots (a bounded
interning cache). About 120 to 155 bytes per remembered prediction with the router's ids,
about 200 with 36-character client ids and a distinct number per prediction
(``tests/telemetry/test_prediction_memory.py`` holds the budget).

Order: the store remembers the newest predictions, at most ``keep`` and at least
``keep - keep / 8`` once that many were made: the oldest eighth is dropped at once. A
repeated id: the newest prediction is the one joined, and a label joins once (``pop``
forgets every prediction of the id).
"""

from __future__ import annotations

import gc
from array import array
from collections import deque
from collections.abc import Iterator
from typing import TypeVar

from strategies.feedback import Prediction

__all__ = ["BLOCKS", "PredictionStore", "Row"]

Row = tuple[str, str, Prediction, float]  # variant, backend, prediction, time
Key = bytes | str

BLOCKS = 8  # a store drops the oldest 1/BLOCKS of its predictions at once
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
    """The newest predictions of one route (at most ``keep``), by request id."""

    __slots__ = (
        "_at", "_block", "_blocks", "_end", "_head", "_pairs", "_shared_pairs",
        "_shared_values", "_size", "_values", "dropped", "keep",
    )

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._block = max(1, keep // BLOCKS)  # slots per block
        self._size = keep - keep % self._block  # whole blocks, at most keep slots
        # Allocated at the first prediction (a shadow's store may never see one).
        self._pairs: list[tuple[str, str] | None] = []
        self._values: list[Prediction | None] = []
        self._at = array("d")
        self._blocks: deque[dict[Key, int]] = deque()  # id -> slot, oldest block first
        self._head = self._end = 0  # next slot to write; the end of the newest block's slots
        self._shared_pairs: dict[tuple[str, str], tuple[str, str]] = {}
        self._shared_values: dict[Prediction, Prediction] = {}
        self.dropped = 0  # predictions forgotten unjoined: their block was the oldest

    def _allocate(self) -> None:
        size = self._size
        self._pairs, self._values = [None] * size, [None] * size
        self._at = array("d", bytes(8 * size))
        # Out of the cyclic collector's passes: its full passes would walk the slot lists
        # every time, and they hold no cycle. The blocks' dicts hold only ids and numbers,
        # so the collector never tracks them.
        gc.freeze()

    def __len__(self) -> int:
        """Predictions remembered (an id repeated across blocks counts in each)."""
        return sum(map(len, self._blocks))

    def add(
        self, request_id: str, variant: str, backend: str, value: Prediction, at: float
    ) -> None:
        """Remember one prediction; for a repeated id, the newest is the one joined."""
        slot = self._head
        if slot == self._end:
            slot = self._next_block()
        self._head = slot + 1
        self._blocks[-1][_key(request_id)] = slot
        pair = (variant, backend)
        self._pairs[slot] = self._shared_pairs.get(pair) or _share(self._shared_pairs, pair)
        self._values[slot] = (
            value if value == 0.0 else self._shared_values.get(value)
            or _share(self._shared_values, value)
        )
        self._at[slot] = at

    def _next_block(self) -> int:
        """Open a new newest block (dropping the oldest when the ring is full); its first slot."""
        if not self._pairs:
            self._allocate()
        start = self._end if self._end < self._size else 0
        if len(self._blocks) * self._block >= self._size:
            self.dropped += len(self._blocks.popleft())
        self._blocks.append({})
        self._end = start + self._block
        return start

    def pop(self, request_id: str) -> Row | None:
        """The newest prediction for ``request_id``, forgotten with any older one (a label
        joins once); None if unknown."""
        key = _key(request_id)
        found: int | None = None
        for block in reversed(self._blocks):
            slot = block.pop(key, None)
            if found is None:
                found = slot
        return None if found is None else self._row(found)

    def resized(self, keep: int) -> PredictionStore:
        """A store of capacity ``keep`` holding the newest of these predictions."""
        fresh = PredictionStore(keep)
        for request_id, row in list(self._rows())[-keep:]:
            fresh.add(request_id, *row)
        return fresh

    def _rows(self) -> Iterator[tuple[str, Row]]:
        """(request id, row) of every remembered prediction, oldest first."""
        for block in self._blocks:
            for slot, key in sorted((slot, key) for key, slot in block.items()):
                yield _id_of(key), self._row(slot)

    def _row(self, slot: int) -> Row:
        pair, value = self._pairs[slot], self._values[slot]
        assert pair is not None and value is not None
        return pair[0], pair[1], value, self._at[slot]


def _share(cache: dict[_T, _T], value: _T) -> _T:
    """``value``, kept in ``cache`` (while under its bound) for later equal values to share."""
    if len(cache) < _INTERN_MAX:
        cache[value] = value
    return value
