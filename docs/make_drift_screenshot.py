"""Regenerate docs/drift-panel.png: the dashboard's input drift panel, by headless Chromium.

Run from the repository root: ``.venv/bin/python docs/make_drift_screenshot.py``. It runs
``traffic-router demo --scenario drift-and-truth`` (real model servers, router and labelled
traffic), waits until petal width has drifted and the router said so, and saves a
screenshot of the iris route's drift panel.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from make_screenshot import CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 120.0


def _lines(proc: subprocess.Popen[str], out: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        out.append(line.rstrip("\n"))


def _wait_for(lines: list[str], pattern: str) -> re.Match[str]:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        for line in list(lines):
            if found := re.search(pattern, line):
                return found
        time.sleep(0.2)
    raise SystemExit(f"demo never printed {pattern!r}:\n" + "\n".join(lines))


def main() -> None:
    """Run the demo, wait for the drift, take the screenshot, stop the demo."""
    from playwright.sync_api import sync_playwright

    out = ROOT / "docs" / "drift-panel.png"
    env = {**os.environ, "TRAFFIC_ROUTER_DEMO_FREE_PORTS": "1"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "router", "demo", "--scenario", "drift-and-truth", "--headless"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    threading.Thread(target=_lines, args=(demo, lines), daemon=True).start()
    try:
        admin = _wait_for(lines, r"dashboard\s+(\S+)/").group(1)
        token = _wait_for(lines, r"admin token\s+(\S+)").group(1)
        _wait_for(lines, r" input_drift ")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(admin + "/")
            page.fill("#token-input", token)
            page.click("#token-form button[type=submit]")
            panel = page.locator("section.drift[data-drift-route=iris]")
            panel.locator("figure.drift-feature svg.hist rect").first.wait_for()
            time.sleep(2)
            panel.screenshot(path=str(out))
            browser.close()
        httpx.get(f"{admin}/healthz", timeout=2)
    finally:
        demo.terminate()
        demo.wait(timeout=30)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
