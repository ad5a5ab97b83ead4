"""The bounded prediction store and the bucketed accuracy window behind ground truth."""

from __future__ import annotations

from router.telemetry.feedback import AccuracyWindow, PredictionStore
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
