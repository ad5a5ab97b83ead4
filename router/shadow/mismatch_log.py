"""The shadow mismatch log: one JSON line per sampled mismatch, size-capped.

Each line holds the request id, route, shadow backend, time, the first
difference and both answers (truncated). Lines are sampled (every Nth
mismatch, and at most ``max_per_second`` a second) and the file is capped:
when a line would take it past ``max_bytes`` it is renamed to ``<name>.1``
(replacing the previous one) and a new file starts, so the log never uses
more than about ``2 * max_bytes`` of disk.

Writes are small and synchronous, made off the request path by the shadow
dispatcher. An ``OSError`` never escapes: ``record`` answers ``False``.
"""

from __future__ import annotations

import math
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import orjson

from strategies.compare import Comparison

__all__ = ["MismatchLog"]

_MiB = 1024 * 1024


def _excerpt(body: bytes, max_chars: int) -> str:
    """The body as text, cut to ``max_chars`` characters with a note of its full size."""
    text = body[: max_chars * 4].decode("utf-8", errors="replace")
    if len(text) <= max_chars and len(body) <= max_chars * 4:
        return text
    return f"{text[:max_chars]}...[truncated, {len(body)} bytes]"


class MismatchLog:
    """An append-only JSONL file of shadow mismatches, sampled and size-capped."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 10 * _MiB,
        sample_every: int = 1,
        max_field_chars: int = 2000,
        max_per_second: int = 10,
    ) -> None:
        self.path = Path(path)
        self.rotated = self.path.with_name(self.path.name + ".1")
        self.max_bytes = max_bytes
        self.sample_every = max(1, sample_every)
        self.max_field_chars = max_field_chars
        self.max_per_second = max_per_second
        self._lock = threading.Lock()
        self._seen = 0
        self._second = -1
        self._in_second = 0
        self._size: int | None = None

    def record(
        self,
        *,
        route: str,
        request_id: str,
        backend: str,
        comparison: Comparison,
        primary_body: bytes,
        shadow_body: bytes,
        at: float,
    ) -> bool:
        """Append one line if sampling, the rate limit and the size cap allow; True if written."""
        with self._lock:
            if not self._admit(at):
                return False
            line = self._render(
                route, request_id, backend, comparison, primary_body, shadow_body, at
            )
            if line is None or len(line) > self.max_bytes:
                return False
            try:
                self._append(line)
            except OSError:
                self._size = None
                return False
            return True

    def _admit(self, at: float) -> bool:
        """Every ``sample_every``-th call, at most ``max_per_second`` per second of ``at``."""
        self._seen += 1
        if (self._seen - 1) % self.sample_every:
            return False
        second = math.floor(at)
        if second != self._second:
            self._second, self._in_second = second, 0
        if self._in_second >= self.max_per_second:
            return False
        self._in_second += 1
        return True

    def _render(
        self,
        route: str,
        request_id: str,
        backend: str,
        comparison: Comparison,
        primary_body: bytes,
        shadow_body: bytes,
        at: float,
    ) -> bytes | None:
        when = datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds")
        record = {
            "time": when.replace("+00:00", "Z"),
            "route": route,
            "request_id": request_id,
            "backend": backend,
            "outcome": comparison.outcome,
            "protocol": comparison.protocol,
            "first_difference": comparison.first_difference,
            "max_abs_diff": comparison.max_abs_diff,
            "label_flip": comparison.label_flip,
            "detail": comparison.detail[: self.max_field_chars],
            "primary": _excerpt(primary_body, self.max_field_chars),
            "shadow": _excerpt(shadow_body, self.max_field_chars),
        }
        try:
            return orjson.dumps(record) + b"\n"
        except (TypeError, orjson.JSONEncodeError):
            return None

    def _append(self, line: bytes) -> None:
        """Write ``line``, first rotating the file if it would pass ``max_bytes``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._size is None:
            try:
                self._size = self.path.stat().st_size
            except FileNotFoundError:
                self._size = 0
        if self._size + len(line) > self.max_bytes:
            if self._size:
                os.replace(self.path, self.rotated)
            self._size = 0
        with self.path.open("ab") as file:
            file.write(line)
        self._size += len(line)
