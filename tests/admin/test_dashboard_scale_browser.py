"""The dashboard at 2,000 routes in a real headless Chromium: under way first, pages, filters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

# ``page`` opens the dashboard of this module's ``router`` in headless Chromium.
from tests.admin.test_dashboard_browser import CHROMIUM, page  # noqa: F401
from tests.admin.test_route_query import SETTLED, scale_config
from tests.support import RouterProcess, router_on_echo_backends

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"
    ),
]


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    with router_on_echo_backends(
        tmp_path_factory.mktemp("dashboard-scale"), scale_config(), ("v1", "v2"), {}
    ) as running:
        yield running


def _names(tab: Any) -> list[str]:
    names: list[str] = tab.eval_on_selector_all(
        "article[data-route]", "cards => cards.map(c => c.dataset.route)"
    )
    return names


def test_routes_under_way_come_first_then_pages_of_the_rest(
    router: RouterProcess, page: Any  # noqa: F811 (the imported fixture)
) -> None:
    page.goto(router.admin_url + "/")
    page.locator("#page-label", has_text="of 2,000").wait_for()
    assert "3 under way" in page.inner_text("#page-label")
    names = _names(page)
    assert names[:3] == ["ramp-a", "ramp-b", "gate"]
    assert names[3:] == [f"model-{n:04d}" for n in range(17)]
    assert page.locator("#page-prev").is_disabled()
    page.click("#page-next")
    page.locator("#page-label", has_text="routes 21\u201340").wait_for()
    assert _names(page)[0] == "model-0017"


def test_filter_by_name_and_by_phase(
    router: RouterProcess, page: Any  # noqa: F811 (the imported fixture)
) -> None:
    page.goto(router.admin_url + "/")
    page.locator("#page-label", has_text="of 2,000").wait_for()
    page.fill("#route-filter", "model-199")
    page.locator("#page-label", has_text="of 6 matching").wait_for()
    assert _names(page) == [f"model-{n}" for n in range(1990, SETTLED)]
    page.fill("#route-filter", "")
    page.select_option("#phase-filter", "waiting")
    page.locator("#page-label", has_text="of 1 matching").wait_for()
    assert _names(page) == ["gate"]
