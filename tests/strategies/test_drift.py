"""Input drift's pure core: feature rows from V2, V1 and plain JSON bodies; PSI reports."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import ValidationError

from strategies.drift import (
    MIN_LIVE,
    OTHER,
    DriftSpec,
    compare_categorical,
    compare_numeric,
    extract_rows,
    extract_table,
)

NAN = float("nan")


@pytest.mark.parametrize(
    ("protocol", "doc", "rows"),
    [
        ("v2", {"inputs": [{"name": "x", "shape": [1, 3], "data": [1, 2.5, None]}]},
         [{"x[0]": 1.0, "x[1]": 2.5, "x[2]": None}]),
        ("v2", {"inputs": [{"name": "x", "shape": [2, 2], "data": [[1, 2], [3, NAN]]},
                           {"name": "c", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]},
         [{"x[0]": 1.0, "x[1]": 2.0, "c": "a"}, {"x[0]": 3.0, "x[1]": None, "c": "b"}]),
        ("v2", {"instances": [[1, 2]]}, []),
        ("v1", {"instances": [[1, 2], [3, 4]]},
         [{"instances[0]": 1.0, "instances[1]": 2.0}, {"instances[0]": 3.0, "instances[1]": 4.0}]),
        ("v1", {"instances": [{"age": 3, "city": "x"}]}, [{"age": 3.0, "city": "x"}]),
        ("v1", {"inputs": {"a": [1, 2], "b": [True, False]}},
         [{"a": 1.0, "b": "true"}, {"a": 2.0, "b": "false"}]),
        (None, {"age": 40, "income": None, "tags": [1], "ok": True},
         [{"age": 40.0, "income": None, "ok": "true"}]),
        (None, [{"a": 1}, {"a": 2}, 7], [{"a": 1.0}, {"a": 2.0}]),
        (None, 42, []),
    ],
)
def test_extract_rows(protocol: str | None, doc: Any, rows: list[dict[str, Any]]) -> None:
    assert extract_rows(protocol, doc) == rows


def test_v2_tensors_are_sliced_into_one_table() -> None:
    doc = {"inputs": [{"name": "x", "shape": [2, 40], "data": list(range(80))},
                      {"name": "c", "shape": [1], "data": ["a"]}]}
    names, rows = extract_table("v2", doc)
    assert names[:2] == ("x[0]", "x[1]") and names[-1] == "c" and len(names) == 33  # 32 of x
    assert rows == [[*range(32), "a"], [*range(40, 72), None]]  # c has no second row


def test_a_batch_is_read_up_to_16_rows() -> None:
    doc = {"inputs": [{"name": "x", "shape": [100, 1], "data": list(range(100))}]}
    assert len(extract_rows("v2", doc)) == 16


def test_drift_spec_reference_forms() -> None:
    assert DriftSpec().reference_size == 2000
    spec = DriftSpec(reference="file refs.jsonl")
    assert (spec.reference_size, spec.reference_file) == (None, "refs.jsonl")
    for bad in ("first", "first 10", "last 100", "file"):
        with pytest.raises(ValidationError, match="must be 'first N'"):
            DriftSpec(reference=bad)


def _uniform(rng: random.Random, low: float, n: int) -> list[float]:
    return [rng.uniform(low, low + 1.0) for _ in range(n)]


def test_numeric_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = random.Random(7)
    reference = _uniform(rng, 0.0, 2000)
    same = compare_numeric("x", reference, _uniform(rng, 0.0, 2000), (0, 2000), (0, 2000))
    moved = compare_numeric("x", reference, _uniform(rng, 0.5, 2000), (0, 2000), (0, 2000))
    assert same.psi is not None and same.psi < 0.1
    assert moved.psi is not None and moved.psi > 0.25
    assert len(moved.bins) == 10 and moved.bins[0].startswith("<= ")
    assert sum(moved.reference) == pytest.approx(1.0) and sum(moved.live) == pytest.approx(1.0)


def test_too_few_live_values_give_no_psi_but_missing_shares() -> None:
    report = compare_numeric("x", [1.0, 2.0, 3.0], [1.0] * (MIN_LIVE - 1), (0, 30), (3, 79))
    assert report.psi is None
    assert (report.missing_reference, report.missing_live) == (0.0, pytest.approx(30 / 79, 1e-3))


def test_categorical_psi_over_the_reference_values_and_other() -> None:
    reference = {"red": 500, "blue": 500}
    same = compare_categorical("c", reference, {"red": 480, "blue": 520}, (0, 0), (1000, 1000))
    new = compare_categorical("c", reference, {"red": 300, "green": 700}, (0, 0), (1000, 1000))
    assert same.psi is not None and same.psi < 0.01
    assert new.psi is not None and new.psi > 1.0
    assert new.bins == ("blue", "red", OTHER) and new.live[2] == pytest.approx(0.7)
