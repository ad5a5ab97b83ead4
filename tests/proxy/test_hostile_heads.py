"""Hostile heads through a real router: ``Host`` as strict as nginx, ``X-Request-Id`` byte for
byte (docs/faults.md).

Issue 14, item 8: two Host headers, no Host and ``Host: evil .com`` were all answered 200; an
``X-Request-Id`` with a non-ASCII byte came back re-encoded; ``X-Forwarded-Host`` took the last
Host while ``preserve_host`` sent the first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.raw_http import Response, assert_refused, exchange, parse_responses
from tests.support import RouterProcess, router_on_echo_backends

pytestmark = pytest.mark.e2e  # starts other processes (tests/conftest.py)

CONFIG = """
state: {{store: memory}}
proxy: {{preserve_host: true}}
backends:
  a: {{url: "{v1}"}}
  b: {{url: "{v2}"}}
routes:
  - {{name: all, match: {{path_prefix: /}}, strategy: {{type: direct, backend: a}}}}
"""


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    tmp = tmp_path_factory.mktemp("heads")
    with router_on_echo_backends(tmp, CONFIG, ("a", "b"), {}) as router:
        yield router


def _one(router: RouterProcess, head: bytes) -> Response:
    responses, raw = exchange(router.port, head)
    assert len(responses) == 1, raw[:300]
    return responses[0]


@pytest.mark.parametrize(
    "lines",
    [
        [b"Host: a.example", b"Host: b.example"],
        [],
        [b"Host: evil .com"],
        [b"Host: a.example/path"],
        [b"Host: user@a.example"],
        [b"Host: a.example:80:81"],
        [b"Host: [::1"],
        [b"Host: "],
    ],
    ids=["two", "none", "space", "slash", "userinfo", "two-ports", "open-bracket", "empty"],
)
def test_bad_host_gets_400(router: RouterProcess, lines: list[bytes]) -> None:
    head = b"\r\n".join([b"GET /x HTTP/1.1", *lines, b"Connection: close", b"", b""])
    assert_refused(_one(router, head), 400, "bad_request")


@pytest.mark.parametrize(
    ("version", "lines"),
    [
        (b"HTTP/1.1", [b"Host: a.example:8080"]),
        (b"HTTP/1.1", [b"Host: [::1]:8080"]),
        (b"HTTP/1.1", [b"Host: 127.0.0.1"]),
        (b"HTTP/1.0", []),
    ],
    ids=["name-port", "ipv6", "ipv4", "http10-without-host"],
)
def test_good_host_is_served(router: RouterProcess, version: bytes, lines: list[bytes]) -> None:
    head = b"\r\n".join([b"GET /x " + version, *lines, b"Connection: close", b"", b""])
    response = _one(router, head)
    assert response.status == 200, response.body


def _echoed(router: RouterProcess, *lines: bytes) -> tuple[Response, dict[str, list[str]]]:
    head = b"\r\n".join([b"GET /x HTTP/1.1", *lines, b"Connection: close", b"", b""])
    response = _one(router, head)
    assert response.status == 200, response.body
    seen: dict[str, list[str]] = {}
    for name, value in json.loads(response.body)["headers"]:
        seen.setdefault(name, []).append(value)
    return response, seen


@pytest.mark.parametrize(
    "sent",
    [b"req-\xe9t\xe9-42", b"no\xa0break\xad\x85", b"r" * 1000, b"a b\tc"],
    ids=["latin-1", "unprintable-latin-1", "1000-bytes", "spaces"],
)
def test_request_id_comes_back_byte_for_byte(router: RouterProcess, sent: bytes) -> None:
    _, raw = exchange(
        router.port,
        b"GET /x HTTP/1.1\r\nHost: a.example\r\nX-Request-Id: " + sent
        + b"\r\nConnection: close\r\n\r\n",
    )
    assert b"\r\nx-request-id: " + sent + b"\r\n" in raw
    response = parse_responses(raw)[0]
    upstream: dict[str, Any] = dict(json.loads(response.body)["headers"])
    assert upstream["x-request-id"].encode("latin-1") == sent  # and so it went upstream


def test_forwarded_host_is_the_host_preserve_host_sends(router: RouterProcess) -> None:
    _, seen = _echoed(router, b"Host: models.example:8443")
    assert seen["host"] == ["models.example:8443"]
    assert seen["x-forwarded-host"] == ["models.example:8443"]
