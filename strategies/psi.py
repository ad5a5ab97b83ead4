"""The Population Stability Index: how far one distribution moved from a reference.

PSI = sum over bins of (a - e) * ln(a / e), where e and a are the shares of the
reference (expected) and of the live sample (actual) in each bin. Common reading:
below 0.1 stable, 0.1-0.2 a moderate shift, above 0.2 a large one.

Bins:

- categories (classifier labels, categorical features): one bin per value seen in
  either sample (``label_psi``);
- numbers (regressor outputs, numeric features): 10 bins cut at the reference's
  deciles (``decile_edges``), the lowest and highest open-ended, so each holds a
  tenth of the reference; tied deciles merge their bins (``value_psi``).

Empty bins. A bin empty on one side would make the index infinite, so every bin
count gets ``SMOOTHING`` (0.5, the Jeffreys pseudo-count) added on both sides
before the shares are taken. With a few hundred values per side this moves a
share by well under one percent; on tiny samples it keeps the index finite but
large, which is why callers wait for a minimum sample before judging.

Pure: no I/O, no numpy; counts or samples in, a number out.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["DEFAULT_BINS", "SMOOTHING", "bin_counts", "decile_edges", "label_psi", "psi",
           "sorted_bin_counts", "value_psi"]

SMOOTHING = 0.5
DEFAULT_BINS = 10


def psi(expected: Sequence[float], actual: Sequence[float], smoothing: float = SMOOTHING) -> float:
    """PSI of two aligned lists of bin counts (reference first); 0.0 when both are empty."""
    if len(expected) != len(actual):
        raise ValueError(f"bin counts differ in length: {len(expected)} vs {len(actual)}")
    if not expected or (sum(expected) == 0 and sum(actual) == 0):
        return 0.0
    e_total = sum(expected) + smoothing * len(expected)
    a_total = sum(actual) + smoothing * len(actual)
    index = 0.0
    for e_count, a_count in zip(expected, actual, strict=True):
        e_share = (e_count + smoothing) / e_total
        a_share = (a_count + smoothing) / a_total
        index += (a_share - e_share) * math.log(a_share / e_share)
    return index


def label_psi(expected: Mapping[str, int], actual: Mapping[str, int]) -> float:
    """PSI over categories: one bin per label seen on either side."""
    labels = sorted(set(expected) | set(actual))
    return psi([expected.get(k, 0) for k in labels], [actual.get(k, 0) for k in labels])


def decile_edges(reference: Sequence[float], bins: int = DEFAULT_BINS) -> tuple[float, ...]:
    """The inner cut points splitting ``reference`` into ``bins`` equal shares.

    Ties collapse (a reference with few distinct values gets fewer bins); an
    empty reference gives no edges (one bin).
    """
    ordered = sorted(v for v in reference if not math.isnan(v))
    if not ordered:
        return ()
    edges: list[float] = []
    for k in range(1, bins):
        position = k * len(ordered) / bins
        cut = ordered[min(math.ceil(position) - 1, len(ordered) - 1)]
        if not edges or cut > edges[-1]:
            edges.append(cut)
    if edges and edges[-1] >= ordered[-1]:
        edges.pop()  # nothing would fall above the top edge: merge it into the bin below
    return tuple(edges)


def bin_counts(values: Iterable[float], edges: Sequence[float]) -> list[int]:
    """Counts of ``values`` in the bins cut at ``edges`` (a value on an edge goes below it).

    NaN falls in no bin.
    """
    return sorted_bin_counts(sorted([v for v in values if v == v]), edges)


def sorted_bin_counts(ordered: Sequence[float], edges: Sequence[float]) -> list[int]:
    """``bin_counts`` of values already sorted, none NaN: a bisection per edge, not per value."""
    counts: list[int] = []
    below = 0
    for edge in edges:
        upto = bisect.bisect_right(ordered, edge)
        counts.append(upto - below)
        below = upto
    counts.append(len(ordered) - below)
    return counts


def value_psi(reference: Sequence[float], live: Sequence[float], bins: int = DEFAULT_BINS) -> float:
    """PSI of numbers: ``bins`` bins cut at the reference's quantiles."""
    edges = decile_edges(reference, bins)
    return psi(bin_counts(reference, edges), bin_counts(live, edges))
