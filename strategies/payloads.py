"""Reading model payloads: the inputs of a request and the predictions of an answer.

The one place the router reads the shapes models speak; pure. Shadow comparison
(``strategies.compare``) and input drift (``strategies.drift``) use its parsing,
tensor flattening, argmax and protocol tests; input/output health
(``router.telemetry.inspection``) turns its readings into metrics.

Inputs, by the protocol the path names (``path_protocol``), else sniffed from
the body: Open Inference Protocol V2 (``/v2/models/M/infer``: ``inputs[].data``,
flat or nested), V1 (``/v1/models/M:predict``: ``instances`` or ``inputs``),
any other JSON object or list. ``count_missing_inputs`` counts null and NaN
values; ``None`` means the body is not the protocol its path names.

Predictions (``read_predictions``): null, NaN and empty ones are counted, and
the others read as classification labels or regression values:

- V2: the first output whose datatype is a label type (``INT*``, ``UINT*``,
  ``BOOL``, ``BYTES``) gives labels. Failing that, an ``FP*`` output whose rows
  look like probability distributions (2-D, values in [0, 1] summing to 1)
  gives the argmax column index as label, so a model that only answers
  ``predict_proba`` still shows its class distribution. Otherwise the first
  ``FP*`` output is regression: its first column is observed. Names decide only
  when the datatype is missing (``label``/``class`` in the name means labels);
  MLServer names regression outputs ``predict`` too, so names never override a
  datatype.
- V1 (``predictions``) and plain JSON (a list, or a ``prediction(s)``/``label``/
  ``class``/``output(s)``/``result`` key): ints, strings and bools are labels,
  floats are values, probability rows give their argmax.

Bounded work: values are walked only when asked (the caller knows the body
holds ``null`` or came through the stdlib parser, the only ways to get a null
or NaN), and of a batch at most 256 predictions become labels and 16 values.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson

__all__ = [
    "Predictions",
    "argmax",
    "count_missing_inputs",
    "flatten",
    "is_v1_answer",
    "is_v2_answer",
    "parse_body",
    "parse_json",
    "path_protocol",
    "read_predictions",
    "v2_inputs",
]

_LABEL_TYPES = frozenset(
    ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "BOOL", "BYTES")
)
_FLOAT_TYPES = frozenset(("FP16", "FP32", "FP64", "BF16"))
_FLAT_KEYS = (
    "predictions", "prediction", "labels", "label", "class", "outputs", "output", "result",
)
_ROW_KEYS = ("label", "class", "predicted_label", "prediction", "classes", "labels")
_MAX_ROWS = 256
_MAX_VALUES = 16
_MAX_LABEL_CHARS = 64
_PROBE_ROWS = 8


def parse_json(body: bytes) -> Any:
    """Parse JSON with orjson, else the stdlib (NaN, Infinity); ValueError if not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def parse_body(body: bytes) -> tuple[Any, bool] | None:
    """``(document, exotic)``, exotic when the stdlib parsed it (NaN possible); None if not JSON."""
    try:
        return orjson.loads(body), False
    except orjson.JSONDecodeError:
        if b"NaN" not in body and b"Infinity" not in body:
            return None
    try:
        return json.loads(body), True
    except (ValueError, RecursionError):
        return None


def _missing(value: Any) -> int:
    """Null and NaN leaves anywhere in ``value``."""
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if item is None or (kind is float and item != item):
            count += 1
        elif kind is list:
            stack.extend(item)
        elif kind is dict:
            stack.extend(item.values())
    return count


def flatten(data: Any) -> list[Any]:
    """Row-major flat list of a tensor's ``data`` (nested or flat alike)."""
    if type(data) is not list:
        return [data]
    if not data or type(data[0]) is not list:  # tensors nest uniformly
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if type(value) is list:
                stack.append(iter(value))
                break
            flat.append(value)
        else:
            stack.pop()
    return flat


def _rows(data: Any, shape: Any) -> list[list[Any]] | None:
    """A 2-D tensor as rows (nested data, or flat data with a ``[n, k]`` shape)."""
    if type(data) is list and data and type(data[0]) is list:
        return data
    if type(data) is list and type(shape) is list and len(shape) == 2 and type(shape[1]) is int:
        width = shape[1]
        if width > 1 and len(data) % width == 0:
            return [data[i : i + width] for i in range(0, min(len(data), width * _MAX_ROWS), width)]
    return None


def _is_distribution(row: Any) -> bool:
    if type(row) is not list or len(row) < 2:
        return False
    total = 0.0
    for v in row:
        if type(v) not in (float, int) or not 0.0 <= v <= 1.0:
            return False
        total += v
    return abs(total - 1.0) <= 0.01


def argmax(row: list[Any]) -> int:
    """Index of the largest value, NaN skipped; -1 when all are NaN."""
    index, best = -1, 0.0
    for i, value in enumerate(row):
        if value == value and (index < 0 or value > best):
            index, best = i, value
    return index


def is_v2_answer(doc: Any) -> bool:
    """Whether ``doc`` is an Open Inference Protocol V2 answer (``outputs`` of tensors)."""
    outputs = doc.get("outputs") if type(doc) is dict else None
    return type(outputs) is list and all(type(o) is dict and "data" in o for o in outputs)


def is_v1_answer(doc: Any) -> bool:
    """Whether ``doc`` is a V1 (TF-Serving style) answer: an object with ``predictions``."""
    return type(doc) is dict and "predictions" in doc


