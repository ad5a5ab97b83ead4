"""Hostile input on the admin listener of a real router with no token: cross-site actions,
bodies, heads (docs/faults.md).

A browser page on another site could POST ``text/plain`` or an empty body to an action (issue
14, item 4); the admin listener had no header deadline, no header cap and no body cap (item 7).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from router.admin.guard import origin_matches_host
from tests.raw_http import assert_refused, connect, exchange, read_until_closed
from tests.support import RouterProcess, router_on_echo_backends, shared_client

pytestmark = pytest.mark.e2e  # starts other processes (tests/conftest.py)

HTTP = shared_client()

CONFIG = """
state: {{store: memory}}
proxy: {{header_timeout: 1s, max_header_bytes: 8KiB}}
backends:
  v1: {{url: "{v1}"}}
  v2: {{url: "{v2}"}}
routes:
  - name: iris
    match: {{path_prefix: /}}
    strategy:
      type: canary
      stable: v1
      candidate: v2
      steps: [{{weight: 10, hold: 1h}}, {{weight: 50, hold: 1h}}]
"""


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    tmp = tmp_path_factory.mktemp("guard")
    with router_on_echo_backends(tmp, CONFIG, ("v1", "v2"), {}) as router:
        yield router


def _phase(router: RouterProcess) -> str:
    phase: str = HTTP.get(f"{router.admin_url}/admin/status").json()["routes"]["iris"]["phase"]
    return phase


def _origin(router: RouterProcess) -> str:
    return f"http://127.0.0.1:{router.admin_port}"


CROSS_SITE: list[tuple[str, dict[str, str], bytes]] = [
    ("rollback", {"Origin": "http://evil.example", "Content-Type": "text/plain"}, b"x"),
    ("rollback", {"Origin": "http://evil.example", "Content-Type": "application/json"}, b"{}"),
    ("resume", {"Origin": "null"}, b""),
    ("promote", {"Sec-Fetch-Site": "cross-site"}, b""),
    ("pause", {"Sec-Fetch-Site": "same-site"}, b""),
    ("rollback", {"Origin": "http://127.0.0.1:1"}, b""),
]


@pytest.mark.parametrize(
    ("action", "headers", "body"),
    CROSS_SITE,
    ids=["text-plain", "json", "origin-null", "cross-site", "same-site", "other-port"],
)
def test_cross_site_actions_are_refused(
    router: RouterProcess, action: str, headers: dict[str, str], body: bytes
) -> None:
    url = f"{router.admin_url}/admin/routes/iris/{action}"
    response = HTTP.post(url, headers=headers, content=body)
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "forbidden"
    assert _phase(router) == "progressing"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/plain", b'{"reason": "x"}'), ("application/x-www-form-urlencoded", b"reason=x"),
     ("", b"{}")],
    ids=["text-plain", "form", "none"],
)
def test_a_body_that_is_not_json_gets_415(
    router: RouterProcess, content_type: str, body: bytes
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = HTTP.post(
        f"{router.admin_url}/admin/routes/iris/rollback", headers=headers, content=body
    )
    assert response.status_code == 415, response.text
    assert response.json()["error"] == "unsupported_media_type"
    assert _phase(router) == "progressing"


def test_same_origin_json_and_empty_bodies_act(router: RouterProcess) -> None:
    base = f"{router.admin_url}/admin/routes/iris"
    paused = HTTP.post(
        f"{base}/pause",
        headers={"Origin": _origin(router), "Sec-Fetch-Site": "same-origin"},
        json={"reason": "from the dashboard"},
    )
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"]["phase"] == "paused"
    resumed = HTTP.post(
        f"{base}/resume", headers={"Content-Type": "application/json; charset=utf-8"}, content=b""
    )
    assert resumed.status_code == 200, resumed.text
    assert _phase(router) == "progressing"


def test_a_body_over_64_kib_gets_413_before_it_is_read(router: RouterProcess) -> None:
    head = (
        b"POST /admin/nosuch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 400000000\r\n\r\n"
    )
    responses, _ = exchange(router.admin_port, head)
    assert [r.status for r in responses] == [413]
    assert responses[0].json()["error"] == "body_too_large"
    assert responses[0].headers["connection"] == "close"


def test_a_chunked_body_over_64_kib_gets_413(router: RouterProcess) -> None:
    chunk = b"%x\r\n%s\r\n" % (16 * 1024, b" " * 16 * 1024)
    request = (
        b"POST /admin/routes/iris/rollback HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 5
    )
    responses, _ = exchange(router.admin_port, request)
    assert [r.status for r in responses] == [413]
    assert _phase(router) == "progressing"


def test_the_admin_listener_has_the_header_deadline(router: RouterProcess) -> None:
    with connect(router.admin_port) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        data = read_until_closed(conn, timeout=10)  # raises if the router never closes it
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]


def test_the_admin_listener_has_the_header_cap(router: RouterProcess) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    responses, _ = exchange(router.admin_port, head)
    assert len(responses) == 1
    assert_refused(responses[0], 431, "headers_too_large")


def test_gets_are_untouched(router: RouterProcess) -> None:
    response = HTTP.get(
        f"{router.admin_url}/admin/status", headers={"Origin": "http://evil.example"}
    )
    assert response.status_code == 200  # reading is not acting; the loopback Host check holds
    body: dict[str, Any] = response.json()
    assert "iris" in body["routes"]


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("http://127.0.0.1:9901", "127.0.0.1:9901", True),
        ("http://LOCALHOST", "localhost:80", True),
        ("https://localhost", "localhost:443", True),
        ("http://[::1]:9901", "[::1]:9901", True),
        ("http://localhost:9901", "127.0.0.1:9901", False),
        ("http://127.0.0.1:9902", "127.0.0.1:9901", False),
        ("https://127.0.0.1:9901", "127.0.0.1:443", False),
        ("null", "127.0.0.1:9901", False),
        ("file://", "127.0.0.1:9901", False),
        ("http://127.0.0.1:9901/path", "127.0.0.1:9901", False),
        ("http://127.0.0.1:9901", "", False),
        ("http://127.0.0.1:99999", "127.0.0.1:99999", False),
    ],
)
def test_origin_matches_host(origin: str, host: str, same: bool) -> None:
    assert origin_matches_host(origin, host) is same
