"""The bounded samples behind input drift: memory caps, the live window, pin."""

from __future__ import annotations

import random
import tracemalloc

from router.telemetry.drift_samples import REFERENCE_CAP, SLICE_CAP, RouteSamples, Sample
from strategies.drift import MAX_FEATURES, DriftSpec

MIB = 1024 * 1024


def test_a_route_stays_under_2_mib_whatever_the_traffic() -> None:
    rng = random.Random(1)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        samples = RouteSamples(DriftSpec(reference="first 100000", window=600), rng)
        names = [f"f{i}" for i in range(MAX_FEATURES + 8)]  # more features than kept
        row = {name: 0.5 for name in names}
        for n in range(15_000):  # 15,000 rows over the 10-minute window and beyond
            samples.add(row, 1000.0 + n * 0.05)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(samples.names) == MAX_FEATURES
    assert all(len(s.values) <= REFERENCE_CAP for s in samples.reference.values())
    slices = samples.slices.values()
    assert all(len(s.values) <= SLICE_CAP for part in slices for s in part.values())
    assert held < 2 * MIB, held


def test_a_reservoir_stays_a_uniform_sample() -> None:
    rng = random.Random(2)
    sample = Sample(400)
    for value in range(40_000):
        sample.add(float(value), rng)
    assert len(sample.values) == 400 and sample.offered == 40_000
    mean = sum(sample.values) / 400
    assert 17_000 < mean < 23_000  # a prefix would average about 200


def test_the_live_window_forgets_old_slices_and_pin_makes_it_the_reference() -> None:
    rng = random.Random(3)
    samples = RouteSamples(DriftSpec(reference="first 100", window=100), rng)
    for n in range(300):  # 100 reference rows, then the values move
        samples.add({"x": rng.random() + (0 if n < 100 else 5), "c": "a"}, 1000.0 + n * 0.1)
    assert samples.reference_ready and samples.reference_rows == 100
    moved = {r.name: r for r in samples.reports(1030.0)}
    assert moved["x"].psi is not None and moved["x"].psi > 1.0
    assert moved["c"].psi is not None and moved["c"].psi < 0.01

    assert samples.live(1200.0)["x"].rows == 0  # more than a window later: nothing live
    samples.pin(1115.0)  # the window now holds the last 100 rows, all moved
    assert samples.pinned_at == 1115.0 and samples.reference_rows == 100
    for n in range(200):
        samples.add({"x": rng.random() + 5, "c": "a"}, 1130.0 + n * 0.1)
    after = samples.reports(1150.0)[0]
    assert after.psi is not None and after.psi < 0.3


def test_live_values_are_counted_into_the_reference_bins_as_they_arrive() -> None:
    rng = random.Random(4)
    samples = RouteSamples(DriftSpec(reference="first 100", window=600), rng)
    for n in range(1100):  # 100 for the reference, then 1,000 in one slice (reservoir: 320)
        samples.add({"x": rng.random()}, 1000.0 + n * 0.01)
    report = samples.reports(1011.0)[0]
    assert report.live_count == 1100  # every value counted, not only the reservoir's
    assert len(samples.slices[int(1000.0 // samples.slice_s)]["x"].values) == SLICE_CAP
    assert report.psi is not None and report.psi < 0.1


def test_a_reservoir_fed_in_batches_stays_uniform_and_counts_every_value_into_its_bins() -> None:
    rng = random.Random(5)
    sample = Sample(400, edges=(9_999.5, 19_999.5, 29_999.5))
    for start in range(0, 40_000, 250):  # 160 batches, as the drain hands them over
        sample.extend([float(v) for v in range(start, start + 250)], rng)
    assert len(sample.values) == 400 and sample.offered == 40_000
    quarters = [0, 0, 0, 0]
    for value in sample.values:
        quarters[int(value // 10_000)] += 1
    assert all(70 < n < 130 for n in quarters), quarters  # a uniform sample: about 100 each
    assert sample.bins == [10_000, 10_000, 10_000, 10_000]


def test_a_batch_mixing_numbers_categories_and_missing_values_is_read_value_by_value() -> None:
    sample = Sample(10)
    sample.extend([1, 2.5, None, float("nan"), "a", True, [1]], random.Random(6))
    assert list(sample.values) == [1.0, 2.5]
    assert (sample.rows, sample.missing, sample.counts) == (7, 3, {"a": 1, "true": 1})


def test_a_followers_window_in_the_leaders_bins_adds_up_to_one_window_of_both() -> None:
    """The fleet's sum (router/control/fleet_drift.py): the leader's report with a
    follower's live figures is the report of one route that served both streams."""
    spec = DriftSpec(reference="first 200", window=600)
    leader, follower, both = (RouteSamples(spec, random.Random(n)) for n in (1, 2, 3))
    rng = random.Random(4)
    reference = [{"x": rng.gauss(0, 1), "kind": rng.choice("ab")} for _ in range(200)]
    for row in reference:
        leader.add(row, 1000.0)
        both.add(row, 1000.0)
    assert leader.edges == both.edges and leader.edges
    follower.adopt_edges(leader.edges, "v1")
    for n in range(600):  # the follower's traffic moves; the leader's does not
        mine = {"x": rng.gauss(0, 1), "kind": "a"}
        theirs = {"x": rng.gauss(2, 1), "kind": "b", "extra": None}
        leader.add(mine, 1001.0 + n * 0.1)
        both.add(mine, 1001.0 + n * 0.1)
        follower.add(theirs, 1001.0 + n * 0.1)
        both.add(theirs, 1001.0 + n * 0.1)
    now = 1100.0
    others = {name: [found] for name, found in follower.live_figures(now).items()}
    summed = {r.name: r for r in leader.reports(now, others)}
    alone = {r.name: r for r in leader.reports(now)}
    whole = {r.name: r for r in both.reports(now)}
    for name in ("x", "kind"):
        assert summed[name].live == whole[name].live and summed[name].psi == whole[name].psi
        assert summed[name].rows == whole[name].rows
    assert (whole["x"].psi or 0.0) > 0.25 > (alone["x"].psi or 0.0)
