"""``bench/route_sweep.py``: valid files under the size limit, traffic to the last route."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from router.config.loader import MAX_CONFIG_BYTES, parse_config
from router.routing.index import RouteIndex
from router.routing.snapshot import build_rules

# bench/ scripts import their siblings by bare name, as when run as `python bench/run.py`.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from route_sweep import SIZES, SweepRow, last_path, render_routes, state_section, targets

URLS = {"model-a": "http://127.0.0.1:8001", "model-b": "http://127.0.0.1:8002"}


@pytest.mark.parametrize("count", SIZES)
def test_each_file_is_valid_and_its_last_route_takes_the_traffic(count: int) -> None:
    text = render_routes(count, URLS, 8080, 9901)
    assert len(text.encode()) <= MAX_CONFIG_BYTES
    config = parse_config(text)
    assert len(config.routes) == count
    index = RouteIndex(build_rules(config))
    assert index.match("GET", last_path(count), {}) == count - 1


def test_a_file_store_sweep_keeps_each_routers_state_apart_from_its_config(
    tmp_path: Path,
) -> None:
    state = state_section("file", tmp_path / "state-100")
    config = parse_config(render_routes(100, URLS, 8080, 9901, state=state))
    assert config.state.store == "file"
    assert Path(config.state.path) == tmp_path / "state-100" / "state" / "state.json"
    assert parse_config(render_routes(1, URLS, 8080, 9901)).state.store == "memory"


def test_an_edited_file_differs_in_its_first_route_only() -> None:
    before = render_routes(100, URLS, 8080, 9901, weight=20).splitlines()
    after = render_routes(100, URLS, 8080, 9901, weight=20, first_weight=30).splitlines()
    assert [n for n, (a, b) in enumerate(zip(before, after, strict=True)) if a != b] == [7]


def _row(
    routes: int, rps: float, rss: float, reload_s: float | None, stall_ms: float | None = None
) -> SweepRow:
    return SweepRow(routes, 0, rps=[rps], cpu_us=[100.0], rss_mib=rss, reload_all_s=reload_s,
                    reloading_ms=None if stall_ms is None else (1.0, stall_ms))


@pytest.mark.parametrize(
    ("large", "met"),
    [
        (_row(10_000, 9_000, 110.0, 1.5, 50.0), [True, True, True, True]),
        (_row(10_000, 8_900, 110.1, 2.1, 50.1), [False, False, False, False]),
        (_row(10_000, 9_500, 60.0, None), [True, True, False, False]),
    ],
)
def test_targets_are_met_or_not(large: SweepRow, met: list[bool]) -> None:
    small = _row(1, 10_000, 50.0, 0.1)
    assert [ok for _, _, ok in targets([small, large])] == met
