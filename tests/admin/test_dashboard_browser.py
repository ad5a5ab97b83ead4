"""The dashboard in a real headless Chromium against a real router process and real backends.

Skipped only when Debian's ``chromium`` is not installed (``make test`` installs it).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from router.demo.llm_server import LlmBehaviour, create_llm_app
from tests.backends import echo_app
from tests.support import RouterProcess, servers, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TOKEN = "s3cret-dashboard-token"
# Chromium reports every 401 answer as a console error; the page answers them with the
# token prompt, which the test checks, so only these lines are expected.
EXPECTED_CONSOLE = "the server responded with a status of 401"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"
    ),
]


def write_config(path: Path, stable: str, candidate: str, llm: str) -> Path:
    """A canary route ramping at 25 % (10-minute hold), a streaming LLM route and a direct
    catch-all, with a token."""
    path.write_text(textwrap.dedent(f"""\
        admin:
          token: ${{ROUTER_ADMIN_TOKEN}}
        state: {{store: memory}}
        backends:
          iris-v1: {{url: "{stable}"}}
          iris-v2: {{url: "{candidate}"}}
          llm: {{url: "{llm}"}}
        routes:
          - name: chat
            match: {{path_prefix: /v1/}}
            strategy: {{type: direct, backend: llm}}
          - name: iris
            match: {{path_prefix: /v2/models/iris}}
            strategy:
              type: canary
              stable: iris-v1
              candidate: iris-v2
              steps:
                - {{weight: 25, hold: 10m}}
                - {{weight: 100, hold: 10m}}
          - name: rest
            match: {{path_prefix: /}}
            strategy: {{type: direct, backend: iris-v1}}
        """))
    return path


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    tmp = tmp_path_factory.mktemp("dashboard")
    llm = create_llm_app(LlmBehaviour(first_token_s=0.01, token_gap_s=0.001))
    with servers(echo_app(name="v1"), echo_app(name="v2"), llm) as (v1, v2, llm_server):
        config = write_config(tmp / "router.yaml", v1.url, v2.url, llm_server.url)
        with RouterProcess(config, env={"ROUTER_ADMIN_TOKEN": TOKEN}) as proc:
            with httpx.Client(base_url=proc.url, timeout=5) as client:
                body = b'{"inputs": [{"name": "x", "datatype": "FP32", "data": [1.0, null]}]}'
                for n in range(40):
                    client.post("/v2/models/iris/infer", content=body, headers={"x-n": str(n)})
                    client.get("/other")
                chat = {"model": "llama-demo", "stream": True, "messages": [],
                        "stream_options": {"include_usage": True}}
                for _ in range(5):
                    client.post("/v1/chat/completions", json=chat).raise_for_status()
            yield proc


@pytest.fixture()
def page(router: RouterProcess) -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.set_default_timeout(10_000)
            tab.console_errors = []
            tab.on("console", lambda m: m.type == "error" and tab.console_errors.append(m.text))
            tab.on("pageerror", lambda e: tab.console_errors.append(f"pageerror: {e}"))
            yield tab
        finally:
            browser.close()


def admin_status(router: RouterProcess) -> dict[str, Any]:
    answer = httpx.get(
        f"{router.admin_url}/admin/status", headers={"authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    answer.raise_for_status()
    data: dict[str, Any] = answer.json()
    return data


def enter_token(page: Any) -> None:
    page.wait_for_selector("#token-panel:not([hidden])")
    page.fill("#token-input", TOKEN)
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("article[data-route=iris]")


def unexpected_console(page: Any) -> list[str]:
    return [m for m in page.console_errors if EXPECTED_CONSOLE not in m]


def test_page_asks_for_the_token_then_shows_routes_and_weights(
    router: RouterProcess, page: Any
) -> None:
    page.goto(router.admin_url + "/")
    assert "token" in page.inner_text("#token-message").lower()
    page.fill("#token-input", "wrong-token")
    page.click("#token-form button[type=submit]")
    # Locators, not wait_for_function: the page's CSP forbids the eval that the latter may use.
    page.locator("#token-message", has_text="refused").wait_for()
    assert page.evaluate("sessionStorage.length") == 0  # a refused token is not kept
    enter_token(page)
    iris = page.locator("article[data-route=iris]")
    assert iris.locator("h2").inner_text() == "iris"
    assert iris.get_attribute("data-phase") == "progressing"
    assert iris.locator(".legend-item[data-variant=stable]").get_attribute("data-weight") == "75"
    assert iris.locator(".legend-item[data-variant=candidate]").get_attribute("data-weight") == "25"
    assert "step 1 of 2" in iris.inner_text()
    rest = page.locator("article[data-route=rest] .legend-item")
    assert rest.get_attribute("data-weight") == "100"
    # Live numbers and input health arrive through /admin/stats.
    iris.locator("td", has_text=re.compile(r"^missing [1-9]")).first.wait_for()
    assert iris.locator("svg.spark polyline, svg.spark circle").count() > 0
    assert TOKEN not in page.url
    assert page.evaluate("Object.values(sessionStorage)") == [TOKEN]
    assert unexpected_console(page) == []


def test_rollback_button_rolls_the_canary_back(router: RouterProcess, page: Any) -> None:
    page.goto(router.admin_url + "/")
    enter_token(page)
    iris = page.locator("article[data-route=iris]")
    iris.locator("button[data-action=rollback]").click()
    confirm = iris.locator("button[data-action=rollback]")
    assert confirm.inner_text() == "Confirm rollback?"
    confirm.click()
    page.wait_for_selector("article[data-route=iris] .result.good")
    assert "rolled_back" in iris.locator(".result").inner_text()
    wait_until(lambda: admin_status(router)["routes"]["iris"]["phase"] == "rolled_back")
    page.wait_for_selector("article[data-route=iris][data-phase=rolled_back].bad")
    assert "rolled back" in page.inner_text("#summary")
    page.wait_for_selector("#events .event.bad")
    assert unexpected_console(page) == []
    # An action that does not apply shows the router's 409 reason (which Chromium logs too).
    rest = page.locator("article[data-route=rest]")
    rest.locator("button[data-action=promote]").click()
    rest.locator("button[data-action=promote]").click()
    page.wait_for_selector("article[data-route=rest] .result.bad")
    assert "refused (409)" in rest.locator(".result").inner_text()
    assert [m for m in unexpected_console(page) if "status of 409" not in m] == []


def test_a_streaming_route_shows_time_to_first_token_and_tokens_per_second(
    router: RouterProcess, page: Any
) -> None:
    page.goto(router.admin_url + "/")
    enter_token(page)
    chat = page.locator("article[data-route=chat]")
    chat.locator("th", has_text="TTFT p99").wait_for()
    assert re.fullmatch(r"[0-9.]+ ms", chat.locator("td.ttft").first.inner_text())
    assert chat.locator("td.tokens").first.inner_text() == "1"  # 5 x 12 tokens over 60 s
    iris = page.locator("article[data-route=iris]")
    assert iris.locator("th", has_text="TTFT").count() == 0  # no streaming there
    assert unexpected_console(page) == []
