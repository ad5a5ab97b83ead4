"""The analysis on the dashboard, in headless Chromium against a real router with traffic:
each check's verdict and explanation, and the evidence drawn against its boundary as it
builds up; the shadow-first stage's progress."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from tests.admin import test_dashboard_browser as dashboard
from tests.backends import echo_app
from tests.rollout_support import Load
from tests.support import RouterProcess, ServerThread

pytestmark = dashboard.pytestmark
page = dashboard.page  # the headless Chromium tab, on this module's ``router``


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    """A sequentially judged canary and a canary still in its shadow-first stage."""
    tmp = tmp_path_factory.mktemp("judging-dashboard")
    with ServerThread(echo_app(name="v1")) as v1, ServerThread(echo_app(name="v2")) as v2:
        config = tmp / "router.yaml"
        config.write_text(textwrap.dedent(f"""\
            admin:
              token: ${{ROUTER_ADMIN_TOKEN}}
            state: {{store: memory}}
            backends:
              iris-v1: {{url: "{v1.url}"}}
              iris-v2: {{url: "{v2.url}"}}
            routes:
              - name: iris
                match: {{path_prefix: /iris}}
                strategy:
                  type: canary
                  stable: iris-v1
                  candidate: iris-v2
                  weight: 50
                  analysis: {{judge: sequential, interval: 1s, max_error_rate_increase: 0.05}}
              - name: first
                match: {{path_prefix: /first}}
                strategy:
                  type: canary
                  stable: iris-v1
                  candidate: iris-v2
                  steps: [{{weight: 10, hold: 1m}}]
                  shadow_first: {{min_compared: 100000}}
            """))
        with RouterProcess(config, env={"ROUTER_ADMIN_TOKEN": dashboard.TOKEN}) as proc:
            yield proc


def test_checks_show_their_evidence_against_the_boundary(router: RouterProcess, page: Any) -> None:
    with Load(router.url + "/iris", workers=2, gap_s=0.02):
        page.goto(router.admin_url + "/")
        dashboard.enter_token(page)
        check = page.locator(
            "article[data-route=iris] .check[data-rule=error_rate_increase]"
        )
        check.wait_for()
        assert check.locator("svg.evidence line.boundary").count() == 1
        # Several checks later the interval of the difference is drawn as a band.
        check.locator("svg.evidence polygon.band").wait_for(timeout=30_000)
        text = check.locator(".check-text").inner_text()
        assert text.startswith("error rate: candidate")
        assert "at 95% confidence" in text
        assert check.get_attribute("data-outcome") in ("hold", "pass")
    first = page.locator("article[data-route=first]")
    assert first.get_attribute("data-phase") == "shadowing"
    assert "shadow first · compared 0 of 100000" in first.locator(".shadow-first").inner_text()
    assert dashboard.unexpected_console(page) == []
