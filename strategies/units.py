"""Durations and sizes as operators write them in YAML (``250ms``, ``5m``, ``10MiB``).

pydantic does not parse Go-style durations, so these annotated types do. Both
also accept a plain number (seconds, bytes).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, WithJsonSchema

__all__ = ["ByteSize", "Duration", "Hold", "parse_duration", "parse_size"]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB|k|K|M|G)?\s*$")
_SIZE_UNITS = {
    None: 1, "B": 1,
    "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3,
    "KB": 1000, "MB": 1000**2, "GB": 1000**3,
    "k": 1024, "K": 1024, "M": 1024**2, "G": 1024**3,
}


def parse_duration(value: Any) -> float:
    """Return seconds from ``250ms``, ``30s``, ``5m``, ``1h`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match is None:
            raise ValueError(f"expected a duration like 250ms, 30s, 5m or 1h (got {value!r})")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise ValueError(f"expected a duration like 30s, got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative (got {value!r})")
    return seconds


def parse_size(value: Any) -> int:
    """Return bytes from ``512KiB``, ``10MiB``, ``1MB`` or a number of bytes."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 10MiB, got {value!r}")
    if isinstance(value, int | float):
        size = int(value)
    elif isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match is None:
            raise ValueError(f"expected a size like 512KiB or 10MiB (got {value!r})")
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    else:
        raise ValueError(f"expected a size like 10MiB, got {value!r}")
    if size < 0:
        raise ValueError(f"a size cannot be negative (got {value!r})")
    return size


def _parse_hold(value: Any) -> float | str:
    if value == "manual":
        return "manual"
    return parse_duration(value)


_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h)?$"},
    ]
}
_SIZE_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": r"^\d+(\.\d+)?(B|KiB|MiB|GiB|KB|MB|GB|k|K|M|G)?$"},
    ]
}

Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA)]
"""Seconds, written in YAML as ``250ms``, ``30s``, ``5m``, ``1h`` or a number."""

ByteSize = Annotated[int, BeforeValidator(parse_size), WithJsonSchema(_SIZE_SCHEMA)]
"""Bytes, written in YAML as ``512KiB``, ``10MiB`` or a number."""

Hold = Annotated[
    float | Literal["manual"],
    BeforeValidator(_parse_hold),
    WithJsonSchema({"anyOf": [*_DURATION_SCHEMA["anyOf"], {"const": "manual"}]}),
]
"""A ramp step's hold: a duration, or ``manual`` to wait for ``promote``."""
