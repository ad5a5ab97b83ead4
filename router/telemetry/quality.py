"""What the answers said, per (route, variant), over a sliding window: the gates' input.

The body inspector reads each answer's predictions after the client has it and
hands the counts here: predictions read, null ones among them, labels (already
capped per route by the inspector) and numeric values. One-second slots in a
ring, like the request windows, so a check sums the slots of its window; numeric
values are kept in a bounded queue (the newest ``VALUES_KEPT``), enough for
decile bins. O(1) work per answer.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence

from router.telemetry.windows import SPAN_S
from strategies.observation import Quality

__all__ = ["VALUES_KEPT", "QualityWindow", "QualityWindows"]

VALUES_KEPT = 4096


class QualityWindow:
    """The ring of one-second slots of one variant's answers."""

    __slots__ = ("_labels", "_nulls", "_read", "_stamps", "_values")

    def __init__(self) -> None:
        self._stamps = [-1] * SPAN_S
        self._read = [0] * SPAN_S
        self._nulls = [0] * SPAN_S
        self._labels: list[dict[str, int]] = [{} for _ in range(SPAN_S)]
        self._values: deque[tuple[int, float]] = deque(maxlen=VALUES_KEPT)

    def record(
        self, now: float, nulls: int, labels: Mapping[str, int], values: Sequence[float]
    ) -> None:
        """Count one answer's predictions: ``nulls`` null ones, labels by count, values."""
        second = int(now)
        slot = second % SPAN_S
        if self._stamps[slot] != second:
            self._stamps[slot] = second
            self._read[slot] = self._nulls[slot] = 0
            self._labels[slot].clear()
        read = nulls + len(values)
        if labels:
            slot_labels = self._labels[slot]
            for label, n in labels.items():
                slot_labels[label] = slot_labels.get(label, 0) + n
                read += n
        self._read[slot] += read
        if nulls:
            self._nulls[slot] += nulls
        for value in values:
            if math.isfinite(value):
                self._values.append((second, value))

    def slot(self, second: int) -> tuple[int, int, dict[str, int], list[float]] | None:
        """Answers, nulls, labels and numeric values of one second still in the ring."""
        slot = second % SPAN_S
        if self._stamps[slot] != second:
            return None
        values = [v for s, v in self._values if s == second]
        return self._read[slot], self._nulls[slot], dict(self._labels[slot]), values

    def add(
        self, second: int, read: int, nulls: int, labels: Mapping[str, int],
        values: Sequence[float],
    ) -> None:
        """Add a second's answers counted elsewhere (another replica's; a fleet's sum)."""
        slot = second % SPAN_S
        if self._stamps[slot] != second:
            self._stamps[slot] = second
            self._read[slot] = self._nulls[slot] = 0
            self._labels[slot].clear()
        self._read[slot] += read
        self._nulls[slot] += nulls
        slot_labels = self._labels[slot]
        for label, n in labels.items():
            slot_labels[label] = slot_labels.get(label, 0) + n
        self._values.extend((second, v) for v in values if math.isfinite(v))

    def quality(self, now: float, window_s: float) -> Quality:
        """The predictions of the trailing ``window_s`` seconds."""
        newest = int(now)
        oldest = newest - min(math.ceil(window_s), SPAN_S) + 1
        read = nulls = 0
        labels: dict[str, int] = {}
        for second in range(oldest, newest + 1):
            slot = second % SPAN_S
            if self._stamps[slot] != second:
                continue
            read += self._read[slot]
            nulls += self._nulls[slot]
            for label, n in self._labels[slot].items():
                labels[label] = labels.get(label, 0) + n
        values = tuple(v for s, v in self._values if oldest <= s <= newest)
        return Quality(answers=read, null_outputs=nulls, labels=labels, values=values)


class QualityWindows:
    """Every (route, variant)'s answer window; fed by the body inspector."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], QualityWindow] = {}

    def record(
        self, route: str, variant: str, now: float, nulls: int, labels: Mapping[str, int],
        values: Sequence[float],
    ) -> None:
        """Count one answer of (route, variant)."""
        key = (route, variant)
        found = self._windows.get(key)
        if found is None:
            found = self._windows[key] = QualityWindow()
        found.record(now, nulls, labels, values)

    def window(self, route: str, variant: str) -> QualityWindow:
        """The window of (route, variant), created on first use."""
        key = (route, variant)
        found = self._windows.get(key)
        if found is None:
            found = self._windows[key] = QualityWindow()
        return found

    def items(self) -> list[tuple[tuple[str, str], QualityWindow]]:
        """Every ((route, variant), window)."""
        return list(self._windows.items())

    def quality(self, route: str, variant: str, now: float, window_s: float) -> Quality:
        """The answers of (route, variant) over the trailing window."""
        found = self._windows.get((route, variant))
        return found.quality(now, window_s) if found is not None else Quality()

    def view(
        self, route: str, variants: Sequence[str], now: float, window_s: float
    ) -> Mapping[str, Quality]:
        """The variants' answers over the window, summed only when a check reads them.

        The controller observes every tick but judges once an interval.
        """
        return _LazyQuality(self, route, tuple(variants), now, window_s)

    def forget(self, route: str) -> None:
        """Drop a removed route's windows."""
        for key in [k for k in self._windows if k[0] == route]:
            del self._windows[key]


class _LazyQuality(Mapping[str, Quality]):
    """A read-only mapping of variant to ``Quality``, each computed on first access."""

    def __init__(
        self, windows: QualityWindows, route: str, variants: tuple[str, ...], now: float,
        window_s: float,
    ) -> None:
        self._args = (windows, route, now, window_s)
        self._variants = variants
        self._done: dict[str, Quality] = {}

    def __getitem__(self, variant: str) -> Quality:
        if variant not in self._variants:
            raise KeyError(variant)
        found = self._done.get(variant)
        if found is None:
            windows, route, now, window_s = self._args
            found = self._done[variant] = windows.quality(route, variant, now, window_s)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._variants)

    def __len__(self) -> int:
        return len(self._variants)
