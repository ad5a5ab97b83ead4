"""Input drift: model inputs read as features, and a live window compared with a reference.

Pure: documents and samples in, rows and reports out. The router keeps the
bounded samples (``router.telemetry.drift``); this module says what a feature is
and what its drift is.

Features (``features: auto``), per row of a request:

- Open Inference Protocol V2: each input tensor by name; a tensor of ``k``
  columns (shape ``[n, k]``) gives ``NAME[0]`` .. ``NAME[k-1]``, one column just
  ``NAME``; ``n`` rows.
- V1: ``instances`` rows (lists give ``instances[j]``, objects their keys) or
  columnar ``inputs`` (one feature per key).
- Any other JSON object (or list of objects): its top-level scalar fields.

Numbers are numeric features; strings and booleans categorical; ``null``,
``NaN`` and a field absent from a row are missing. ``features: [a, b]`` keeps
only those names.

Drift of a feature: the Population Stability Index of the live window against
the reference, over 10 bins cut at the reference's deciles (numeric) or over
the reference's values (categorical), with both histograms and the share of
missing values on each side (``compare_numeric``, ``compare_categorical``).
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from strategies.payloads import flatten  # a tensor's data, row-major
from strategies.psi import bin_counts, decile_edges, label_psi, psi
from strategies.units import Duration

__all__ = [
    "MAX_FEATURES",
    "MIN_LIVE",
    "OTHER",
    "DriftSpec",
    "FeatureReport",
    "Table",
    "Value",
    "compare_binned",
    "compare_categorical",
    "compare_numeric",
    "extract_rows",
    "extract_table",
    "feature_value",
]

MAX_FEATURES = 32  # per route; features beyond the first 32 seen are ignored
MAX_ROWS = 16  # rows read from one request (a batch)
MAX_CATEGORY_CHARS = 64
MIN_LIVE = 50  # live values a feature needs before its PSI means anything
OTHER = "(other)"

Value = float | str | None
"""A feature's value in one row: a number, a category, or None for missing."""

Table = tuple[tuple[str, ...], list[Sequence[Any]]]
"""Feature names, and rows of raw JSON leaves aligned with them (read with ``feature_value``)."""

_REFERENCE = re.compile(r"^\s*(?:first\s+(\d+)|file\s+(\S.*?))\s*$")


class DriftSpec(BaseModel):
    """A route's ``drift`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: str = "first 2000"
    window: Annotated[Duration, Field(gt=0)] = 600.0
    features: Literal["auto"] | tuple[str, ...] = "auto"
    max_psi: Annotated[float, Field(gt=0)] = 0.2
    sample: Annotated[float, Field(gt=0, le=1)] = 0.1

    @field_validator("reference")
    @classmethod
    def _reference(cls, value: str) -> str:
        match = _REFERENCE.match(value)
        if match is None or (match.group(1) is not None and int(match.group(1)) < MIN_LIVE):
            raise ValueError(
                f"must be 'first N' (N >= {MIN_LIVE}) or 'file PATH' (got {value!r})"
            )
        return value.strip()

    @field_validator("features")
    @classmethod
    def _features(cls, value: Any) -> Any:
        if isinstance(value, tuple) and not 0 < len(value) <= MAX_FEATURES:
            raise ValueError(f"must list 1 to {MAX_FEATURES} names")
        return value

    @property
    def reference_size(self) -> int | None:
        """N of ``first N``; None for a file."""
        found = _REFERENCE.match(self.reference)
        return int(found.group(1)) if found and found.group(1) else None

    @property
    def reference_file(self) -> str | None:
        """PATH of ``file PATH``; None for ``first N``."""
        found = _REFERENCE.match(self.reference)
        return found.group(2) if found and found.group(2) else None

    def with_reference_file(self, path: str) -> DriftSpec:
        """This spec with its reference file at ``path`` (made absolute by the loader)."""
        return self.model_copy(update={"reference": f"file {path}"})


def feature_value(item: Any) -> Value | bool:
    """A JSON leaf as a feature value; ``False`` when it is not a scalar (not a feature)."""
    kind = type(item)
    if kind is float:
        number: float = item
        return None if math.isnan(number) else number
    if kind is int:
        return float(item)
    if kind is str:
        return str(item)[:MAX_CATEGORY_CHARS]
    if kind is bool:
        return "true" if item else "false"
    if item is None:
        return None
    return False


def _put(rows: list[dict[str, Value]], index: int, name: str, item: Any) -> None:
    value = feature_value(item)
    if value is False or index >= MAX_ROWS:
        return
    while len(rows) <= index:
        rows.append({})
    rows[index][name] = value


@functools.lru_cache(maxsize=256)
def _column_names(name: str, width: int) -> tuple[str, ...]:
    """A tensor's feature names: ``NAME`` for one column, else ``NAME[j]`` (at most 32)."""
    if width == 1:
        return (name,)
    return tuple(f"{name}[{j}]" for j in range(min(width, MAX_FEATURES)))


