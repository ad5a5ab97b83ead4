"""The bounded prediction store and the bucketed accuracy window behind ground truth.

The store is checked against its rules written plainly (blocks of ordered maps) under
random adds, repeated ids and joins.
"""

from __future__ import annotations

import random

import pytest

from router.telemetry.feedback import AccuracyWindow, PredictionStore
from router.telemetry.predictions import Row
from strategies.feedback import LabelTally


def test_accuracy_window_forgets_labels_older_than_the_window() -> None:
    window = AccuracyWindow(60.0)  # 60 buckets of a second
    window.add(1000.0, LabelTally(correct=1))
    window.add(1000.5, LabelTally(wrong=1))
    window.add(1030.0, LabelTally(correct=1))
    assert window.total(1030.0) == LabelTally(correct=2, wrong=1)
    assert window.total(1059.9) == LabelTally(correct=2, wrong=1)
    assert window.total(1060.0) == LabelTally(correct=1)  # the bucket of second 1000 has passed
    assert window.total(1090.0) == LabelTally()


def test_prediction_store_drops_the_oldest_past_keep() -> None:
    store = PredictionStore(2)
    for i in range(3):
        store.add(f"r{i}", "stable", "v1", str(i), float(i))
    assert len(store) == 2 and store.pop("r0") is None
    store.add("r1", "candidate", "v2", "9", 5.0)  # a repeated id: its newest prediction
    assert store.pop("r1") == ("candidate", "v2", "9", 5.0)
    assert store.resized(1).pop("r2") == ("stable", "v1", "2", 2.0)


class _Model:
    """The store's rules written plainly: blocks of ``keep // 8`` predictions (at least
    one), as many whole blocks as fit in ``keep``, the oldest block dropped whole; a label
    joins the newest prediction of its id and forgets every other."""

    def __init__(self, keep: int) -> None:
        self.block = max(1, keep // 8)
        self.most = keep // self.block
        self.blocks: list[dict[str, Row]] = []
        self.filled = self.block  # predictions made into the newest block
        self.dropped = 0  # ids of the dropped blocks never joined

    def add(self, request_id: str, row: Row) -> None:
        if self.filled == self.block:
            if len(self.blocks) == self.most:
                self.dropped += len(self.blocks.pop(0))
            self.blocks.append({})
            self.filled = 0
        self.blocks[-1].pop(request_id, None)  # ordered by its newest prediction
        self.blocks[-1][request_id] = row
        self.filled += 1

    def pop(self, request_id: str) -> Row | None:
        found = [block.pop(request_id) for block in self.blocks if request_id in block]
        return found[-1] if found else None

    def __len__(self) -> int:
        return sum(map(len, self.blocks))

    def resized(self, keep: int) -> _Model:
        fresh = _Model(keep)
        for request_id, row in [item for block in self.blocks for item in block.items()][-keep:]:
            fresh.add(request_id, row)
        return fresh


@pytest.mark.parametrize("seed", range(24))
def test_prediction_store_follows_its_rules_under_random_adds_repeats_and_joins(
    seed: int,
) -> None:
    rng = random.Random(seed)
    keep = rng.choice([1, 2, 3, 4, 5, 8, 40])
    few = rng.choice([2, 5, 30])  # few ids: holes and repeats are frequent, the ring wraps on them
    ids = [f"{rng.getrandbits(128):032x}" for _ in range(few)] + [
        f"client-{n}" for n in range(few)
    ] + ["AB" * 16, "ab" * 16, "ab " * 10 + "ab"]  # capitals and spaces are other ids
    store, model = PredictionStore(keep), _Model(keep)
    adds = rng.choice([0.6, 0.95])  # mostly adds: long runs written before a look-up indexes them
    for step in range(3000):
        request_id = rng.choice(ids)
        if rng.random() < adds:
            row = (rng.choice(["stable", "candidate"]), "b", rng.choice(["x", 0.0, -0.0, 2.5]),
                   float(step))
            store.add(request_id, *row)
            model.add(request_id, row)
        else:
            got, want = store.pop(request_id), model.pop(request_id)
            assert got == want and repr(got) == repr(want), (step, request_id)
        if rng.random() < 0.2:  # a count indexes the slots written since: some, not all
            assert len(store) == len(model)
    assert store.dropped == model.dropped
    half = max(1, keep // 2)
    resized, kept = store.resized(half), model.resized(half)
    for request_id in ids:
        assert resized.pop(request_id) == kept.pop(request_id)
