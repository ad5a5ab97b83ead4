"""Comparing a shadow's answer with the primary's: OIP V2, V1 and plain JSON.

(Mode ``openai``, LLM answers compared by text, is ``strategies.compare_openai``.)

Pure and exception-free: ``Comparator.compare`` always returns a ``Comparison``.

- Status first: a shadow 5xx is an ``error``; different statuses are a
  ``mismatch``; equal non-2xx statuses are a ``match`` (error bodies are not
  predictions). Mode ``none`` stops there.
- Byte-identical bodies match without parsing (so non-JSON bodies, such as
  Triton's binary tensor extension, are compared too).
- Bodies are parsed with orjson, falling back to the stdlib for the
  ``NaN``/``Infinity`` tokens TF-Serving allows and orjson rejects.
- Numbers follow numpy ``allclose`` with the primary as the reference:
  ``|p - s| <= abs_tolerance + rel_tolerance * |p|``; ``NaN`` equals ``NaN``;
  ints, bools and strings compare exactly.
- ``label_flip`` (classification agreement) is independent of the tolerance:
  labels (integer, BOOL, BYTES outputs; int/str V1 predictions) flip when any
  differs, probability rows when their argmax differs. ``None`` when the
  answer holds nothing label-like.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from strategies.compare_openai import compare_openai
from strategies.comparison import Comparison, Outcome
from strategies.payloads import argmax, flatten, is_v1_answer, is_v2_answer, parse_json

if TYPE_CHECKING:
    from strategies.shadow.strategy import CompareSpec

__all__ = ["Comparator", "Comparison", "Outcome"]


_V2_PATH = re.compile(r"/v2/models/[^/]+(?:/versions/[^/]+)?/infer$")
_V1_PATH = re.compile(r"/v1/models/[^/:]+(?:/versions/[^/:]+)?:predict$")
_INTS = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
_LABEL_TYPES = frozenset((*_INTS, "BOOL", "BYTES"))
_FLOAT_TYPES = frozenset(("FP16", "FP32", "FP64", "BF16"))
_NUMBERS = (int, float)
_LABELS = (int, str, bool)
_REPR_CHARS = 60
_INF = math.inf


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _REPR_CHARS else text[: _REPR_CHARS - 3] + "..."


def _is_row(value: Any) -> bool:
    return (
        type(value) is list
        and len(value) > 1
        and all(type(v) in _NUMBERS for v in value)
    )


def _flip_leaf(p: Any, s: Any) -> bool | None:
    """A V1 prediction's label flip: exact for labels, argmax for probability rows."""
    if type(p) in _LABELS:
        return type(p) is not type(s) or p != s
    if _is_row(p):
        return not _is_row(s) or len(p) != len(s) or argmax(p) != argmax(s)
    return None


def _sniff(body: bytes) -> str:
    if b'"outputs"' in body:
        return "v2"
    return "v1" if b'"predictions"' in body else "json"


def _by_name(outputs: list[Any]) -> dict[str, Any]:
    return {
        str(o.get("name", i)) if type(o) is dict else str(i): o for i, o in enumerate(outputs)
    }


class _Diffs:
    """What a comparison found so far: the first difference, a count, the largest gap."""

    __slots__ = ("count", "first", "flip", "max_abs")

    def __init__(self) -> None:
        self.count = 0
        self.first: str | None = None
        self.max_abs: float | None = None
        self.flip: bool | None = None

    def add(self, path: str, what: str) -> None:
        self.count += 1
        if self.first is None:
            self.first = f"{path or '$'}: {what}"

    def values(self, path: str, p: Any, s: Any) -> None:
        self.add(path, f"primary={_short(p)} shadow={_short(s)}")

    def gap(self, value: float) -> None:
        if self.max_abs is None or value > self.max_abs:
            self.max_abs = value

    def flipped(self, flip: bool | None) -> None:
        if flip is not None:
            self.flip = flip or bool(self.flip)

    def result(self, protocol: str) -> Comparison:
        if not self.count:
            detail = "equal within tolerance"
            return Comparison("match", protocol, None, self.max_abs, self.flip, detail)
        detail = f"{self.count} difference{'s' if self.count > 1 else ''}"
        return Comparison("mismatch", protocol, self.first, self.max_abs, self.flip, detail)


