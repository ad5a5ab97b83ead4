"""Memory per remembered prediction: a full store, after a second store's worth of churn.

Everything the store keeps alive is counted (tracemalloc): the ids, made as the proxy makes
them (32 hex digits) or as a client sends them, the predictions parsed per answer, the times.
An ``OrderedDict`` of tuples took 292 bytes per prediction when first full and 352 after
churn (dict tables left with deleted entries). The ring with a dict per block of
``keep / 8``, built when a look-up needs it, takes 114 (router ids) to 154 (client ids)
bytes before its blocks are indexed and 166 to 206 after; the fill below ends with a
look-up, the costlier state. Built per insertion it took 120 to 155 and cost eight times
the CPU inside a router; with one dict for all (a deletion per insertion) 150 to 230, and
with a table probed in Python 114, at two to five times the CPU.
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from collections.abc import Callable

import pytest

from router.telemetry import predictions
from router.telemetry.predictions import PredictionStore

KEEP = 20_000
# Only what this file's code and the store's (up to two calls down from it) allocate:
# other threads of the process (a pytest-xdist worker's channel, for one) allocate too.
_OURS = [tracemalloc.Filter(True, __file__),
         tracemalloc.Filter(True, predictions.__file__, all_frames=True)]


def _kept_bytes(action: Callable[[], object]) -> tuple[int, object]:
    """Bytes allocated by ``action`` and still alive once it returned, and what it returned."""
    gc.collect()
    tracemalloc.start(3)
    try:
        before = tracemalloc.take_snapshot().filter_traces(_OURS)
        kept = action()
        gc.collect()
        after = tracemalloc.take_snapshot().filter_traces(_OURS)
    finally:
        tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename")), kept


def _bytes_per_prediction(
    new_id: Callable[[int], str], value: Callable[[int], str | float]
) -> float:
    def fill() -> PredictionStore:
        store = PredictionStore(KEEP)
        for i in range(2 * KEEP):  # full, then a second store's worth dropped one by one
            store.add(new_id(i), "candidate", "model-b", value(i), time.time())
        store.pop("")  # a label's look-up: every block indexed, the costlier state
        return store

    used, store = _kept_bytes(fill)
    assert isinstance(store, PredictionStore) and len(store) == KEEP
    return used / KEEP


def test_router_ids_and_class_labels_cost_at_most_175_bytes_each() -> None:
    labels = ["setosa", "versicolor", "virginica"]
    # Each label a fresh string, as parsed from each answer.
    per = _bytes_per_prediction(lambda i: os.urandom(16).hex(), lambda i: "".join(labels[i % 3]))
    print(f"{per:.0f} bytes per prediction")
    assert per <= 175, f"{per:.0f} bytes per remembered prediction"


def test_client_uuids_and_regression_values_cost_at_most_230_bytes_each() -> None:
    per = _bytes_per_prediction(
        lambda i: f"{os.urandom(4).hex()}-{os.urandom(2).hex()}-4{os.urandom(2).hex()[1:]}-"
        f"{os.urandom(2).hex()}-{os.urandom(6).hex()}",
        lambda i: i / 7,
    )
    print(f"{per:.0f} bytes per prediction")
    assert per <= 230, f"{per:.0f} bytes per remembered prediction"


@pytest.mark.parametrize("keep", [1, 3, 1000])
def test_the_ring_is_allocated_once_at_the_first_prediction(keep: int) -> None:
    store = PredictionStore(keep)
    assert store.pop("a" * 32) is None and len(store) == 0
    store.add("a" * 32, "stable", "model-a", 1.0, 0.0)

    def churn() -> None:
        for i in range(3 * keep):
            store.add(f"{i:032x}", "stable", "model-a", 1.0, 0.0)

    grown, _ = _kept_bytes(churn)
    # Only the ids grow (the strings themselves, 81 bytes each; no look-up came, so no
    # block was indexed); a ring reallocated or kept per prediction would add its slots again.
    assert grown <= 150 * keep + 1024, grown
