"""``bench/soak.py``: the RSS checkpoints and the "RSS flat" verdict after the warm-up."""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ scripts import their siblings by bare name, as when run as `python bench/run.py`.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from soak import MIB, SoakResult, _feedback_sections


def _result(rss_mib: list[float], warm_index: int | None) -> SoakResult:
    samples = [(i * 40_000, int(rss * MIB)) for i, rss in enumerate(rss_mib)]
    return SoakResult("router-all", samples[-1][0], 0, samples, warm_index)


def test_the_fill_before_the_warm_up_ended_is_not_counted_against_flatness() -> None:
    result = _result([80, 90, 100, 108, 110, 109, 111, 110], warm_index=3)
    text = result.render()
    assert "start to end, warm-up included: +30.0 MiB" in text
    assert "within 3.0 MiB" in text and text.endswith("RSS flat (+-20 MiB after warm-up): met")
    # Start, the first sample past each 100,000, and the end.
    assert [done for done, _ in result.checkpoints()] == [0, 120_000, 200_000, 280_000]


def test_growth_after_the_warm_up_is_not_flat_and_an_unfinished_warm_up_is_no_verdict() -> None:
    assert _result([80, 100, 105, 121.5], warm_index=1).render().endswith(": not met")
    text = _result([80, 90, 100], warm_index=None).render()
    assert "RSS flat: not met (the warm-up did not end before the last sample)" in text


def test_feedback_sections_are_found_anywhere_in_the_status() -> None:
    status = {"routes": [{"name": "a", "feedback": {"keep": 10, "remembered": 3}},
                         {"name": "b", "drift": {"keep": 1}}]}
    assert _feedback_sections(status) == [{"keep": 10, "remembered": 3}]
