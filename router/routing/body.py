"""A request body's top-level JSON fields, parsed only when a rule needs them.

Routing on the body (``match.body``) reads small bodies before routing. Most
rules fail on most requests (the body names another model), and a 2 KB JSON
body costs more to parse than the rest of the request path. ``BodyFields``
answers ``may_hold`` from the raw bytes first: a JSON body without a single
backslash holds every string literally, so if the field's name or value, written
as JSON, is not among its bytes, the rule cannot match and nothing is parsed.
Anything else parses the body once (``orjson``), on first use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

__all__ = ["BodyFields", "json_literal"]


def json_literal(text: str) -> bytes:
    """``text`` as a JSON string, the way it must appear in a body without escapes."""
    return orjson.dumps(text)


class BodyFields(Mapping[str, Any]):
    """The fields of a JSON object body (empty for anything else), parsed lazily."""

    __slots__ = ("_escaped", "_fields", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._escaped = b"\\" in raw
        self._fields: dict[str, Any] | None = None

    def may_hold(self, literal: bytes) -> bool:
        """False when ``literal`` (a JSON string) cannot be in the body: no parse needed."""
        return self._escaped or literal in self.raw

    def _parsed(self) -> dict[str, Any]:
        fields = self._fields
        if fields is None:
            try:
                parsed = orjson.loads(self.raw) if self.raw else None
            except orjson.JSONDecodeError:
                parsed = None
            fields = self._fields = parsed if isinstance(parsed, dict) else {}
        return fields

    def __getitem__(self, key: str) -> Any:
        return self._parsed()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())