def _leaf(value: Any, depth: int = 0) -> tuple[str | None, float | None]:
    """A prediction as ``(label, None)``, ``(None, value)`` or ``(None, None)`` if neither."""
    kind = type(value)
    if kind is bool:
        return ("true" if value else "false"), None
    if kind is int or kind is str:
        return str(value)[:_MAX_LABEL_CHARS], None
    if kind is float:
        return None, value
    if depth > 2:
        return None, None
    if kind is list and value:
        if _is_distribution(value):
            return str(argmax(value)), None
        return _leaf(value[0], depth + 1)
    if kind is dict:
        for key in _ROW_KEYS:
            if key in value:
                return _leaf(value[key], depth + 1)
    return None, None


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


class Predictions:
    """What one response said: null count, labels, values."""

    __slots__ = ("labels", "nulls", "values")

    def __init__(self) -> None:
        self.nulls = 0
        self.labels: list[str] = []
        self.values: list[float] = []

    def first(self) -> str | float | None:
        """The first prediction: a label, else a value; None when there is neither."""
        if self.labels:
            return self.labels[0]
        return self.values[0] if self.values else None

    def leaves(self, items: Sequence[Any], walk: bool) -> None:
        """V1-style predictions: one per item."""
        if not items:
            self.nulls += 1
            return
        for item in items:
            if _is_empty(item) or (type(item) is float and item != item):
                self.nulls += 1
                continue
            if walk and type(item) in (list, dict) and _missing(item):
                self.nulls += 1
                continue
            if len(self.labels) < _MAX_ROWS and len(self.values) < _MAX_VALUES:
                label, number = _leaf(item)
                if label is not None:
                    self.labels.append(label)
                elif number is not None:
                    self.values.append(number)

    def tensors(self, outputs: list[dict[str, Any]], walk: bool) -> None:
        """V2 outputs: nulls in every tensor; labels or values from the chosen one."""
        labels = numbers = None
        for out in outputs:
            data = out.get("data")
            if not data:
                self.nulls += 1
                continue
            if walk:
                self.nulls += _missing(data)
            if labels is not None:
                continue
            datatype = out.get("datatype")
            if datatype is None:
                flat = flatten(data)
                first = flat[0] if flat else None
                name = str(out.get("name", "")).lower()
                is_label = type(first) in (int, str, bool) or "label" in name or "class" in name
                datatype = "BYTES" if is_label else "FP64"
            if datatype in _LABEL_TYPES:
                labels = out
            elif numbers is None and datatype in _FLOAT_TYPES:
                numbers = out
        if labels is not None:
            self._tensor_labels(flatten(labels["data"]))
        elif numbers is not None:
            self._tensor_numbers(numbers["data"], numbers.get("shape"))

    def _tensor_labels(self, flat: list[Any]) -> None:
        append = self.labels.append
        for value in flat[:_MAX_ROWS]:
            kind = type(value)
            if kind is int:
                append(str(value))
            elif kind is str:
                append(value[:_MAX_LABEL_CHARS])
            elif kind is bool:
                append("true" if value else "false")

    def _tensor_numbers(self, data: Any, shape: Any) -> None:
        rows = _rows(data, shape)
        if rows is not None and all(_is_distribution(r) for r in rows[:_PROBE_ROWS]):
            self.labels.extend(str(argmax(r)) for r in rows[:_MAX_ROWS] if _is_distribution(r))
            return
        for item in (rows if rows is not None else flatten(data))[:_MAX_VALUES]:
            value = item[0] if type(item) is list and item else item
            if type(value) is float and value == value:
                self.values.append(value)
            elif type(value) is int:
                self.values.append(float(value))


def path_protocol(path: str) -> str | None:
    """``v2``/``v1`` when the path names the protocol, else None (sniffed from the body)."""
    if path.endswith("/infer") and "/v2/models/" in path:
        return "v2"
    if path.endswith(":predict") and "/v1/models/" in path:
        return "v1"
    return None


def v2_inputs(doc: Any) -> list[dict[str, Any]] | None:
    """The ``inputs`` of a V2 request, or None when ``doc`` is not one."""
    inputs = doc.get("inputs") if type(doc) is dict else None
    if type(inputs) is not list or not inputs:
        return None
    for tensor in inputs:
        if type(tensor) is not dict or "data" not in tensor:
            return None
    return inputs


def count_missing_inputs(protocol: str | None, doc: Any, walk: bool) -> int | None:
    """Missing values in the model inputs; None when the body is not the protocol."""
    inputs = v2_inputs(doc) if protocol != "v1" else None
    if inputs is not None:
        return sum(_missing(i["data"]) for i in inputs) if walk else 0
    if protocol == "v2":
        return None
    if protocol == "v1" or (protocol is None and type(doc) is dict and "instances" in doc):
        if type(doc) is not dict:
            return None
        payload = doc.get("instances")
        if type(payload) is not list:
            payload = doc.get("inputs") if "instances" not in doc else None
            if type(payload) not in (list, dict):
                return None
        return _missing(payload) if walk else 0
    if type(doc) not in (dict, list):
        return None
    return _missing(doc) if walk else 0


def read_predictions(protocol: str | None, doc: Any, walk: bool) -> Predictions | None:
    """The predictions of a 2xx answer; None when it holds nothing recognisable."""
    result = Predictions()
    if type(doc) is list:
        result.leaves(doc, walk)
        return result
    if type(doc) is not dict:
        return None
    outputs = doc.get("outputs")
    if type(outputs) is list and outputs and type(outputs[0]) is dict:
        # A single output (the usual answer) is checked already: no filtered copy of the list.
        result.tensors(
            outputs if len(outputs) == 1 else [o for o in outputs if type(o) is dict], walk
        )
        return result
    if protocol == "v2":
        result.nulls += 1  # a V2 answer without outputs
        return result
    for key in _FLAT_KEYS:
        if key in doc:
            value = doc[key]
            result.leaves(value if type(value) is list else [value], walk)
            return result
    return None
