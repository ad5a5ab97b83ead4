"""The admin API (docs/http.md) against a real router process: guards, codes, shapes, secrets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    ROOT,
    RouterProcess,
    free_port,
    router_on_echo_backends,
    shared_client,
    wait_until,
)

pytestmark = pytest.mark.e2e  # starts other processes (tests/conftest.py)

TOKEN = "adm1n-T0ken-9f3c2e7d51"
WRONG = "wrong-t0ken-b4d1a2c3e5"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HTTP = shared_client()

CONFIG = """
admin: {{token: "${{ROUTER_ADMIN_TOKEN}}"}}
state: {{store: memory}}
backends:
  iris-v1: {{url: "{v1}"}}
  iris-v2: {{url: "{v2}"}}
routes:
  - name: iris
    match: {{path_prefix: /v2/models/iris}}
    strategy:
      type: canary
      stable: iris-v1
      candidate: iris-v2
      steps:
        - {{weight: 10, hold: 1h}}
        - {{weight: 50, hold: 1h}}
      analysis: {{interval: 1h, min_requests: 1000000, max_error_rate: 0.5}}
  - name: ops
    match: {{path_prefix: /ops}}
    strategy:
      type: canary
      stable: iris-v1
      candidate: iris-v2
      steps:
        - {{weight: 20, hold: 1h}}
        - {{weight: 60, hold: manual}}
  - name: legacy
    match: {{path_prefix: /}}
    strategy: {{type: direct, backend: iris-v1}}
