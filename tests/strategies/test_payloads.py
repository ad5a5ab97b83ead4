"""The one reader of model payloads that shadow comparison, drift and inspection share."""

from __future__ import annotations

import math
from typing import Any

import pytest

from strategies.payloads import (
    argmax,
    flatten,
    is_v1_answer,
    is_v2_answer,
    parse_body,
    parse_json,
    read_predictions,
)

NAN = math.nan


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        pytest.param([0.1, 0.7, 0.2], 1, id="plain"),
        pytest.param([NAN, 0.2, 0.7], 2, id="nan-first-skipped"),
        pytest.param([0.4, NAN, 0.3], 0, id="nan-middle-skipped"),
        pytest.param([NAN, NAN], -1, id="all-nan"),
        pytest.param([0.5, 0.5], 0, id="tie-first-wins"),
    ],
)
def test_argmax_skips_nan(row: list[float], expected: int) -> None:
    """Comparison and inspection read a probability row's class the same way."""
    assert argmax(row) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param([[1, 2], [3, 4]], [1, 2, 3, 4], id="nested"),
        pytest.param([[[1], [2]], [[3], [4]]], [1, 2, 3, 4], id="three-deep"),
        pytest.param([1, 2, 3], [1, 2, 3], id="flat"),
        pytest.param(7, [7], id="scalar"),
        pytest.param([], [], id="empty"),
    ],
)
def test_flatten_is_row_major(data: Any, expected: list[Any]) -> None:
    """A tensor's data, nested or flat, reads as one row-major list."""
    assert flatten(data) == expected


def test_answer_shapes() -> None:
    """V2 answers carry ``outputs`` tensors, V1 answers ``predictions``."""
    assert is_v2_answer({"outputs": [{"name": "p", "data": [1]}]})
    assert not is_v2_answer({"outputs": [{"name": "p"}]})
    assert is_v1_answer({"predictions": [1]})
    assert not is_v1_answer([1])


def test_parsing_accepts_nan_tokens_and_says_so() -> None:
    """orjson first; the stdlib for NaN/Infinity, which model servers do write."""
    assert parse_body(b'{"a": 1}') == ({"a": 1}, False)
    doc, exotic = parse_body(b'{"a": NaN}') or (None, False)
    assert exotic and math.isnan(doc["a"])
    assert parse_body(b"not json") is None
    assert math.isinf(parse_json(b"[Infinity]")[0])
    with pytest.raises(ValueError):
        parse_json(b"{")


def test_a_probability_row_is_read_as_its_class() -> None:
    """V1 probability rows become labels by argmax, the same rule comparison uses."""
    found = read_predictions("v1", {"predictions": [[0.1, 0.9], [0.8, 0.2]]}, walk=False)
    assert found is not None
    assert found.labels == ["1", "0"]
