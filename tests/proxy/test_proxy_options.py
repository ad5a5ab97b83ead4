"""The ``proxy`` options and health-driven 503s (docs/http.md), against a real router process."""

from __future__ import annotations

import json
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import echo_app
from tests.support import RouterProcess, ServerThread, free_port, wait_until

pytestmark = pytest.mark.e2e  # starts other processes (tests/conftest.py)


def _config(echo_url: str, dead_url: str, max_header_bytes: str) -> str:
    return textwrap.dedent(
        f"""
        state: {{store: memory}}
        proxy:
          preserve_host: true
          trusted_proxies: [127.0.0.0/8]
          max_header_bytes: {max_header_bytes}
        backends:
          echo: {{url: "{echo_url}"}}
          dead:
            url: "{dead_url}"
            health: {{path: /health, interval: 200ms, timeout: 200ms, unhealthy_after: 1}}
        routes:
          - name: down
            match: {{path_prefix: /down}}
            strategy: {{type: direct, backend: dead}}
          - name: echo
            match: {{path_prefix: /}}
            strategy: {{type: direct, backend: echo}}
        """
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("options")
    with ServerThread(echo_app(None, "echo")) as echo:
        dead_url = f"http://127.0.0.1:{free_port()}"
        config = tmp / "router.yaml"
        config.write_text(_config(echo.url, dead_url, "16KiB"))
        with RouterProcess(config) as router:
            yield {"router": router, "config": config, "echo": echo.url, "dead": dead_url}


def _head(port: int, header_bytes: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"GET /x HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * header_bytes
            + b"\r\nConnection: close\r\n\r\n"
        )
        return sock.recv(200)


def test_preserve_host_sends_the_clients_host(stack: dict[str, Any]) -> None:
    seen = httpx.get(f"{stack['router'].url}/x", headers={"Host": "models.example"}).json()
    headers = dict(seen["headers"])
    assert headers["host"] == "models.example"
    assert headers["x-forwarded-host"] == "models.example"


def test_a_trusted_proxys_forwarded_for_is_the_client(stack: dict[str, Any]) -> None:
    router: RouterProcess = stack["router"]
    response = httpx.get(f"{router.url}/who", headers={"X-Forwarded-For": "6.6.6.6"})
    # Appended to, never replaced: the backend sees the whole chain.
    assert dict(response.json()["headers"])["x-forwarded-for"] == "6.6.6.6, 127.0.0.1"
    request_id = response.headers["x-request-id"]

    def logged() -> dict[str, Any] | None:
        for line in router.logs().splitlines():
            if request_id in line and '"event":"request"' in line:
                record: dict[str, Any] = json.loads(line)
                return record
        return None

    assert wait_until(logged)["client"] == "6.6.6.6"  # the peer 127.0.0.1 is a trusted proxy


def test_a_backend_down_by_health_checks_gets_503_with_retry_after(
    stack: dict[str, Any],
) -> None:
    router: RouterProcess = stack["router"]
    wait_until(
        lambda: not httpx.get(f"{router.admin_url}/admin/status").json()["backends"]["dead"][
            "healthy"
        ],
        timeout=5,
    )
    response = httpx.get(f"{router.url}/down")
    assert response.status_code == 503
    assert response.json()["error"] == "no_healthy_backend"
    assert response.headers["retry-after"] == "1"


def test_a_reloaded_header_cap_applies_to_new_connections(stack: dict[str, Any]) -> None:
    router: RouterProcess = stack["router"]
    config: Path = stack["config"]
    assert _head(router.port, 12_000).startswith(b"HTTP/1.1 200")
    config.write_text(_config(stack["echo"], stack["dead"], "8KiB"))
    assert httpx.post(f"{router.admin_url}/admin/reload").json()["ok"] is True
    wait_until(lambda: _head(router.port, 12_000).startswith(b"HTTP/1.1 431"), timeout=3)
    assert _head(router.port, 4_000).startswith(b"HTTP/1.1 200")
