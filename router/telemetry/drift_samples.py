"""Bounded samples of one route's model inputs: the drift reference and the live window.

Each feature keeps, for the reference and for each of ``SLICES`` time slices of
the live window, a ``Sample``: a uniform reservoir of its numeric values (at
most ``REFERENCE_CAP`` or ``SLICE_CAP``), counts of its categories (at most
``MAX_CATEGORIES``, the rest ``(other)``), and its missing and seen rows. With
at most ``MAX_FEATURES`` features, a route holds at most 32 x (3,200 + 10 x
320) numbers: 1,638,400 bytes, under 2 MiB with the arrays' slack and the
category counts, whatever the traffic.

Reports must stay cheap (they run on the event loop every few seconds, and for
every dashboard poll): once the reference is ready, its decile edges and bin
counts are computed once, and each live slice counts its values into those bins
as they arrive. A report then sums at most ten short lists per feature.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from strategies.drift import (
    MAX_FEATURES,
    OTHER,
    DriftSpec,
    FeatureReport,
    Value,
    compare_binned,
    compare_categorical,
    compare_numeric,
    feature_value,
)
from strategies.psi import bin_counts, decile_edges, sorted_bin_counts

__all__ = ["REFERENCE_CAP", "SLICES", "SLICE_CAP", "Figures", "RouteSamples", "Sample"]

SLICES = 10
REFERENCE_CAP = 3200
SLICE_CAP = 320
MAX_CATEGORIES = 32
_NUMBERS = frozenset((float, int))

Figures = tuple[list[float] | None, dict[str, int], int, int]
"""A feature's live window as another replica sends it: its counts in the fleet's bins
(None without them), its category counts, missing values and rows."""


class Sample:
    """One feature over some rows: a value reservoir, category counts, missing and seen rows.

    With ``edges`` set, every numeric value offered is also counted into ``bins``.
    Values come in batches (``extend``): a batch of plain numbers, the usual case,
    is counted with a sort and a few bisections, and the full reservoir is kept
    uniform with Li's Algorithm L, which draws random numbers only for the values
    it keeps (a handful per batch) instead of one per value.
    """

    __slots__ = (
        "bins", "cap", "counts", "edges", "missing", "next_kept", "offered", "rows", "values",
        "weight",
    )

    def __init__(self, cap: int, edges: tuple[float, ...] | None = None) -> None:
        self.cap = cap
        self.values = array("d")
        self.offered = 0  # numeric values offered to the reservoir
        self.counts: dict[str, int] = {}
        self.missing = 0
        self.rows = 0
        self.edges = edges
        self.bins: list[float] | None = [0.0] * (len(edges) + 1) if edges is not None else None
        self.weight = 0.0  # Algorithm L's W; 0 until the reservoir is full
        self.next_kept = 0  # the offered count at which the next value is kept

    def add(self, value: Value, rng: random.Random) -> None:
        """Count one row's value."""
        self.extend((value,), rng)

    def extend(self, items: Sequence[Any], rng: random.Random) -> None:
        """Count one value per row: JSON leaves, read as ``feature_value`` reads them."""
        self.rows += len(items)
        if not items:
            return
        kinds = set(map(type, items))
        if kinds <= _NUMBERS and (total := sum(items)) == total:  # numbers, none NaN
            self._numbers(items, rng)
            return
        numbers: list[float] = []
        counts = self.counts
        for item in items:
            value = feature_value(item)
            if value is None or value is False:
                self.missing += 1
            elif type(value) is str:
                key = value if value in counts or len(counts) < MAX_CATEGORIES else OTHER
                counts[key] = counts.get(key, 0) + 1
            else:
                numbers.append(float(value))
        if numbers:
            self._numbers(numbers, rng)

    def _numbers(self, numbers: Sequence[float], rng: random.Random) -> None:
        if self.bins is not None and self.edges is not None:  # numbers hold no NaN
            for i, n in enumerate(sorted_bin_counts(sorted(numbers), self.edges)):
                self.bins[i] += n
        seen = self.offered
        self.offered += len(numbers)
        room = self.cap - len(self.values)
        if room > 0:
            self.values.extend(numbers[:room])
            if len(numbers) <= room:
                return
            seen += room
        self._replace(numbers, self.offered - len(numbers), seen, rng)

    def _replace(self, numbers: Sequence[float], first: int, seen: int, rng: random.Random) -> None:
        """Algorithm L over ``numbers`` (offered counts first + 1 on); ``seen`` offered so far."""
        cap = self.cap
        if not self.weight:  # W after ``seen`` values: the cap-th smallest of seen uniforms
            self.weight = rng.betavariate(cap, seen - cap + 1)
            self.next_kept = seen + _skip(self.weight, rng) + 1
        end = self.offered
        while self.next_kept <= end:
            self.values[rng.randrange(cap)] = numbers[self.next_kept - first - 1]
            self.weight *= math.exp(math.log(1.0 - rng.random()) / cap)
            self.next_kept += _skip(self.weight, rng) + 1

    def rebin(self, edges: tuple[float, ...] | None) -> None:
        """Count into new bins: the reservoir's counts, scaled to the values it stands for."""
        self.edges = edges
        if edges is None:
            self.bins = None
            return
        scale = self.offered / len(self.values) if self.values else 0.0
        self.bins = [n * scale for n in bin_counts(self.values, edges)]

    @property
    def categorical(self) -> bool:
        """Whether the feature reads as categories (more of them than numbers)."""
        return sum(self.counts.values()) > self.offered

    @classmethod
    def merged(cls, parts: Iterable[Sample], cap: int, rng: random.Random) -> Sample:
        """One sample of everything in ``parts``, at most ``cap`` values.

        Each part gives values in proportion to the values it was offered, so a
        busy slice weighs more than a quiet one although both kept ``SLICE_CAP``.
        """
        whole = cls(cap)
        parts = list(parts)
        offered = sum(p.offered for p in parts)
        target = min(cap, sum(len(p.values) for p in parts))
        values: list[float] = []
        for part in parts:
            whole.offered += part.offered
            whole.missing += part.missing
            whole.rows += part.rows
            for key, n in part.counts.items():
                whole.counts[key] = whole.counts.get(key, 0) + n
            if part.offered:
                share = min(len(part.values), round(target * part.offered / offered))
                values.extend(rng.sample(list(part.values), share))
        whole.values = array("d", values)
        return whole


