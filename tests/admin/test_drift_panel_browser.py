"""The dashboard's input drift panel in headless Chromium, against a real router whose
inputs moved: the drifting feature comes first, with both histograms drawn."""

from __future__ import annotations

import random
import textwrap
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.admin.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS
from tests.backends import model_app
from tests.support import RouterProcess, ServerThread, wait_until

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"
    ),
    pytest.mark.e2e,  # a router process and a browser
]


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    tmp = tmp_path_factory.mktemp("drift-panel")
    with ServerThread(model_app(1)) as model:
        config = tmp / "router.yaml"
        config.write_text(textwrap.dedent(f"""\
            state: {{store: memory}}
            backends:
              model: {{url: "{model.url}"}}
            routes:
              - name: loans
                match: {{path_prefix: /}}
                strategy: {{type: direct, backend: model}}
                drift: {{reference: first 100, sample: 1, max_psi: 0.2}}
            """))
        with RouterProcess(config) as proc:
            rng = random.Random(3)
            with httpx.Client(base_url=proc.url, timeout=5) as client:
                for n in range(300):
                    shift = 0 if n < 100 else 30
                    row = {"amount": rng.gauss(100 + shift, 10), "rate": rng.uniform(1, 5)}
                    client.post("/predict", content=orjson.dumps(row),
                                headers={"content-type": "application/json"})
            wait_until(lambda: httpx.get(f"{proc.admin_url}/admin/events").json()["events"])
            yield proc


def test_the_panel_shows_the_drifting_feature_first_with_both_histograms(
    router: RouterProcess,
) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page: Any = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(10_000)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(router.admin_url + "/")
            panel = page.locator("section.drift[data-drift-route=loans]")
            panel.locator("figure.drift-feature svg.hist rect").first.wait_for()
            first = panel.locator("figure.drift-feature").first
            assert first.get_attribute("data-feature") == "amount"
            assert first.locator(".bad-text", has_text="PSI").count() == 1
            assert first.locator("rect[data-side=reference]").count() == 10
            assert first.locator("rect[data-side=live]").count() == 10
            rate = panel.locator("figure.drift-feature[data-feature=rate]")
            assert rate.locator(".good-text, .warn-text").count() == 1  # not falsely alarming
            assert "1 drifting" in panel.inner_text()
            assert errors == []
        finally:
            browser.close()