"""

# The keys each object must have, and their types (nested dicts are structures).
NUMBER = (int, float)
GOLDEN: dict[str, Any] = {
    "config": {
        "path": str,
        "version": str,
        "last_reload": {"ok": bool, "at": str, "error": type(None)},
    },
    "routes": {
        "iris": {
            "strategy": str,
            "phase": str,
            "weights": {"stable": NUMBER, "candidate": NUMBER},
            "backends": {"stable": str, "candidate": str},
            "step": int,
            "steps": int,
            "since": str,
            "analysis": {"last": (dict, type(None)), "consecutive_failures": int},
        },
        "legacy": {
            "strategy": str,
            "phase": str,
            "weights": {"default": NUMBER},
            "backends": {"default": str},
        },
    },
    "backends": {
        "iris-v1": {"url": str, "healthy": bool},
        "iris-v2": {"url": str, "healthy": bool},
    },
}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _shape_errors(golden: dict[str, Any], actual: Any, place: str = "") -> list[str]:
    """Where ``actual`` lacks a golden key or has the wrong type."""
    if not isinstance(actual, dict):
        return [f"{place or '<root>'}: expected an object, got {type(actual).__name__}"]
    errors = []
    for key, expected in golden.items():
        where = f"{place}.{key}" if place else key
        if key not in actual:
            errors.append(f"{where}: missing")
        elif isinstance(expected, dict):
            errors += _shape_errors(expected, actual[key], where)
        elif isinstance(actual[key], bool) and expected in (int, NUMBER):
            errors.append(f"{where}: expected a number, got a bool")
        elif not isinstance(actual[key], expected):
            errors.append(f"{where}: expected {expected}, got {type(actual[key]).__name__}")
    return errors


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("admin")
    env = {"ROUTER_ADMIN_TOKEN": TOKEN}
    with router_on_echo_backends(tmp, CONFIG, ("iris-v1", "iris-v2"), env) as router:
        yield {"router": router, "config": router.config_path, "tmp": tmp}


def _auth_failures(router: RouterProcess) -> float:
    text = HTTP.get(f"{router.admin_url}/metrics").text
    match = re.search(r"^router_admin_auth_failures_total ([0-9.e+]+)$", text, re.M)
    assert match, "router_admin_auth_failures_total missing from /metrics"
    return float(match.group(1))


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/admin/status", {}),
        ("GET", "/admin/status", {"Authorization": f"Bearer {WRONG}"}),
        ("GET", "/admin/status", {"Authorization": TOKEN}),
        ("GET", "/admin/events", {"Authorization": f"Basic {TOKEN}"}),
        ("POST", "/admin/routes/iris/rollback", {}),
        ("POST", "/admin/reload", {"Authorization": f"Bearer {TOKEN}x"}),
    ],
    ids=["no-token", "wrong-token", "no-bearer-prefix", "basic-scheme", "action", "reload-longer"],
)
def test_401_without_the_right_token_is_counted(
    stack: dict[str, Any], method: str, path: str, headers: dict[str, str]
) -> None:
    router: RouterProcess = stack["router"]
    before = _auth_failures(router)
    response = HTTP.request(method, f"{router.admin_url}{path}", headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "unauthorized"
    assert _auth_failures(router) == before + 1


def test_the_right_token_and_the_open_endpoints(stack: dict[str, Any]) -> None:
    router: RouterProcess = stack["router"]
    assert HTTP.get(f"{router.admin_url}/admin/status", headers=AUTH).status_code == 200
    for path in ("/healthz", "/readyz", "/metrics"):
        assert HTTP.get(f"{router.admin_url}{path}").status_code == 200, path


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("evil.example", 403),
        ("evil.example:80", 403),
        ("127.0.0.1.nip.io", 403),
        ("localhost", 200),
        ("127.0.0.1:9901", 200),
        ("[::1]:9901", 200),
    ],
    ids=["evil", "evil-port", "rebinding-name", "localhost", "ipv4", "ipv6"],
)
def test_loopback_host_check(stack: dict[str, Any], host: str, expected: int) -> None:
    router: RouterProcess = stack["router"]
    for path in ("/admin/status", "/metrics", "/"):
        response = HTTP.get(f"{router.admin_url}{path}", headers={**AUTH, "Host": host})
        assert response.status_code == expected, (path, response.text)


@pytest.mark.parametrize(
    ("method", "path", "expected", "error"),
    [
        ("POST", "/admin/routes/nosuch/rollback", 404, "unknown_route"),
        ("POST", "/admin/routes/iris/explode", 404, None),
        ("GET", "/admin/routes/iris/rollback", 405, None),
        ("PUT", "/admin/routes/iris/pause", 405, None),
        ("GET", "/admin/reload", 405, None),
        ("POST", "/admin/routes/legacy/promote", 409, "action_not_applicable"),
        ("POST", "/admin/routes/legacy/rollback", 409, "action_not_applicable"),
    ],
    ids=[
        "unknown-route",
        "unknown-action",
        "get-action",
        "put-action",
        "get-reload",
        "promote-direct",
        "rollback-direct",
    ],
)
def test_action_status_codes(
    stack: dict[str, Any], method: str, path: str, expected: int, error: str | None
) -> None:
    router: RouterProcess = stack["router"]
    response = HTTP.request(method, f"{router.admin_url}{path}", headers=AUTH)
    assert response.status_code == expected, response.text
    if error is not None:
        body = response.json()
        assert body["error"] == error
        assert body["detail"]


def test_status_matches_spec_shape(stack: dict[str, Any]) -> None:
    router: RouterProcess = stack["router"]
    status = HTTP.get(f"{router.admin_url}/admin/status", headers=AUTH).json()
    assert _shape_errors(GOLDEN, status) == []
    assert re.fullmatch(r"[0-9a-f]{8}", status["config"]["version"])
    assert status["config"]["last_reload"]["ok"] is True
    assert ISO_UTC.match(status["config"]["last_reload"]["at"])
    iris = status["routes"]["iris"]
    assert iris["strategy"] == "canary"
    assert (iris["phase"], iris["step"], iris["steps"]) == ("progressing", 0, 2)
    assert iris["weights"] == {"stable": 90, "candidate": 10}
    assert iris["backends"] == {"stable": "iris-v1", "candidate": "iris-v2"}
    assert ISO_UTC.match(iris["since"])
    assert iris["analysis"] == {"last": None, "consecutive_failures": 0}
    legacy = status["routes"]["legacy"]
    assert (legacy["strategy"], legacy["phase"], legacy["weights"]) == (
        "direct",
        "steady",
        {"default": 100},
    )
    assert status["backends"]["iris-v1"]["url"].startswith("http://127.0.0.1:")


def test_rollback_is_idempotent_and_logged(stack: dict[str, Any]) -> None:
    router: RouterProcess = stack["router"]
    url = f"{router.admin_url}/admin/routes/iris/rollback"
    first = HTTP.post(url, headers=AUTH, json={"reason": "p99 too high"})
    second = HTTP.post(url, headers=AUTH, json={"reason": "again"})
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    for response in (first, second):
        status = response.json()["status"]
        assert status["phase"] == "rolled_back"
        assert status["weights"] == {"stable": 100, "candidate": 0}
    assert (
        HTTP.post(f"{router.admin_url}/admin/routes/iris/promote", headers=AUTH).status_code == 409
    )
    seen = {HTTP.get(f"{router.url}/v2/models/iris/infer").json()["backend"] for _ in range(30)}
    assert seen == {"iris-v1"}
    assert '"action":"rollback"' in router.logs() and "p99 too high" in router.logs()


def test_events_newest_first_with_limit(stack: dict[str, Any]) -> None:
    router: RouterProcess = stack["router"]
    base = f"{router.admin_url}/admin/routes/ops"
    for action in ("pause", "resume", "pause", "resume"):
        response = HTTP.post(f"{base}/{action}", headers=AUTH, json={"reason": f"r-{action}"})
        assert response.status_code == 200, response.text
    events = HTTP.get(f"{router.admin_url}/admin/events?limit=3", headers=AUTH).json()["events"]
    assert len(events) == 3
    assert [(e["event"], e["route"]) for e in events] == [
        ("resume", "ops"),
        ("pause", "ops"),
        ("resume", "ops"),
    ]
    times = [e["at"] for e in events]
    assert times == sorted(times, reverse=True)
    assert (
        HTTP.get(f"{router.admin_url}/admin/events?limit=1", headers=AUTH).json()["events"]
        == events[:1]
    )


def test_promote_and_pause_on_a_ramp(stack: dict[str, Any]) -> None:
    router: RouterProcess = stack["router"]
    base = f"{router.admin_url}/admin/routes/ops"
    promoted = HTTP.post(f"{base}/promote", headers=AUTH)
    assert promoted.status_code == 200, promoted.text
    assert (promoted.json()["status"]["phase"], promoted.json()["status"]["step"]) == ("waiting", 1)
    assert promoted.json()["status"]["weights"]["candidate"] == 60
    done = HTTP.post(f"{base}/promote", headers=AUTH).json()["status"]
    assert done["phase"] == "promoted"
    assert HTTP.post(f"{base}/pause", headers=AUTH).status_code == 409
    assert HTTP.post(f"{base}/promote", headers=AUTH).status_code == 200  # idempotent


def _flushed(router: RouterProcess, marker: str) -> str:
    """The captured output once a request to ``/marker`` (sent last) has been logged.

    Request lines are written in batches, in order: the marker's line comes last.
    """
    assert HTTP.get(f"{router.url}/{marker}").status_code == 200
    return str(wait_until(lambda: f'"path":"/{marker}"' in router.logs() and router.logs()))


def test_token_never_in_logs(stack: dict[str, Any]) -> None:
    router: RouterProcess = stack["router"]
    for token in (WRONG, TOKEN + "0"):
        response = HTTP.get(
            f"{router.admin_url}/admin/status", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401
    for path in (f"/v2/models/iris/infer?token={TOKEN}", f"/anything?token={TOKEN}&x=1"):
        response = HTTP.get(
            f"{router.url}{path}", headers={"Authorization": f"Bearer {TOKEN}", "X-Api-Key": TOKEN}
        )
        assert response.status_code == 200
    HTTP.post(f"{router.admin_url}/admin/reload", headers=AUTH)
    logs = _flushed(router, "marker-1")
    assert '"path":"/anything"' in logs  # the proxied requests were logged...
    assert TOKEN not in logs  # ...without the token
    assert WRONG not in logs
    assert "Bearer adm" not in logs


def test_token_in_a_request_path_is_redacted(stack: dict[str, Any]) -> None:
    """Runs after test_token_never_in_logs: a token pasted into a URL path is masked too."""
    router: RouterProcess = stack["router"]
    assert HTTP.get(f"{router.url}/keys/{TOKEN}/check").status_code == 200
    logs = _flushed(router, "marker-2")
    assert '"path":"/keys/' in logs
    assert TOKEN not in logs


def test_refuses_off_loopback_admin_without_token(stack: dict[str, Any]) -> None:
    tmp: Path = stack["tmp"]
    config = tmp / "open.yaml"
    config.write_text(
        textwrap.dedent(
            """
            state: {store: memory}
            backends: {b: {url: "http://127.0.0.1:9"}}
            routes: [{name: r, match: {path_prefix: /}, strategy: {type: direct, backend: b}}]
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "ROUTER_ADMIN_TOKEN"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "router",
            "serve",
            "--config",
            str(config),
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--admin-listen",
            f"0.0.0.0:{free_port()}",
            "--log-format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode != 0
    assert "refusing to start" in result.stderr
    assert "token" in result.stderr


def test_token_change_on_reload(stack: dict[str, Any]) -> None:
    """Runs last: a new token in the file replaces the old one at once, and is not logged."""
    router: RouterProcess = stack["router"]
    config: Path = stack["config"]
    new = "n3w-T0ken-77aa01"
    config.write_text(config.read_text().replace('"${ROUTER_ADMIN_TOKEN}"', f'"{new}"'))
    new_auth = {"Authorization": f"Bearer {new}"}

    def switched() -> bool:
        return HTTP.get(f"{router.admin_url}/admin/status", headers=new_auth).status_code == 200

    wait_until(switched, timeout=3)
    assert HTTP.get(f"{router.admin_url}/admin/status", headers=AUTH).status_code == 401
    HTTP.get(f"{router.url}/x?token={new}", headers=new_auth)
    assert new not in _flushed(router, "marker-3")
