"""Regenerate docs/dashboard.png: the dashboard with live traffic, taken by headless Chromium.

Run from the repository root: ``.venv/bin/python docs/make_screenshot.py``. It starts three
demo model servers (iris v1, v2, and a v2 that fails 30 % of its requests), a router with a
canary, a failing canary, a shadow and a blue-green route, drives traffic for about half a
minute (some requests with missing values) and saves a full-page screenshot.
"""

from __future__ import annotations

import random
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router.demo.model_server import create_app  # noqa: E402
from tests.support import RouterProcess, ServerThread  # noqa: E402

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TRAFFIC_S = 30.0
APPS = ("", "churn", "fraud", "ranker")


def config(v1: str, v2: str, faulty: str) -> str:
    """Four routes over the same three model servers, told apart by an ``x-app`` header."""
    return textwrap.dedent(f"""\
        state: {{store: memory}}
        backends:
          iris-v1: {{url: "{v1}"}}
          iris-v2: {{url: "{v2}"}}
          iris-v2-rc: {{url: "{faulty}"}}
        routes:
          - name: churn
            match: {{path_prefix: /v2/models/iris, headers: {{x-app: churn}}}}
            strategy:
              type: canary
              stable: iris-v1
              candidate: iris-v2-rc
              steps: [{{weight: 30, hold: 10m}}, {{weight: 100, hold: 10m}}]
              analysis: {{interval: 2s, window: 10s, min_requests: 10, max_error_rate: 0.05,
                          failures_to_act: 2}}
              on_failure: rollback
          - name: fraud
            match: {{path_prefix: /v2/models/iris, headers: {{x-app: fraud}}}}
            strategy: {{type: shadow, primary: iris-v1, shadows: [iris-v2]}}
          - name: ranker
            match: {{path_prefix: /v2/models/iris, headers: {{x-app: ranker}}}}
            strategy: {{type: blue_green, blue: iris-v1, green: iris-v2, active: blue}}
          - name: iris
            match: {{path_prefix: /v2/models/iris}}
            strategy:
              type: canary
              stable: iris-v1
              candidate: iris-v2
              steps:
                - {{weight: 10, hold: 5s}}
                - {{weight: 40, hold: 10m}}
                - {{weight: 100, hold: 5m}}
              sticky: {{header: x-user-id}}
              analysis: {{interval: 2s, window: 20s, min_requests: 10, max_error_rate: 0.05}}
        """)


def drive(url: str, stop: threading.Event) -> None:
    """Iris rows to every route; one request in 25 has a missing feature."""
    rng = random.Random(7)  # noqa: S311 - traffic, not secrets
    with httpx.Client(base_url=url, timeout=5) as client:
        while not stop.is_set():
            row: list[float | None] = [round(rng.uniform(4, 8), 1), round(rng.uniform(2, 4.5), 1),
                                       round(rng.uniform(1, 7), 1), round(rng.uniform(0.1, 2.5), 1)]
            if rng.random() < 0.04:
                row[rng.randrange(4)] = None
            body = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4],
                                "data": row}]}
            app = rng.choice(APPS)
            headers = {"x-user-id": str(rng.randrange(1000))}
            if app:
                headers["x-app"] = app
            client.post("/v2/models/iris/infer", json=body, headers=headers)
            time.sleep(0.02)


def main() -> None:
    """Start everything, drive traffic, take the screenshot."""
    out = ROOT / "docs" / "dashboard.png"
    apps = (create_app("v1"), create_app("v2"), create_app("v2", error_rate=0.3, seed=1))
    with tempfile.TemporaryDirectory() as tmp, ServerThread(apps[0]) as v1, \
            ServerThread(apps[1]) as v2, ServerThread(apps[2]) as faulty:
        path = Path(tmp) / "router.yaml"
        path.write_text(config(v1.url, v2.url, faulty.url))
        with RouterProcess(path) as router:
            spark = "article[data-route=iris] svg.spark polyline"
            capture(router, drive, out, TRAFFIC_S, lambda page: page.wait_for_selector(spark))
    print(f"wrote {out.relative_to(ROOT)}")


def capture(
    router: RouterProcess, drive: Callable[[str, threading.Event], None], out: Path,
    traffic_s: float, ready: Callable[[Any], object], height: int = 1000, full_page: bool = True,
) -> None:
    """Two threads run ``drive`` for ``traffic_s``; then the dashboard, once ``ready(page)``."""
    from playwright.sync_api import sync_playwright

    stop = threading.Event()
    workers = [threading.Thread(target=drive, args=(router.url, stop)) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(traffic_s)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": height})
            page.goto(router.admin_url + "/")
            ready(page)
            time.sleep(2)
            page.screenshot(path=str(out), full_page=full_page)
            browser.close()
    finally:
        stop.set()
        for worker in workers:
            worker.join()


if __name__ == "__main__":
    main()