class Comparator:
    """A ``CompareSpec`` compiled once; ``compare`` is called per mirrored answer."""

    __slots__ = ("_abs", "_ignore", "_min_similarity", "_mode", "_rel")

    def __init__(self, spec: CompareSpec) -> None:
        self._mode = spec.mode
        self._abs = float(spec.abs_tolerance)
        self._rel = float(spec.rel_tolerance)
        self._ignore = frozenset(spec.ignore)
        self._min_similarity = float(spec.min_text_similarity)

    def compare(
        self,
        primary_body: bytes,
        shadow_body: bytes,
        *,
        path: str = "",
        primary_status: int = 200,
        shadow_status: int = 200,
    ) -> Comparison:
        """Compare two answers to the same request; never raises."""
        hint = self._hint(path)
        try:
            return self._compare(primary_body, shadow_body, hint, primary_status, shadow_status)
        except Exception as exc:
            detail = f"comparison failed: {type(exc).__name__}: {exc}"
            return Comparison("error", hint or "json", detail=detail)

    def _hint(self, path: str) -> str | None:
        if self._mode != "auto":
            return self._mode
        path = path.partition("?")[0]
        if _V2_PATH.search(path):
            return "v2"
        return "v1" if _V1_PATH.search(path) else None

    def _compare(
        self, primary: bytes, shadow: bytes, hint: str | None, p_status: int, s_status: int
    ) -> Comparison:
        protocol = hint or "json"
        if s_status >= 500:
            return Comparison("error", protocol, detail=f"shadow answered {s_status}")
        if s_status != p_status:
            diff = f"status: primary={p_status} shadow={s_status}"
            return Comparison("mismatch", protocol, diff, detail="statuses differ")
        if self._mode == "none":
            return Comparison("match", "none", detail="statuses equal (mode none)")
        if not 200 <= p_status < 300:
            return Comparison("match", protocol, detail=f"both answered {p_status}")
        if self._mode == "openai":
            return compare_openai(primary, shadow, self._min_similarity)
        if primary == shadow:
            return Comparison("match", hint or _sniff(primary), None, 0.0, None, "identical bodies")
        try:
            s_doc = parse_json(shadow)
        except ValueError as exc:
            return Comparison("error", protocol, detail=f"shadow body is not JSON: {exc}")
        try:
            p_doc = parse_json(primary)
        except ValueError as exc:
            detail = f"primary body is not JSON (shadow's is): {exc}"
            return Comparison("error", protocol, detail=detail)
        protocol = self._protocol(hint, p_doc)
        diffs = _Diffs()
        if protocol == "v2":
            self._v2(p_doc, s_doc, diffs)
        elif protocol == "v1":
            self._v1(p_doc, s_doc, diffs)
        else:
            self._walk(p_doc, s_doc, "", diffs)
        return diffs.result(protocol)

    @staticmethod
    def _protocol(hint: str | None, doc: Any) -> str:
        """The hint (mode or path) if the primary's answer has that shape, else by shape."""
        if hint == "v2" or (hint is None and is_v2_answer(doc)):
            return "v2" if is_v2_answer(doc) else "json"
        if hint == "v1" or (hint is None and is_v1_answer(doc)):
            return "v1" if is_v1_answer(doc) else "json"
        return "json"

    def _v1(self, p_doc: dict[str, Any], s_doc: Any, diffs: _Diffs) -> None:
        p, s = p_doc["predictions"], s_doc.get("predictions") if type(s_doc) is dict else None
        self._walk(p, s, "predictions", diffs)
        if type(p) is list and type(s) is list and len(p) == len(s):
            for a, b in zip(p, s, strict=True):
                if type(a) is dict and type(b) is dict:
                    for key, value in a.items():
                        if key not in self._ignore:
                            diffs.flipped(_flip_leaf(value, b.get(key)))
                else:
                    diffs.flipped(_flip_leaf(a, b))

    def _v2(self, p_doc: dict[str, Any], s_doc: Any, diffs: _Diffs) -> None:
        s_outputs = s_doc.get("outputs") if type(s_doc) is dict else None
        if type(s_outputs) is not list:
            diffs.add("outputs", "missing in shadow answer")
            return
        p_by, s_by = _by_name(p_doc["outputs"]), _by_name(s_outputs)
        for name, p_out in p_by.items():
            where = f"outputs[name={name}]"
            if name not in s_by:
                diffs.add(where, "missing in shadow answer")
            else:
                self._tensor(p_out, s_by[name], where, diffs)
        for name in s_by.keys() - p_by.keys():
            diffs.add(f"outputs[name={name}]", "extra in shadow answer")

    def _tensor(self, p: dict[str, Any], s: Any, where: str, diffs: _Diffs) -> None:
        if type(s) is not dict:
            diffs.values(where, p, s)
            return
        dtype = p.get("datatype")
        if dtype != s.get("datatype"):
            diffs.values(f"{where}.datatype", dtype, s.get("datatype"))
        shape = p.get("shape")
        if shape != s.get("shape"):
            diffs.values(f"{where}.shape", shape, s.get("shape"))
            return
        raw = p.get("data")
        p_data, s_data = flatten(raw), flatten(s.get("data"))
        if len(p_data) != len(s_data):
            diffs.add(f"{where}.data", f"length primary={len(p_data)} shadow={len(s_data)}")
            return
        self._elements(p_data, s_data, f"{where}.data", diffs)
        if dtype in _LABEL_TYPES:
            diffs.flipped(p_data != s_data)
        elif dtype is None or dtype in _FLOAT_TYPES:
            width = shape[-1] if type(shape) is list and len(shape) >= 2 else None
            if width is None and type(raw) is list and raw and type(raw[0]) is list:
                width = len(raw[0])
            if type(width) is int and width > 1 and all(type(v) in _NUMBERS for v in p_data):
                diffs.flipped(any(
                    argmax(p_data[i : i + width]) != argmax(s_data[i : i + width])
                    for i in range(0, len(p_data), width)
                ))

    def _elements(self, p: list[Any], s: list[Any], path: str, diffs: _Diffs) -> None:
        """Equal-length lists; the loop settles equal and close floats inline (the hot case)."""
        abs_tol, rel_tol, worst = self._abs, self._rel, 0.0
        for i, (a, b) in enumerate(zip(p, s, strict=True)):
            ta, tb = type(a), type(b)
            if a == b and ta is tb:
                continue
            if (ta is float and (tb is float or tb is int)) or (ta is int and tb is float):
                gap = abs(a - b)
                # NaN gaps fail both tests; an infinite gap would pass against an infinite tolerance
                if gap <= abs_tol + rel_tol * abs(a) and gap < _INF:
                    if gap > worst:
                        worst = gap
                    continue
            self._walk(a, b, f"{path}[{i}]", diffs)
        if p and type(p[0]) in _NUMBERS:
            diffs.gap(worst)

    def _walk(self, p: Any, s: Any, path: str, diffs: _Diffs) -> None:
        """Recursive JSON comparison; ``ignore`` keys are skipped at any depth."""
        if type(p) is dict and type(s) is dict:
            for key, value in p.items():
                if key in self._ignore:
                    continue
                sub = f"{path}.{key}" if path else key
                if key in s:
                    self._walk(value, s[key], sub, diffs)
                else:
                    diffs.add(sub, "missing in shadow answer")
            for key in s:
                if key not in p and key not in self._ignore:
                    diffs.add(f"{path}.{key}" if path else key, "extra in shadow answer")
        elif type(p) is list and type(s) is list:
            if len(p) != len(s):
                diffs.add(path, f"length primary={len(p)} shadow={len(s)}")
            else:
                self._elements(p, s, path, diffs)
        else:
            self._scalar(p, s, path, diffs)

    def _scalar(self, p: Any, s: Any, path: str, diffs: _Diffs) -> None:
        tp, ts = type(p), type(s)
        if (tp is float or ts is float) and tp in _NUMBERS and ts in _NUMBERS:
            fp, fs = float(p), float(s)
            if fp == fs:
                diffs.gap(0.0)
                return
            if fp != fp or fs != fs:  # NaN: equal only to NaN
                if not (fp != fp and fs != fs):
                    diffs.values(path, p, s)
                return
            gap = abs(fp - fs)
            diffs.gap(gap)
            if math.isinf(gap) or gap > self._abs + self._rel * abs(fp):
                diffs.values(path, p, s)
        elif tp is not ts or p != s:
            diffs.values(path, p, s)
