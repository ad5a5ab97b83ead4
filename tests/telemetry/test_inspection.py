"""BodyInspector: input and output health counters for V2, V1 and plain JSON bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from router.telemetry.inspection import BodyInspector, _clean_and_well_shaped
from router.telemetry.metrics import Metrics
from strategies.payloads import count_missing_inputs, parse_body, path_protocol

V2 = "/v2/models/iris/infer"
V1 = "/v1/models/iris:predict"
FLAT = "/predict"


def dumps(doc: Any) -> bytes:
    """JSON with the NaN token the stdlib writes (as TF-Serving does)."""
    return json.dumps(doc).encode()


def sample(metrics: Metrics, name: str, variant: str = "stable", **labels: str) -> float:
    """A sample of route ``r``; 0.0 when the series does not exist."""
    value = metrics.registry.get_sample_value(name, {"route": "r", "variant": variant, **labels})
    return value or 0.0


def v2_input(data: Any, shape: list[int] | None = None) -> bytes:
    tensor = {"name": "x", "datatype": "FP32", "shape": shape or [1, 4], "data": data}
    return dumps({"inputs": [tensor]})


def v2_output(*tensors: tuple[str, str, Any]) -> bytes:
    return dumps({"outputs": [{"name": n, "datatype": t, "data": d} for n, t, d in tensors]})


@dataclass(frozen=True)
class Case:
    """One request/response pair and the counters it must move."""

    path: str
    request: bytes | None
    response: bytes | None = None
    status: int = 200
    missing: float = 0.0
    invalid: float = 0.0
    nulls: float = 0.0
    labels: dict[str, float] = field(default_factory=dict)
    values: float = 0.0  # number of router_prediction_value observations


CASES = {
    "v2-clean": Case(V2, v2_input([5.1, 3.5, 1.4, 0.2])),
    "v2-flat-null": Case(V2, v2_input([5.1, None, 1.4, None]), missing=2),
    "v2-nested-nan": Case(V2, v2_input([[5.1, float("nan")], [None, 1.0]], [2, 2]), missing=2),
    "v2-not-v2-body": Case(V2, dumps({"instances": [[1, 2]]}), invalid=1),
    "v2-empty-inputs": Case(V2, dumps({"inputs": []}), invalid=1),
    "v2-input-without-data": Case(V2, dumps({"inputs": [{"name": "x"}]}), invalid=1),
    "v2-null-parameters-ignored": Case(
        V2, dumps({"inputs": [{"name": "x", "data": [1.0]}], "parameters": None})
    ),
    "v1-instances": Case(V1, dumps({"instances": [[1.0, None], [float("nan"), 2.0]]}), missing=2),
    "v1-named-instances": Case(V1, dumps({"instances": [{"a": None, "b": [1, None]}]}), missing=2),
    "v1-columnar-inputs": Case(V1, dumps({"inputs": {"a": [1, None, 3]}}), missing=1),
    "v1-no-payload": Case(V1, dumps({"rows": [[1, 2]]}), invalid=1),
    "v1-list-body": Case(V1, dumps([[1, 2]]), invalid=1),
    "flat-object": Case(FLAT, dumps({"age": None, "income": float("nan"), "zip": "x"}), missing=2),
    "flat-list": Case(FLAT, dumps([{"a": 1, "b": None}, {"a": None, "b": 2}]), missing=2),
    "flat-sniffed-v2": Case(FLAT, v2_input([None, 1.0, 2.0, 3.0]), missing=1),
    "flat-scalar": Case(FLAT, b"42", invalid=1),
    "not-json": Case(FLAT, b"\x00\xffnot json", invalid=1),
    "truncated-json": Case(V2, b'{"inputs": [{"data": [1,', invalid=1),
    "empty-body": Case(FLAT, b""),
    "over-cap": Case(FLAT, None),
    "v2-labels": Case(
        V2, None, v2_output(("predict", "INT64", [0, 1, 1]), ("predict_proba", "FP32", [[1, 0]])),
        labels={"0": 1, "1": 2},
    ),
    "v2-bytes-labels": Case(V2, None, v2_output(("out", "BYTES", ["cat", "dog", "cat"])),
                            labels={"cat": 2, "dog": 1}),
    "v2-bool-labels": Case(V2, None, v2_output(("fraud", "BOOL", [True, False])),
                           labels={"true": 1, "false": 1}),
    "v2-proba-argmax": Case(
        V2, None, v2_output(("predict_proba", "FP32", [[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])),
        labels={"1": 2, "0": 1},
    ),
    "v2-regression": Case(V2, None, v2_output(("predict", "FP64", [1.5, 2.5, 3.5])), values=3),
    "v2-regression-2d-first-column": Case(
        V2, None, v2_output(("y", "FP32", [[10.0, 20.0], [30.0, 40.0]])), values=2
    ),
    "v2-null-prediction": Case(V2, None, v2_output(("predict", "INT64", [0, None])),
                               nulls=1, labels={"0": 1}),
    "v2-nan-prediction": Case(V2, None, v2_output(("y", "FP32", [float("nan"), 1.0])),
                              nulls=1, values=1),
    "v2-empty-output": Case(V2, None, v2_output(("predict", "INT64", [])), nulls=1),
    "v2-no-outputs": Case(V2, None, dumps({"model_name": "iris"}), nulls=1),
    "v2-no-datatype-named-label": Case(V2, None, dumps({"outputs": [{"name": "label",
                                                                      "data": [2, 2]}]}),
                                       labels={"2": 2}),
    "v1-int-labels": Case(V1, None, dumps({"predictions": [1, 0, 1]}), labels={"1": 2, "0": 1}),
    "v1-string-labels": Case(V1, None, dumps({"predictions": ["spam"]}), labels={"spam": 1}),
    "v1-float-values": Case(V1, None, dumps({"predictions": [0.5, 1.5]}), values=2),
    "v1-proba-rows": Case(V1, None, dumps({"predictions": [[0.2, 0.8], [0.6, 0.4]]}),
                          labels={"1": 1, "0": 1}),
    "v1-null-predictions": Case(
        V1, None, dumps({"predictions": [None, float("nan"), [], [0.1, None], 1.0]}),
        nulls=4, values=1,
    ),
    "v1-empty-predictions": Case(V1, None, dumps({"predictions": []}), nulls=1),
    "v1-dict-rows": Case(V1, None, dumps({"predictions": [{"label": "a", "score": 0.9}]}),
                         labels={"a": 1}),
    "flat-prediction-key": Case(FLAT, None, dumps({"prediction": 3.0}), values=1),
    "flat-null-prediction": Case(FLAT, None, dumps({"prediction": None}), nulls=1),
    "flat-unknown-answer": Case(FLAT, None, dumps({"backend": "echo", "body_length": 3})),
    "error-status-skipped": Case(V2, None, dumps({"predictions": [None]}), status=500),
    "non-json-answer-skipped": Case(V2, None, b"<html>oops</html>"),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_counters(case: Case) -> None:
    metrics = Metrics()
    inspector = BodyInspector(metrics)
    size = len(case.request) if case.request is not None else 100_000
    inspector.observe("r", "stable", case.path, case.request, size, case.status, case.response)
    assert sample(metrics, "router_input_missing_values_total") == case.missing
    assert sample(metrics, "router_input_invalid_total") == case.invalid
    assert sample(metrics, "router_output_null_total") == case.nulls
    for label, count in case.labels.items():
        assert sample(metrics, "router_predictions_total", label=label) == count, label
    assert sample(metrics, "router_prediction_value_count") == case.values
    assert sample(metrics, "router_request_body_bytes_count") == 1
    assert sample(metrics, "router_request_body_bytes_sum") == size
    health = inspector.route_health("r")["stable"]
    assert health["missing_values"] == case.missing
    assert health["invalid_inputs"] == case.invalid
    assert health["null_outputs"] == case.nulls
    assert health["labels"] == case.labels
    assert health["values"]["count"] == case.values


def test_label_cap_per_route_sends_the_rest_to_other() -> None:
    metrics = Metrics()
    inspector = BodyInspector(metrics)
    for n in range(30):
        variant = "stable" if n % 2 else "candidate"
        answer = dumps({"predictions": [f"label-{n}", f"label-{n}"]})
        inspector.observe("r", variant, V1, None, 0, 200, answer)
    labels = {
        s.labels["label"]
        for m in metrics.registry.collect()
        if m.name == "router_predictions"
        for s in m.samples
        if s.name == "router_predictions_total"
    }
    assert len(labels) == 21
    assert "other" in labels
    others = sample(metrics, "router_predictions_total", "stable", label="other") + sample(
        metrics, "router_predictions_total", "candidate", label="other"
    )
    assert others == 20  # ten labels past the cap, twice each
    health = inspector.route_health("r")
    assert len({label for h in health.values() for label in h["labels"]}) == 21
    assert health["stable"]["labels"]["other"] == 10


def test_label_cap_is_per_route_and_known_labels_keep_counting() -> None:
    metrics = Metrics()
    inspector = BodyInspector(metrics, max_labels=2)
    inspector.observe("r", "stable", V1, None, 0, 200, dumps({"predictions": ["a", "b", "c"]}))
    inspector.observe("r", "stable", V1, None, 0, 200, dumps({"predictions": ["a", "d"]}))
    inspector.observe("q", "stable", V1, None, 0, 200, dumps({"predictions": ["c"]}))
    assert inspector.route_health("r")["stable"]["labels"] == {"a": 2, "b": 1, "other": 2}
    assert inspector.route_health("q")["stable"]["labels"] == {"c": 1}


def test_regression_summary_and_histogram() -> None:
    metrics = Metrics()
    inspector = BodyInspector(metrics)
    for values in ([1.0, 3.0], [8.0]):
        inspector.observe("r", "stable", V1, None, 0, 200, dumps({"predictions": values}))
    assert sample(metrics, "router_prediction_value_sum") == 12.0
    assert inspector.route_health("r")["stable"]["values"] == {"count": 3, "mean": 4.0}


def test_inspected_totals_and_forget() -> None:
    metrics = Metrics()
    inspector = BodyInspector(metrics)
    inspector.observe("r", "stable", V2, v2_input([1.0, None, 2.0, 3.0]), 60, 200, None)
    inspector.observe("r", "candidate", V2, b"nope", 4, 200, None)
    inspector.observe("r", "candidate", V2, None, 0, 200, None)  # a GET: sized, not inspected
    health = inspector.route_health("r")
    assert health["stable"]["inspected"] == 1 and health["stable"]["missing_values"] == 1
    assert health["candidate"]["inspected"] == 1 and health["candidate"]["invalid_inputs"] == 1
    assert sample(metrics, "router_request_body_bytes_count", "candidate") == 2
    inspector.forget("r")
    assert inspector.route_health("r") == {}
    assert sample(metrics, "router_input_missing_values_total") == 1  # counters stay


ODD_BODIES = {
    "deep-nesting": b"[" * 5000 + b"]" * 5000,
    "deep-nesting-nan": b"[" * 5000 + b"NaN" + b"]" * 5000,
    "outputs-scalar-data": b'{"outputs": [{"name": "y", "datatype": "FP32", "data": 5}]}',
    "outputs-not-dicts": b'{"outputs": [1, 2]}',
    "outputs-bad-shape": b'{"outputs": [{"datatype": "FP32", "shape": ["a", 0], "data": [1.0]}]}',
    "outputs-zero-width": b'{"outputs": [{"datatype": "FP32", "shape": [2, 0], "data": [1.0]}]}',
    "outputs-nested-labels": b'{"outputs": [{"datatype": "INT64", "data": [[1], [2]]}]}',
    "outputs-3d": b'{"outputs": [{"datatype": "FP32", "data": [[[1.0]]]}]}',
    "predictions-dict": b'{"predictions": {"a": 1}}',
    "predictions-mixed": b'{"predictions": [true, {"x": 1}, [[1]], "", 1e400, -Infinity]}',
    "infinity-inputs": b'{"inputs": [{"data": [Infinity, -Infinity]}]}',
    "outputs-empty-rows-no-datatype": b'{"outputs": [{"name": "y", "data": [[]]}]}',
    "alternating-nesting": b'{"predictions": [' + b'{"label": [' * 400 + b"1" + b"]}" * 400 + b"]}",
    "utf8-garbage": b'{"predictions": ["\xff"]}',
    "unicode-labels": '{"predictions": ["\u00e9t\u00e9", "' .encode() + b"x" * 500 + b'"]}',
}


@pytest.mark.parametrize("body", list(ODD_BODIES.values()), ids=list(ODD_BODIES))
def test_odd_bodies_never_raise(body: bytes) -> None:
    metrics = Metrics()
    inspector = BodyInspector(metrics)
    for path in (V2, V1, FLAT):
        inspector.observe("r", "stable", path, body, len(body), 200, body)
    for labels in inspector.route_health("r")["stable"]["labels"]:
        assert len(labels) <= 64


def test_big_batches_are_bounded() -> None:
    metrics = Metrics()
    inspector = BodyInspector(metrics)
    answer = dumps({"predictions": [0.5] * 5000})
    inspector.observe("r", "stable", V1, None, 0, 200, answer)
    labels = dumps({"outputs": [{"name": "p", "datatype": "INT64", "data": [1] * 5000}]})
    inspector.observe("r", "stable", V2, None, 0, 200, labels)
    assert sample(metrics, "router_prediction_value_count") == 16
    assert sample(metrics, "router_predictions_total", label="1") == 256


def _padded(body: bytes) -> list[bytes]:
    """``body`` as sent, and framed in JSON whitespace on either side."""
    return [body, b" \r\n" + body, body + b"\n", b"\t" + body + b" "]


SHAPE_PROBES = [
    *(c.request for c in CASES.values() if c.request),
    *ODD_BODIES.values(),
    v2_input([0.5, 1.5], [1, 2]).replace(b'"x"', b'"label"'),  # an "l", and no null
    dumps({"inputs": [{"name": "NIR", "data": [1.0]}]}),  # an "N", and no NaN
    b'{"inputs": [{"data": [nul]}]}',
    b'{"inputs": [{"data": [1.0]}]',
    b'"inputs" "data"',
]


@pytest.mark.parametrize("path", [V2, V1, FLAT])
def test_pre_check_only_spares_parses_that_find_nothing(path: str) -> None:
    protocol = path_protocol(path)
    spared = 0
    for probe in SHAPE_PROBES:
        for body in _padded(probe):
            if not _clean_and_well_shaped(protocol, body):
                continue
            spared += 1
            parsed = parse_body(body)
            if parsed is not None:  # the pre-check does not validate JSON syntax
                assert count_missing_inputs(protocol, parsed[0], True) == 0, body
    assert spared >= 4  # clean bodies, whitespace-framed or not, take the cheap path


def test_pre_check_takes_clean_v2_inputs_with_letters_of_the_tokens() -> None:
    for body in SHAPE_PROBES[-5:-3]:
        assert all(_clean_and_well_shaped("v2", b) for b in _padded(body))


def test_each_path_keeps_its_own_protocol_past_the_remembered_ones() -> None:
    metrics = Metrics()
    inspector = BodyInspector(metrics)
    v1_body = dumps({"instances": [[1.0, None]]})  # a V1 body: invalid on a V2 path
    for n in range(1100):  # more paths than the inspector remembers
        inspector.observe("r", "stable", f"/v1/models/m{n}:predict", v1_body, 1, 200, None)
        inspector.observe("r", "stable", V2, v2_input([None, 1.0, 2.0, 3.0]), 1, 200, None)
    assert sample(metrics, "router_input_invalid_total") == 0
    assert sample(metrics, "router_input_missing_values_total") == 2200
