"""Shadow answer comparison: V2, V1, plain JSON, statuses, NaN, label flips."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pytest

from strategies.compare import Comparator, Comparison
from strategies.payloads import parse_json
from strategies.shadow.strategy import CompareSpec

V2_PATH = "/v2/models/fraud/infer"
V1_PATH = "/v1/models/fraud:predict"


def v2(*outputs: dict[str, Any], **extra: Any) -> bytes:
    """A V2 response body."""
    return json.dumps({"model_name": "fraud", "outputs": list(outputs), **extra}).encode()


def tensor(
    name: str, data: list[Any], shape: list[int] | None = None, dtype: str = "FP32"
) -> dict[str, Any]:
    """A V2 output tensor."""
    return {"name": name, "datatype": dtype, "shape": shape or [len(data)], "data": data}


def body(doc: Any) -> bytes:
    """A JSON body; NaN/Infinity written as the tokens TF-Serving allows."""
    return json.dumps(doc).encode()


@dataclass(frozen=True)
class Case:
    """One comparison and what it should find."""

    primary: bytes
    shadow: bytes
    outcome: str
    protocol: str
    path: str = V2_PATH
    first: str | None = None  # a substring of first_difference
    label_flip: bool | str | None = "any"
    spec: CompareSpec = field(default_factory=CompareSpec)
    primary_status: int = 200
    shadow_status: int = 200


PROBS = tensor("probabilities", [0.1, 0.7, 0.2, 0.6, 0.3, 0.1], shape=[2, 3])

CASES = {
    "v2 equal within tolerance": Case(
        v2(tensor("score", [0.5, 1.0])), v2(tensor("score", [0.5000001, 1.0004])), "match", "v2",
    ),
    "v2 beyond tolerance": Case(
        v2(tensor("score", [0.5, 1.0])), v2(tensor("score", [0.5, 1.01])), "mismatch", "v2",
        first="outputs[name=score].data[1]: primary=1.0 shadow=1.01",
    ),
    "v2 nested data equals flat": Case(
        v2(tensor("p", [[0.1, 0.9], [0.8, 0.2]], shape=[2, 2])),
        v2(tensor("p", [0.1, 0.9, 0.8, 0.2], shape=[2, 2])), "match", "v2", label_flip=False,
    ),
    "v2 shape mismatch": Case(
        v2(tensor("score", [1.0, 2.0], shape=[1, 2])), v2(tensor("score", [1.0, 2.0], shape=[2])),
        "mismatch", "v2", first="outputs[name=score].shape",
    ),
    "v2 datatype mismatch": Case(
        v2(tensor("score", [1.0])), v2(tensor("score", [1.0], dtype="FP64")),
        "mismatch", "v2", first="outputs[name=score].datatype",
    ),
    "v2 missing output": Case(
        v2(tensor("a", [1.0]), tensor("b", [2.0])), v2(tensor("a", [1.0])),
        "mismatch", "v2", first="outputs[name=b]: missing",
    ),
    "v2 extra output": Case(
        v2(tensor("a", [1.0])), v2(tensor("a", [1.0]), tensor("b", [2.0])),
        "mismatch", "v2", first="outputs[name=b]: extra",
    ),
    "v2 outputs matched by name not order": Case(
        v2(tensor("a", [1.0]), tensor("b", [2.0])), v2(tensor("b", [2.0]), tensor("a", [1.0])),
        "match", "v2",
    ),
    "v2 NaN equals NaN": Case(
        body({"outputs": [tensor("s", [float("nan"), 1.0])]}),
        body({"outputs": [tensor("s", [float("nan"), 1.0])], "id": "x"}), "match", "v2",
    ),
    "v2 NaN vs number": Case(
        body({"outputs": [tensor("s", [float("nan")])]}), body({"outputs": [tensor("s", [1.0])]}),
        "mismatch", "v2", first="outputs[name=s].data[0]: primary=nan shadow=1.0",
    ),
    "v2 infinity vs number": Case(
        body({"outputs": [tensor("s", [float("inf")])]}), body({"outputs": [tensor("s", [1e300])]}),
        "mismatch", "v2", first="data[0]",
    ),
    "v2 ignored fields id model_version parameters": Case(
        v2(tensor("s", [1.0]), id="1", model_version="3", parameters={"a": 1}),
        v2(tensor("s", [1.0]), id="2", model_version="4", parameters={"a": 2}), "match", "v2",
    ),
    "v2 class label flip": Case(
        v2(tensor("label", [1, 0, 2], dtype="INT64")),
        v2(tensor("label", [1, 1, 2], dtype="INT64")),
        "mismatch", "v2", first="outputs[name=label].data[1]: primary=0 shadow=1", label_flip=True,
    ),
    "v2 bytes labels equal": Case(
        v2(tensor("label", ["cat"], dtype="BYTES"), id="a"),
        v2(tensor("label", ["cat"], dtype="BYTES"), id="b"), "match", "v2", label_flip=False,
    ),
    "v2 argmax flip of probabilities": Case(
        v2(PROBS), v2(tensor("probabilities", [0.1, 0.2, 0.7, 0.6, 0.3, 0.1], shape=[2, 3])),
        "mismatch", "v2", first="outputs[name=probabilities].data[1]", label_flip=True,
    ),
    "v2 probabilities moved, argmax kept": Case(
        v2(PROBS), v2(tensor("probabilities", [0.1, 0.6, 0.3, 0.6, 0.3, 0.1], shape=[2, 3])),
        "mismatch", "v2", label_flip=False,
    ),
    "v2 regression has no label": Case(
        v2(tensor("score", [0.5, 1.5])), v2(tensor("score", [0.5, 1.5]), id="z"),
        "match", "v2", label_flip=None,
    ),
    "v2 shadow answer without outputs": Case(
        v2(tensor("score", [0.5])), body({"error": "boom"}), "mismatch", "v2", first="outputs",
    ),
    "v1 predictions list within tolerance": Case(
        body({"predictions": [[0.2, 0.8], [0.9, 0.1]]}),
        body({"predictions": [[0.2000001, 0.8], [0.9, 0.1]]}), "match", "v1", path=V1_PATH,
        label_flip=False,
    ),
    "v1 predictions argmax flip": Case(
        body({"predictions": [[0.2, 0.8]]}), body({"predictions": [[0.8, 0.2]]}),
        "mismatch", "v1", path=V1_PATH, first="predictions[0][0]", label_flip=True,
    ),
    "v1 predictions dicts by key": Case(
        body({"predictions": [{"label": "fraud", "score": 0.91}]}),
        body({"predictions": [{"score": 0.95, "label": "fraud"}]}),
        "mismatch", "v1", path=V1_PATH, first="predictions[0].score: primary=0.91 shadow=0.95",
        label_flip=False,
    ),
    "v1 string label flip": Case(
        body({"predictions": ["ok", "fraud"]}), body({"predictions": ["ok", "ok"]}),
        "mismatch", "v1", path=V1_PATH, first="predictions[1]", label_flip=True,
    ),
    "v1 ints exact": Case(
        body({"predictions": [1000]}), body({"predictions": [1001]}),
        "mismatch", "v1", path=V1_PATH, label_flip=True,
    ),
    "v1 nan token via fallback": Case(
        b'{"predictions": [NaN, 1.5, Infinity]}', b'{"predictions": [NaN, 1.5, Infinity], "id": 2}',
        "match", "v1", path=V1_PATH,
    ),
    "json recursive ignore at depth": Case(
        body({"result": {"score": 0.3, "meta": {"id": 1, "model_version": "a"}}}),
        body({"result": {"score": 0.3, "meta": {"id": 2, "model_version": "b"}}}),
        "match", "json", path="/predict",
    ),
    "json nested difference path": Case(
        body({"result": {"items": [{"s": 1}, {"s": 2}]}}),
        body({"result": {"items": [{"s": 1}, {"s": 3}]}}),
        "mismatch", "json", path="/predict", first="result.items[1].s: primary=2 shadow=3",
    ),
    "json missing key": Case(
        body({"a": 1, "b": 2}), body({"a": 1}), "mismatch", "json", path="/x", first="b: missing",
    ),
    "json list length": Case(
        body([1, 2]), body([1, 2, 3]), "mismatch", "json", path="/x", first="$: length",
    ),
    "json bool is not int": Case(
        body({"a": True}), body({"a": 1}), "mismatch", "json", path="/x", first="a:",
    ),
    "json custom ignore": Case(
        body({"ts": 1, "v": 2}), body({"ts": 9, "v": 2}), "match", "json", path="/x",
        spec=CompareSpec(ignore=("ts",)),
    ),
    "auto detects v2 by shape": Case(
        v2(tensor("s", [1.0])), v2(tensor("s", [1.0]), id="2"), "match", "v2", path="/predict",
    ),
    "auto detects v1 by shape": Case(
        body({"predictions": [1]}), body({"predictions": [1], "id": 2}), "match", "v1", path="/p",
    ),
    "auto detects v1 by path with query": Case(
        body({"predictions": [1]}), body({"predictions": [1], "id": 2}), "match", "v1",
        path="/v1/models/m/versions/2:predict?x=1",
    ),
    "v2 path but json body falls back": Case(
        body({"ok": 1}), body({"ok": 1, "id": 3}), "match", "json",
    ),
    "explicit json mode on a v2 body": Case(
        v2(tensor("s", [1.0])), v2(tensor("s", [1.0])).replace(b"fraud", b"fraud-v4"),
        "mismatch", "json", first="model_name", spec=CompareSpec(mode="json"),
    ),
    "identical non-json bodies": Case(b"\x00binary", b"\x00binary", "match", "v2"),
    "mode none counts statuses only": Case(
        body({"a": 1}), body({"a": 2}), "match", "none", spec=CompareSpec(mode="none"),
    ),
    "mode none different status": Case(
        body({"a": 1}), body({"a": 1}), "mismatch", "none", spec=CompareSpec(mode="none"),
        shadow_status=404, first="status",
    ),
    "shadow 500 is an error": Case(
        body({"a": 1}), body({"error": "x"}), "error", "v2", shadow_status=500,
    ),
    "different status is a mismatch": Case(
        body({"a": 1}), body({"error": "x"}), "mismatch", "v2", shadow_status=422,
        first="status: primary=200 shadow=422",
    ),
    "both 400 match": Case(
        body({"error": "a"}), body({"error": "b"}), "match", "v2",
        primary_status=400, shadow_status=400,
    ),
    "unparsable shadow is an error": Case(body({"a": 1}), b"<html>oops", "error", "v2"),
    "unparsable primary is an error": Case(b"<html>", body({"a": 1}), "error", "v2"),
    "huge int does not escape": Case(
        body({"a": 10**400}), body({"a": 1.5}), "error", "json", path="/x",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_compare(case: Case) -> None:
    result = Comparator(case.spec).compare(
        case.primary,
        case.shadow,
        path=case.path,
        primary_status=case.primary_status,
        shadow_status=case.shadow_status,
    )
    assert isinstance(result, Comparison)
    assert (result.outcome, result.protocol) == (case.outcome, case.protocol), result
    if case.first is not None:
        assert result.first_difference is not None and case.first in result.first_difference
    if case.outcome == "match":
        assert result.first_difference is None
    if case.label_flip != "any":
        assert result.label_flip is case.label_flip, result


MAX_DIFF = {
    "identical": (v2(tensor("s", [1.0])), v2(tensor("s", [1.0])), 0.0),
    "equal after parse": (v2(tensor("s", [1.0]), id="a"), v2(tensor("s", [1.0]), id="b"), 0.0),
    "largest gap": (v2(tensor("s", [1.0, 2.0])), v2(tensor("s", [1.5, 4.0])), 2.0),
    "labels only": (
        v2(tensor("l", ["a"], dtype="BYTES")), v2(tensor("l", ["b"], dtype="BYTES")), None
    ),
}


@pytest.mark.parametrize(("primary", "shadow", "expected"), MAX_DIFF.values(), ids=MAX_DIFF.keys())
def test_max_abs_diff(primary: bytes, shadow: bytes, expected: float | None) -> None:
    result = Comparator(CompareSpec()).compare(primary, shadow, path=V2_PATH)
    assert result.max_abs_diff == (None if expected is None else pytest.approx(expected))


PARSE = {
    "plain": (b'{"a": [1, 2.5]}', {"a": [1, 2.5]}),
    "nan fallback": (b'{"a": NaN}', None),
    "infinity fallback": (b'[Infinity, -Infinity]', [math.inf, -math.inf]),
}


@pytest.mark.parametrize(("raw", "expected"), PARSE.values(), ids=PARSE.keys())
def test_parse_json(raw: bytes, expected: Any) -> None:
    parsed = parse_json(raw)
    if expected is None:
        assert math.isnan(parsed["a"])
    else:
        assert parsed == expected


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"\xff\xfe", b"nope"], ids=["empty", "cut", "bytes", "word"]
)
def test_parse_json_rejects(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_json(raw)


def test_comparison_is_frozen() -> None:
    result = Comparison("match", "json")
    with pytest.raises(AttributeError):
        result.outcome = "error"  # type: ignore[misc]
