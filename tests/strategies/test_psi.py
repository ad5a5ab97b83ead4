"""PSI: known values, the smoothing of empty bins, decile bins for numbers."""

from __future__ import annotations

import math
import random

import pytest

from strategies.psi import SMOOTHING, bin_counts, decile_edges, label_psi, psi, value_psi


def test_identical_counts_have_no_drift() -> None:
    assert psi([10, 20, 30], [10, 20, 30]) == pytest.approx(0.0)
    assert psi([10, 20, 30], [20, 40, 60]) == pytest.approx(0.0, abs=1e-3)  # smoothing only
    assert psi([0, 0], [0, 0]) == 0.0


def test_known_value_from_the_formula() -> None:
    # Two bins, large counts (smoothing negligible): shares 0.5/0.5 against 0.8/0.2.
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert psi([50_000, 50_000], [80_000, 20_000]) == pytest.approx(expected, rel=1e-4)


def test_an_empty_bin_is_smoothed_not_infinite() -> None:
    value = psi([100, 0], [50, 50])
    e = [100.5 / 101, 0.5 / 101]
    a = [50.5 / 101, 50.5 / 101]
    assert SMOOTHING == 0.5
    assert value == pytest.approx(sum((x - y) * math.log(x / y) for x, y in zip(a, e, strict=True)))
    assert math.isfinite(value) and value > 1.0


def test_mismatched_bins_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        psi([1, 2], [1, 2, 3])


def test_labels_use_the_union_of_both_sides() -> None:
    stable = {"setosa": 330, "versicolor": 340, "virginica": 330}
    assert label_psi(stable, dict(stable)) == pytest.approx(0.0)
    skewed = {"setosa": 900, "versicolor": 50, "virginica": 50}
    assert label_psi(stable, skewed) > 0.2
    new_label = {"setosa": 330, "versicolor": 340, "virginica": 230, "unknown": 100}
    assert label_psi(stable, new_label) == pytest.approx(
        psi([0, 330, 340, 330], [100, 330, 340, 230])
    )


def test_decile_edges_split_the_reference_in_tenths() -> None:
    reference = [float(v) for v in range(1, 101)]
    edges = decile_edges(reference)
    assert edges == tuple(float(v) for v in range(10, 100, 10))
    assert bin_counts(reference, edges) == [10] * 10


def test_ties_collapse_bins() -> None:
    edges = decile_edges([1.0] * 50 + [2.0] * 50)
    assert edges == (1.0,)
    assert bin_counts([1.0, 2.0, 2.0, 5.0], edges) == [1, 3]
    assert decile_edges([]) == ()
    assert decile_edges([3.0] * 10) == ()


def test_numbers_drift_when_shifted_not_when_resampled() -> None:
    rng = random.Random(11)
    reference = [rng.gauss(0, 1) for _ in range(2000)]
    same = [rng.gauss(0, 1) for _ in range(2000)]
    shifted = [rng.gauss(1, 1) for _ in range(2000)]
    assert value_psi(reference, same) < 0.05
    assert value_psi(reference, shifted) > 0.5