def _skip(weight: float, rng: random.Random) -> int:
    """How many values Algorithm L passes over before keeping one."""
    if weight >= 1.0:
        return 0
    return int(math.log(1.0 - rng.random()) / math.log1p(-weight))


def _totals(parts: list[Sample]) -> tuple[int, int]:
    return sum(p.missing for p in parts), sum(p.rows for p in parts)


class RouteSamples:
    """One route's features: the reference, the live window's slices, and how the reference came."""

    def __init__(self, spec: DriftSpec, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        self.names: list[str] = list(spec.features) if spec.features != "auto" else []
        self.reference: dict[str, Sample] = {}
        self.reference_rows = 0
        self.reference_target = spec.reference_size  # None: from a file (or pinned)
        self.reference_ready = False
        self.pinned_at: float | None = None
        self.edges: dict[str, tuple[float, ...]] = {}
        self.fleet_edges = False  # the edges are the fleet's (the leader's), not cut here
        self.fleet_version: str | None = None  # the fleet's bins counted into, if any
        self.slice_s = spec.window / SLICES
        self.slices: dict[int, dict[str, Sample]] = {}
        self.changes = 0  # batches added: a report of unchanged samples can be skipped

    def _known(self, names: Iterable[str]) -> list[str]:
        if self.spec.features == "auto" and len(self.names) < MAX_FEATURES:
            for name in names:
                if name not in self.names and len(self.names) < MAX_FEATURES:
                    self.names.append(name)
        return self.names

    def _live_slice(self, now: float) -> dict[str, Sample]:
        index = int(now // self.slice_s)
        found = self.slices.get(index)
        if found is None:
            for old in [i for i in self.slices if i <= index - SLICES]:
                del self.slices[old]
            found = self.slices[index] = {}
        return found

    def add(self, row: Mapping[str, Value], now: float) -> None:
        """Count one input row, a dict of its features (see ``add_rows``)."""
        self.add_rows(tuple(row), [list(row.values())], now)

    def add_rows(self, names: Sequence[str], rows: Sequence[Sequence[Any]], now: float) -> None:
        """Count rows of JSON leaves (aligned with ``names``) in the live window at ``now``,
        and in the reference while it fills. One call per batch: each feature's column
        is counted at once."""
        if not rows:
            return
        known = self._known(names)
        live = self._live_slice(now)
        columns = dict(zip(names, zip(*rows, strict=False), strict=False))
        absent = (None,) * len(rows)
        take = 0
        if not self.reference_ready and self.reference_target is not None:
            take = min(len(rows), self.reference_target - self.reference_rows)
        for name in known:
            values = columns.get(name, absent)
            sample = live.get(name)
            if sample is None:
                sample = live[name] = Sample(SLICE_CAP, self.edges.get(name))
            sample.extend(values, self.rng)
            if take:
                ref = self.reference.get(name)
                if ref is None:
                    ref = self.reference[name] = Sample(REFERENCE_CAP)
                ref.extend(values[:take], self.rng)
        self.changes += 1
        if take:
            self.reference_rows += take
            if self.reference_target is not None and self.reference_rows >= self.reference_target:
                self._ready()

    def _ready(self) -> None:
        """The reference is complete: cut its bins once, and count the live slices into them."""
        self.reference_ready = True
        if not self.fleet_edges:
            self.edges = {
                name: decile_edges(ref.values)
                for name, ref in self.reference.items() if not ref.categorical
            }
        self._rebin()

    def _rebin(self) -> None:
        for name, ref in self.reference.items():
            ref.rebin(self.edges.get(name))
        for part in self.slices.values():
            for name, sample in part.items():
                sample.rebin(self.edges.get(name))

    def adopt_edges(self, edges: Mapping[str, Sequence[float]], version: str) -> None:
        """Count into the fleet's bins (cut at the leader's reference; ``version`` names
        them) from now on, so this replica's live window adds up with the others'."""
        self.edges = {name: tuple(cut) for name, cut in edges.items()}
        self.fleet_edges, self.fleet_version = True, version
        self.changes += 1
        self._rebin()

    def live_figures(self, now: float) -> dict[str, Figures]:
        """Each feature's live window in the form the fleet sums (``Figures``)."""
        current = self._current(now)
        figures: dict[str, Figures] = {}
        for name in self.names:
            parts = [s[name] for s in current if name in s]
            edges = self.edges.get(name)
            bins = None if edges is None else [0.0] * (len(edges) + 1)
            counts: dict[str, int] = {}
            for part in parts:
                if bins is not None and part.bins is not None:
                    for i, n in enumerate(part.bins):
                        bins[i] += n
                for key, n in part.counts.items():
                    counts[key] = counts.get(key, 0) + n
            figures[name] = (bins, counts, *_totals(parts))
        return figures

    def load_reference(self, rows: Iterable[Mapping[str, Value]]) -> int:
        """Make ``rows`` (a reference file's) the reference; how many rows it had."""
        rows = list(rows)
        names = self._known(dict.fromkeys(name for row in rows for name in row))
        reference: dict[str, Sample] = {}
        for name in names:
            sample = reference[name] = Sample(REFERENCE_CAP)
            sample.extend([row.get(name) for row in rows], self.rng)
        self.reference, self.reference_rows = reference, len(rows)
        self.changes += 1
        self._ready()
        return len(rows)

    def _current(self, now: float) -> list[dict[str, Sample]]:
        newest = int(now // self.slice_s)
        return [s for i, s in self.slices.items() if newest - SLICES < i <= newest]

    def live(self, now: float) -> dict[str, Sample]:
        """Each feature's sample over the live window (slices older than it left out)."""
        current = self._current(now)
        return {
            name: Sample.merged((s[name] for s in current if name in s), REFERENCE_CAP, self.rng)
            for name in self.names
        }

    def pin(self, now: float) -> None:
        """Make the live window the reference."""
        live = self.live(now)
        self.reference = live
        self.reference_rows = max((s.rows for s in live.values()), default=0)
        self.reference_target = None
        self.pinned_at = now
        self.fleet_edges, self.fleet_version = False, None  # a pin cuts its own bins
        self.changes += 1
        self._ready()

    def _report(
        self, name: str, current: list[dict[str, Sample]], others: Sequence[Figures] = ()
    ) -> FeatureReport:
        parts = [s[name] for s in current if name in s]
        ref = self.reference.get(name) or Sample(0)
        (miss, rows), edges = _totals(parts), self.edges.get(name)
        miss += sum(f[2] for f in others)
        rows += sum(f[3] for f in others)
        missing, seen = (ref.missing, miss), (ref.rows, rows)
        if ref.categorical:
            live_counts: dict[str, int] = {}
            for counts in [p.counts for p in parts] + [f[1] for f in others]:
                for key, n in counts.items():
                    live_counts[key] = live_counts.get(key, 0) + n
            return compare_categorical(name, ref.counts, live_counts, missing, seen)
        if edges is not None and ref.bins is not None:
            live_bins = [0.0] * (len(edges) + 1)
            for bins in [p.bins for p in parts] + [f[0] for f in others]:
                if bins is not None and len(bins) == len(live_bins):
                    for i, share in enumerate(bins):
                        live_bins[i] += share
            return compare_binned(name, edges, ref.bins, live_bins, missing, seen)
        # The reference is still filling: a small sample of each side, no PSI.
        live = Sample.merged(parts, SLICE_CAP, self.rng)
        return replace(compare_numeric(name, ref.values, live.values, missing, seen), psi=None)

    def reports(
        self, now: float, others: Mapping[str, Sequence[Figures]] | None = None
    ) -> list[FeatureReport]:
        """Every feature's drift, the highest PSI first (features without one last); with
        ``others``, the other replicas' live figures by feature are added to this one's."""
        current = self._current(now)
        others = others or {}
        found = [self._report(name, current, others.get(name, ())) for name in self.names]
        if not self.reference_ready:
            found = [replace(r, psi=None) for r in found]
        return sorted(found, key=lambda r: (r.psi is None, -(r.psi or 0.0), r.name))
