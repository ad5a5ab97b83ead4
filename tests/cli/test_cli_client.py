"""The CLI's client commands (README.md#cli) run as real processes against a real router."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, free_port, router_on_echo_backends, shared_client

pytestmark = pytest.mark.e2e  # starts other processes (tests/conftest.py)

TOKEN = "cl1-T0ken-5e8a0c7b"
HTTP = shared_client()

CONFIG = """
admin: {{token: "${{ROUTER_ADMIN_TOKEN}}"}}
state: {{store: memory}}
backends:
  v1: {{url: "{v1}"}}
  v2: {{url: "{v2}"}}
routes:
  - name: iris
    match: {{path_prefix: /iris}}
    strategy:
      type: canary
      stable: v1
      candidate: v2
      steps: [{{weight: 10, hold: 1h}}, {{weight: 50, hold: 1h}}]
  - name: ramp
    match: {{path_prefix: /ramp}}
    strategy:
      type: canary
      stable: v1
      candidate: v2
      steps: [{{weight: 5, hold: 1h}}, {{weight: 25, hold: 1h}}, {{weight: 75, hold: 1h}}]
  - name: legacy
    match: {{path_prefix: /}}
    strategy: {{type: direct, backend: v1}}
"""


@dataclass(frozen=True)
class Run:
    """A finished CLI process."""

    code: int
    out: str
    err: str


def _cli(*args: str, token: str | None = TOKEN, env: dict[str, str] | None = None) -> Run:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_ADMIN")}
    if token is not None:
        full_env["ROUTER_ADMIN_TOKEN"] = token
    full_env.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "router", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=full_env,
    )
    return Run(result.returncode, result.stdout, result.stderr)


def _one_line_failure(run: Run) -> str:
    """The failure's single stderr line (and nothing on stdout)."""
    assert run.code != 0, run
    assert run.out == "", run
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    return lines[0]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("cli")
    env = {"ROUTER_ADMIN_TOKEN": TOKEN}
    with router_on_echo_backends(tmp, CONFIG, ("v1", "v2"), env) as router:
        yield {
            "router": router, "config": router.config_path, "tmp": tmp, "admin": router.admin_url
        }


