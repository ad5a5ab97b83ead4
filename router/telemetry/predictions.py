"""The bounded request id -> (variant, backend, prediction, time) store behind ground truth.

Laid out for the request path first, size second. Predictions are remembered in blocks
of ``keep / 8``: a ring of slots in parallel arrays (ids, variant/backend pairs,
predictions, times) allocated once, and per block a dict from id to slot. An insertion
is four array stores, all in C, and allocates nothing: the id is the string the request
already carries. The dicts are built when a label's look-up (or the status's count)
needs them, in bulk, from the slots written since the last look-up. Inserting into a
dict per request cost 3 to 4 microseconds of CPU inside a busy router (its table and a
new key object are cold by then), eight times what the same insertion costs in a loop,
and built in bulk it costs about 0.1 microsecond per prediction. When the newest block
is full, the oldest block is dropped whole and its slots are reused. Predictions and
variant/backend pairs are shared between slots (a bounded interning cache). About 130
bytes per remembered prediction before its block is indexed, about 200 after, with ids
of 32 to 36 characters (``tests/telemetry/test_prediction_memory.py`` holds the budget).

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
from itertools import islice
from typing import TypeVar

from strategies.feedback import Prediction

__all__ = ["BLOCKS", "PredictionStore", "Row"]

Row = tuple[str, str, Prediction, float]  # variant, backend, prediction, time

BLOCKS = 8  # a store drops the oldest 1/BLOCKS of its predictions at once
_INTERN_MAX = 4096  # distinct predictions and variant/backend pairs shared between slots
_T = TypeVar("_T")


class _Block:
    """A block's slots ``start`` to ``start + size``; ``index`` maps the ids of its slots
    before ``indexed`` to their slot (the newest prediction of each, until joined)."""

    __slots__ = ("index", "indexed", "start")

    def __init__(self, start: int) -> None:
        self.start = self.indexed = start
        self.index: dict[str, int] = {}


class PredictionStore:
    """The newest predictions of one route (at most ``keep``), by request id."""

    __slots__ = (
        "_at", "_block", "_blocks", "_end", "_head", "_ids", "_pairs", "_shared_pairs",
        "_shared_values", "_size", "_values", "dropped", "keep",
    )

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._block = max(1, keep // BLOCKS)  # slots per block
        self._size = keep - keep % self._block  # whole blocks, at most keep slots
        # Allocated at the first prediction (a shadow's store may never see one).
        self._ids: list[str | None] = []
        self._pairs: list[tuple[str, str] | None] = []
        self._values: list[Prediction | None] = []
        self._at = array("d")
        self._blocks: deque[_Block] = deque()  # oldest first
        self._head = self._end = 0  # next slot to write; the end of the newest block's slots
        self._shared_pairs: dict[tuple[str, str], tuple[str, str]] = {}
        self._shared_values: dict[Prediction, Prediction] = {}
        self.dropped = 0  # predictions forgotten unjoined: their block was the oldest

    def _allocate(self) -> None:
        size = self._size
        self._ids, self._pairs, self._values = [None] * size, [None] * size, [None] * size
        self._at = array("d", bytes(8 * size))
        # Out of the cyclic collector's passes: its full passes would walk the slot lists
        # every time, and they hold no cycle. The blocks' dicts hold only ids and numbers,
        # so the collector never tracks them.
        gc.freeze()

    def __len__(self) -> int:
        """Predictions remembered (an id repeated across blocks counts in each)."""
        self._index()
        return sum(len(block.index) for block in self._blocks)

    def add(
        self, request_id: str, variant: str, backend: str, value: Prediction, at: float
    ) -> None:
        """Remember one prediction; for a repeated id, the newest is the one joined."""
        slot = self._head
        if slot == self._end:
            slot = self._next_block()
        self._head = slot + 1
        self._ids[slot] = request_id
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
            oldest = self._blocks[0]
            self._index_block(oldest, oldest.start + self._block)
            self.dropped += len(self._blocks.popleft().index)
        self._blocks.append(_Block(start))
        self._end = start + self._block
        return start

    def _index(self) -> None:
        """Index every slot written since the last look-up: the newest, so newest blocks
        first, up to the first older block found indexed whole (those before it are too)."""
        if not self._blocks or self._blocks[-1].indexed == self._head:
            return  # nothing written since: the slots not indexed always end at the head
        # The newest block's slots past the head still hold the ring's older round.
        self._index_block(self._blocks[-1], self._head)
        for block in islice(reversed(self._blocks), 1, None):
            end = block.start + self._block
            if block.indexed == end:
                break
            self._index_block(block, end)

    def _index_block(self, block: _Block, end: int) -> None:
        """Index ``block``'s slots up to ``end`` (a later slot of an id replaces an earlier)."""
        if block.indexed < end:
            ids = self._ids[block.indexed:end]
            block.index.update(zip(ids, range(block.indexed, end), strict=True))  # type: ignore[arg-type]
            block.indexed = end

    def pop(self, request_id: str) -> Row | None:
        """The newest prediction for ``request_id``, forgotten with any older one (a label
        joins once); None if unknown."""
        self._index()
        found: int | None = None
        for block in reversed(self._blocks):
            slot = block.index.pop(request_id, None)
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
        self._index()
        for block in self._blocks:
            for slot, request_id in sorted((slot, key) for key, slot in block.index.items()):
                yield request_id, self._row(slot)

    def _row(self, slot: int) -> Row:
        pair, value = self._pairs[slot], self._values[slot]
        assert pair is not None and value is not None
        return pair[0], pair[1], value, self._at[slot]


def _share(cache: dict[_T, _T], value: _T) -> _T:
    """``value``, kept in ``cache`` (while under its bound) for later equal values to share."""
    if len(cache) < _INTERN_MAX:
        cache[value] = value
    return value