def _v2_table(inputs: list[Any]) -> Table:
    """V2 tensors as one table: a tensor's rows are slices of its data, nothing per value."""
    parts: list[Table] = []
    for position, tensor in enumerate(inputs):
        if type(tensor) is not dict:
            continue
        name = str(tensor.get("name") or f"input-{position}")
        flat = flatten(tensor.get("data"))
        shape = tensor.get("shape")
        width = 1
        if type(shape) is list and len(shape) >= 2 and type(shape[-1]) is int and shape[-1] > 0:
            width = shape[-1]
        names = _column_names(name, width)
        count = min(len(flat) // width, MAX_ROWS)
        parts.append((names, [flat[r * width:r * width + len(names)] for r in range(count)]))
    if len(parts) == 1:
        return parts[0]
    # Several tensors: row r joins each tensor's row r (None where a tensor has fewer rows).
    names = tuple(n for part_names, _ in parts for n in part_names)
    rows: list[Sequence[Any]] = []
    for r in range(max((len(part_rows) for _, part_rows in parts), default=0)):
        row: list[Any] = []
        for part_names, part_rows in parts:
            row.extend(part_rows[r] if r < len(part_rows) else [None] * len(part_names))
        rows.append(row)
    return names, rows


def _record_rows(records: list[Any], prefix: str) -> list[dict[str, Value]]:
    rows: list[dict[str, Value]] = []
    for r, record in enumerate(records[:MAX_ROWS]):
        if type(record) is dict:
            for key, item in list(record.items())[:MAX_FEATURES]:
                _put(rows, r, str(key), item)
        elif type(record) is list:
            for j, item in enumerate(record[:MAX_FEATURES]):
                _put(rows, r, f"{prefix}[{j}]", item)
        else:
            _put(rows, r, prefix, record)
    return rows


def _columns(columns: dict[str, Any]) -> list[dict[str, Value]]:
    rows: list[dict[str, Value]] = []
    for key, column in list(columns.items())[:MAX_FEATURES]:
        for r, item in enumerate(column if type(column) is list else [column]):
            _put(rows, r, str(key), item)
    return rows


def _other_rows(protocol: str | None, doc: Any) -> list[dict[str, Value]]:
    """The feature rows of a body that holds no V2 tensors."""
    if type(doc) is dict:
        inputs = doc.get("inputs")
        if protocol == "v2":
            return []
        if type(doc.get("instances")) is list:
            return _record_rows(doc["instances"], "instances")
        if protocol == "v1":
            if type(inputs) is dict:
                return _columns(inputs)
            return _record_rows(inputs, "inputs") if type(inputs) is list else []
        return _record_rows([doc], "value")
    if type(doc) is list and protocol is None:
        return _record_rows([r for r in doc if type(r) is dict], "value")
    return []


def extract_table(protocol: str | None, doc: Any) -> Table:
    """The features of a parsed request body as one table (see the module docstring).

    Rows hold raw JSON leaves, to be read with ``feature_value``: V2 tensors, the
    usual model input, are sliced, not walked value by value.
    """
    if type(doc) is dict:
        inputs = doc.get("inputs")
        if protocol != "v1" and type(inputs) is list and inputs and type(inputs[0]) is dict \
                and "data" in inputs[0]:
            return _v2_table(inputs)
    rows = _other_rows(protocol, doc)
    names = tuple(dict.fromkeys(name for row in rows for name in row))
    return names, [[row.get(name) for name in names] for row in rows]


def extract_rows(protocol: str | None, doc: Any) -> list[dict[str, Value]]:
    """The feature rows of a parsed request body, each a dict of its scalar features."""
    names, table = extract_table(protocol, doc)
    rows: list[dict[str, Value]] = []
    for row in table:
        found: dict[str, Value] = {}
        for name, item in zip(names, row, strict=False):
            value = feature_value(item)
            if value is not False:
                found[name] = value
        rows.append(found)
    return rows


@dataclass(frozen=True, slots=True)
class FeatureReport:
    """One feature's drift: PSI (None while too few live values), missing shares, histograms.

    ``bins`` names each bin (``<= 5.1``, ``5.1 - 5.8``, ``> 7.0``, or a category);
    ``reference`` and ``live`` are each side's share of values per bin.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    psi: float | None
    missing_reference: float | None
    missing_live: float | None
    bins: tuple[str, ...]
    reference: tuple[float, ...]
    live: tuple[float, ...]
    reference_count: int
    live_count: int
    rows: tuple[int, int] = (0, 0)  # rows seen on each side (values, categories or missing)

    def render(self) -> dict[str, Any]:
        """The drift endpoint's view of this feature."""
        return {
            "name": self.name,
            "kind": self.kind,
            "psi": None if self.psi is None else round(self.psi, 4),
            "missing": {"reference": self.missing_reference, "live": self.missing_live},
            "bins": list(self.bins),
            "reference": [round(s, 4) for s in self.reference],
            "live": [round(s, 4) for s in self.live],
            "counts": {"reference": self.reference_count, "live": self.live_count},
            "rows": {"reference": self.rows[0], "live": self.rows[1]},
        }


def _shares(counts: Sequence[float]) -> tuple[float, ...]:
    total = sum(counts)
    return tuple(c / total if total else 0.0 for c in counts)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _edge_names(edges: Sequence[float]) -> tuple[str, ...]:
    if not edges:
        return ("all",)
    names = [f"<= {edges[0]:.4g}"]
    names += [f"{low:.4g} - {high:.4g}" for low, high in itertools.pairwise(edges)]
    names.append(f"> {edges[-1]:.4g}")
    return tuple(names)


def compare_numeric(
    name: str, reference: Sequence[float], live: Sequence[float],
    missing: tuple[int, int], seen: tuple[int, int],
) -> FeatureReport:
    """Drift of a numeric feature; ``missing`` and ``seen`` are (reference, live) row counts."""
    edges = decile_edges(reference)
    return compare_binned(
        name, edges, bin_counts(reference, edges), bin_counts(live, edges), missing, seen
    )


def compare_binned(
    name: str, edges: Sequence[float], reference: Sequence[float], live: Sequence[float],
    missing: tuple[int, int], seen: tuple[int, int],
) -> FeatureReport:
    """Drift of a numeric feature already counted into the bins cut at ``edges``.

    Counts may be fractional (a reservoir's counts scaled to the values it stands for).
    """
    n_ref, n_live = round(sum(reference)), round(sum(live))
    index = psi(reference, live) if n_live >= MIN_LIVE and n_ref else None
    return FeatureReport(
        name, "numeric", index, _share(missing[0], seen[0]), _share(missing[1], seen[1]),
        _edge_names(edges), _shares(reference), _shares(live), n_ref, n_live, seen,
    )


def compare_categorical(
    name: str, reference: Mapping[str, int], live: Mapping[str, int],
    missing: tuple[int, int], seen: tuple[int, int],
) -> FeatureReport:
    """Drift of a categorical feature: bins are the reference's values, the rest ``(other)``."""
    bins = sorted(reference, key=lambda k: (-reference[k], k))
    known = set(bins)
    live_other = sum(n for k, n in live.items() if k not in known)
    ref_counts = [reference[k] for k in bins]
    live_counts = [live.get(k, 0) for k in bins]
    if live_other:
        bins.append(OTHER)
        ref_counts.append(0)
        live_counts.append(live_other)
    n_ref, n_live = sum(ref_counts), sum(live_counts)
    index = None
    if n_live >= MIN_LIVE and n_ref:
        index = label_psi(dict(zip(bins, ref_counts, strict=True)),
                          dict(zip(bins, live_counts, strict=True)))
    return FeatureReport(
        name, "categorical", index, _share(missing[0], seen[0]), _share(missing[1], seen[1]),
        tuple(bins), _shares(ref_counts), _shares(live_counts), n_ref, n_live, seen,
    )
