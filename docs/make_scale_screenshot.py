"""Regenerate docs/dashboard-10k-routes.png: the dashboard of a router with 10,000 routes.

Run from the repository root: ``.venv/bin/python docs/make_scale_screenshot.py``. It starts
two demo model servers and a router with 9,997 settled canary routes (a fixed 10 %, one
line each) followed by three routes under way, last in the file: a ramp with analysis,
a ramp waiting at a manual step and a shadow. It drives traffic to those three for about
twenty seconds, then saves what the dashboard's first page shows.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from make_screenshot import ROOT, capture

from router.demo.model_server import create_app
from tests.support import RouterProcess, ServerThread

ROUTES = 10_000
ACTIVE = ("iris", "churn", "fraud")
TRAFFIC_S = 20.0
BODY = {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4],
                    "data": [5.1, 3.5, 1.4, 0.2]}]}


def config(v1: str, v2: str) -> str:
    """Settled routes first, the three under way last (the dashboard still lists them first)."""
    lines = ["state: {store: memory}", "backends:", f"  a: {{url: '{v1}'}}",
             f"  b: {{url: '{v2}'}}", "routes:"]
    # /m<n>/, not /v2/models/m<n>/: 10,000 routes must fit in the 1 MiB file limit.
    lines += [f"- {{name: m{n},match: {{path_prefix: /m{n}/}},"
              "strategy: {type: canary,stable: a,candidate: b,weight: 10}}"
              for n in range(ROUTES - len(ACTIVE))]
    lines += [
        "- {name: iris, match: {path_prefix: /v2/models/iris/}, strategy: {type: canary, "
        "stable: a, candidate: b, steps: [{weight: 25, hold: 10m}, {weight: 100, hold: 10m}], "
        "analysis: {interval: 2s, window: 20s, min_requests: 10, max_error_rate: 0.05}}}",
        "- {name: churn, match: {path_prefix: /v2/models/churn/}, strategy: {type: canary, "
        "stable: a, candidate: b, steps: [{weight: 50, hold: manual}]}}",
        "- {name: fraud, match: {path_prefix: /v2/models/fraud/}, strategy: {type: shadow, "
        "primary: a, shadows: [b]}}",
    ]
    return "\n".join(lines) + "\n"


def drive(url: str, stop: threading.Event) -> None:
    """Requests to the routes under way."""
    rng = random.Random(3)  # noqa: S311 - traffic, not secrets
    with httpx.Client(base_url=url, timeout=5) as client:
        while not stop.is_set():
            client.post(f"/v2/models/{rng.choice(ACTIVE)}/infer", json=BODY)
            time.sleep(0.01)


def main() -> None:
    """Start everything, drive traffic, take the screenshot."""
    out = ROOT / "docs" / "dashboard-10k-routes.png"
    with tempfile.TemporaryDirectory() as tmp, ServerThread(create_app("v1")) as v1, \
            ServerThread(create_app("v2")) as v2:
        path = Path(tmp) / "router.yaml"
        path.write_text(config(v1.url, v2.url))
        with RouterProcess(path) as router:

            def ready(page: Any) -> None:
                page.locator("#page-label", has_text="of 10,000").wait_for(timeout=30_000)
                page.wait_for_selector("article[data-route=iris] svg.spark polyline")

            capture(router, drive, out, TRAFFIC_S, ready, height=2200, full_page=False)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
