"""``bench/floor.py``: the router's server and pool with no features, forwarding for real."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.backends import echo_app
from tests.support import ServerThread, free_port, wait_until

pytestmark = pytest.mark.e2e  # starts other processes (tests/conftest.py)

FLOOR = Path(__file__).resolve().parents[2] / "bench" / "floor.py"


@pytest.fixture(scope="module")
def floor_url() -> Iterator[str]:
    with ServerThread(echo_app(name="stable")) as backend:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, str(FLOOR), "--port", str(port), "--backend", backend.url],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: httpx.get(url + "/ready", trust_env=False).status_code == 200)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_get_is_forwarded_with_its_path_and_query(floor_url: str) -> None:
    response = httpx.get(f"{floor_url}/v2/models/m/infer?x=1", trust_env=False)
    assert response.status_code == 200
    seen = response.json()
    assert (seen["method"], seen["raw_path"], seen["query"]) == ("GET", "/v2/models/m/infer", "x=1")
    assert "keep-alive" not in response.headers  # hop-by-hop, dropped on the way back


def test_post_body_arrives_whole(floor_url: str) -> None:
    response = httpx.post(f"{floor_url}/v2/models/m/infer", content=b"{}" * 1024, trust_env=False)
    assert response.status_code == 200
    assert response.json()["body_length"] == 2048
