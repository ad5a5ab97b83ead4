"""The answer windows behind the model-quality gates: per-second slots, bounded values."""

from __future__ import annotations

import math

from router.telemetry.quality import VALUES_KEPT, QualityWindows
from router.telemetry.windows import SPAN_S

NOW = 1_800_000_000.0


def test_window_sums_only_its_seconds() -> None:
    windows = QualityWindows()
    windows.record("r", "candidate", NOW - 100, 1, {"a": 5}, [])
    windows.record("r", "candidate", NOW - 5, 2, {"a": 1, "b": 3}, [1.5, math.nan])
    windows.record("r", "candidate", NOW, 0, {"b": 1}, [2.5])
    got = windows.quality("r", "candidate", NOW, 30)
    assert (got.answers, got.null_outputs, dict(got.labels), got.values) == (
        2 + 4 + 2 + 1 + 1, 2, {"a": 1, "b": 4}, (1.5, 2.5)
    )
    wide = windows.quality("r", "candidate", NOW, 300)
    assert wide.null_outputs == 3 and wide.labels["a"] == 6
    assert windows.quality("r", "stable", NOW, 30).answers == 0


def test_a_reused_slot_starts_empty_and_values_are_bounded() -> None:
    windows = QualityWindows()
    windows.record("r", "v", NOW - SPAN_S, 4, {"a": 4}, [])
    windows.record("r", "v", NOW, 0, {"b": 1}, [float(i) for i in range(VALUES_KEPT + 10)])
    got = windows.quality("r", "v", NOW, SPAN_S)
    assert dict(got.labels) == {"b": 1} and got.null_outputs == 0
    assert len(got.values) == VALUES_KEPT and got.values[-1] == VALUES_KEPT + 9
    windows.forget("r")
    assert windows.quality("r", "v", NOW, 30).answers == 0


def test_the_controllers_view_sums_a_variant_only_when_read() -> None:
    windows = QualityWindows()
    windows.record("r", "candidate", NOW, 1, {"a": 2}, [])
    view = windows.view("r", ("stable", "candidate"), NOW, 30)
    assert list(view) == ["stable", "candidate"] and len(view) == 2
    windows.record("r", "candidate", NOW, 0, {"a": 5}, [])  # before the first read: counted
    assert view["candidate"].labels == {"a": 7}
    windows.record("r", "candidate", NOW, 0, {"a": 5}, [])  # after it: the view is fixed
    assert view["candidate"].labels == {"a": 7} and view.get("shadow") is None