def _status(stack: dict[str, Any]) -> dict[str, Any]:
    response = HTTP.get(
        f"{stack['admin']}/admin/status", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    result: dict[str, Any] = response.json()
    return result


def test_status_table(stack: dict[str, Any]) -> None:
    run = _cli("status", "--admin", stack["admin"])
    assert run.code == 0, run
    lines = run.out.splitlines()
    assert _status(stack)["config"]["version"] in lines[0]
    header = next(line for line in lines if line.startswith("ROUTE"))
    assert header.split() == ["ROUTE", "STRATEGY", "PHASE", "WEIGHTS", "SINCE"]
    rows = {line.split()[0]: line.split() for line in lines[lines.index(header) + 1 :] if line}
    assert rows["iris"][:5] == ["iris", "canary", "progressing", "stable=90%", "candidate=10%"]
    assert rows["legacy"][:4] == ["legacy", "direct", "steady", "default=100%"]
    assert rows["iris"][5].endswith("Z")


def test_status_json_and_admin_url_from_env(stack: dict[str, Any]) -> None:
    run = _cli("status", "--json", env={"ROUTER_ADMIN_URL": stack["admin"]})
    assert run.code == 0, run
    payload = json.loads(run.out)
    assert set(payload) >= {"config", "routes", "backends"}
    assert payload["routes"]["iris"]["weights"] == {"stable": 90, "candidate": 10}


def test_rollback_with_reason(stack: dict[str, Any]) -> None:
    run = _cli("rollback", "iris", "--reason", "x", "--admin", stack["admin"])
    assert run.code == 0, run
    assert (
        run.out.strip() == "iris: rollback ok, phase rolled_back, weights stable=100% candidate=0%"
    )
    events = HTTP.get(
        f"{stack['admin']}/admin/events?limit=5", headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()["events"]
    rollback = next(e for e in events if e["event"] == "rollback")
    assert (rollback["route"], rollback["reason"]) == ("iris", "x")
    # Idempotent: rolling back again succeeds and changes nothing.
    again = _cli("rollback", "iris", "--admin", stack["admin"])
    assert again.code == 0 and "phase rolled_back" in again.out


def test_pause_resume_promote(stack: dict[str, Any]) -> None:
    admin = stack["admin"]
    paused = _cli("pause", "ramp", "--admin", admin)
    assert paused.code == 0 and "ramp: pause ok, phase paused" in paused.out, paused
    resumed = _cli("resume", "ramp", "--admin", admin)
    assert resumed.code == 0 and "ramp: resume ok, phase progressing" in resumed.out, resumed
    promoted = _cli("promote", "ramp", "--admin", admin)
    assert promoted.code == 0, promoted
    assert "phase progressing" in promoted.out and "candidate=75%" in promoted.out
    ramp = _status(stack)["routes"]["ramp"]
    assert (ramp["phase"], ramp["step"]) == ("progressing", 2)


@pytest.mark.parametrize(
    ("args", "token", "expected"),
    [
        (("rollback", "nosuch"), TOKEN, "nosuch"),
        (("promote", "legacy"), TOKEN, "does not apply"),
        (("status",), "not-the-token", "token"),
        (("rollback", "iris"), None, "token"),
    ],
    ids=["unknown-route", "not-applicable", "wrong-token", "no-token"],
)
def test_failures_are_one_line(
    stack: dict[str, Any], args: tuple[str, ...], token: str | None, expected: str
) -> None:
    line = _one_line_failure(_cli(*args, "--admin", stack["admin"], token=token))
    assert expected in line
    assert TOKEN not in line


def test_unreachable_router(stack: dict[str, Any]) -> None:
    line = _one_line_failure(_cli("status", "--admin", f"http://127.0.0.1:{free_port()}"))
    assert "unreachable" in line


def test_reload(stack: dict[str, Any]) -> None:
    admin, config = stack["admin"], stack["config"]
    unchanged = _cli("reload", "--admin", admin)
    assert unchanged.code == 0, unchanged
    assert unchanged.out.strip().endswith(f"version {_status(stack)['config']['version']}")
    good = config.read_text()
    # Rewritten through a hard link elsewhere, so only the reload command applies it.
    hidden = stack["tmp"] / "hidden"
    hidden.mkdir(exist_ok=True)
    os.link(config, hidden / "router.yaml")
    try:
        (hidden / "router.yaml").write_text(good.replace("weight: 10,", "weight: 120,"))
        refused = _cli("reload", "--admin", admin)
        line = _one_line_failure(refused)
        assert "routes[0].strategy.steps[0].weight" in line
        (hidden / "router.yaml").write_text(good + "# edited\n")
        changed = _cli("reload", "--admin", admin)
        assert changed.code == 0, changed
        assert changed.out.strip() == f"reloaded: version {_status(stack)['config']['version']}"
    finally:
        (hidden / "router.yaml").unlink()


def test_validate(stack: dict[str, Any]) -> None:
    config: Path = stack["config"]
    ok = _cli("validate", str(config))
    assert (ok.code, ok.out.strip()) == (0, "ok"), ok
    bad = stack["tmp"] / "bad.yaml"
    bad.write_text(
        textwrap.dedent(
            """
            backends: {v1: {url: "http://127.0.0.1:1"}}
            routes:
              - name: a
                strategy: {type: direct, backend: v9}
              - name: b
                strategy: {type: canary, stable: v1, candidate: v1, weight: 120}
            """
        )
    )
    run = _cli("validate", str(bad))
    assert run.code == 1, run
    lines = run.err.strip().splitlines()
    assert len(lines) >= 2, run.err
    assert any(
        line.startswith("routes[0].strategy.backend: unknown backend 'v9'") for line in lines
    )
    assert any(line.startswith("routes[1].strategy") for line in lines)
    broken = stack["tmp"] / "broken.yaml"
    broken.write_text("routes:\n  - name: [x\n")
    yaml_error = _cli("validate", str(broken))
    assert yaml_error.code == 1
    assert "line " in yaml_error.err and "column " in yaml_error.err


def test_schema_is_json_schema() -> None:
    run = _cli("schema")
    assert run.code == 0, run
    schema = json.loads(run.out)
    assert schema.get("type") == "object"
    assert {"backends", "routes", "admin", "state", "proxy"} <= set(schema["properties"])


def test_status_watch_redraws_until_ctrl_c(stack: dict[str, Any]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_ADMIN")}
    env["ROUTER_ADMIN_TOKEN"] = TOKEN
    proc = subprocess.Popen(
        [sys.executable, "-m", "router", "status", "--watch", "--admin", stack["admin"]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert proc.stdout is not None
        frames = 0
        deadline = time.monotonic() + 15
        while frames < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            frames += line.startswith("ROUTE")
        assert frames == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
