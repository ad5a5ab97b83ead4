"""Fault matrix, operations rows: broken reloads, signal storms, big uploads, a lost state store.

Like the traffic rows, each runs under steady traffic that must see no failure, and ends with
the router serving normally. A reload either takes effect whole or changes nothing: the rows
that must be refused check that the version served and the state file are untouched. The
store that cannot be written is ``tests/control/test_store_outage.py``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import resource
import shutil
import signal
import threading
import time
from collections.abc import Iterator

import pytest
import yaml

from tests.config.test_config_limits import alias_bomb
from tests.faults.matrix import state_file, undisturbed
from tests.raw_http import connect
from tests.rollout_support import Stack
from tests.support import RouterProcess, shared_client, wait_until

pytestmark = pytest.mark.e2e  # runs a router process
HTTP = shared_client()


def _reload(stack: Stack) -> tuple[int, dict[str, object]]:
    response = stack.admin("POST", "/admin/reload")
    return response.status_code, response.json()


def _restore(stack: Stack) -> None:
    version = stack.write()
    assert _reload(stack)[0] == 200
    wait_until(lambda: stack.status()["config"]["last_reload"]["ok"])
    assert stack.status()["config"]["version"] == version


def _with_user_info(stack: Stack) -> bytes:
    doc = yaml.safe_load(stack.render())
    url = doc["backends"]["echo"]["url"]
    doc["backends"]["echo"]["url"] = url.replace("http://", "http://user:secret@")
    return yaml.safe_dump(doc).encode()


BROKEN = {
    "yaml-error": (lambda stack: b"routes: [\n", "line "),
    "alias-bomb": (lambda stack: alias_bomb().encode(), "aliases would expand"),
    "huge": (lambda stack: stack.render() + b"#" * (1 << 20), "over the limit"),
    "unbuildable-backend": (_with_user_info, "backends.echo.url: cannot carry user info"),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_bad_file_changes_nothing(stack: Stack, kind: str) -> None:
    make, expected = BROKEN[kind]
    path = state_file(stack)
    wait_until(path.exists)
    state_before = path.read_bytes()
    version = stack.status()["config"]["version"]
    with undisturbed(stack):
        stack.config.write_bytes(make(stack))
        status, body = _reload(stack)
    assert status == 422, body
    assert any(expected in error for error in body["errors"]), body  # type: ignore[attr-defined]
    assert stack.status()["config"]["version"] == version
    assert stack.status()["config"]["last_reload"]["ok"] is False
    assert path.read_bytes() == state_before  # no state for a config never installed
    assert stack.route_status("canary")["backends"]["candidate"] == "echo"
    _restore(stack)


def test_a_large_file_is_parsed_off_the_event_loop(stack: Stack) -> None:
    doc = yaml.safe_load(stack.render())
    headers = {f"h{i}": "v" for i in range(50_000)}
    doc["routes"].append({
        "name": "big", "match": {"path_prefix": "/big-unused", "headers": headers},
        "strategy": {"type": "direct", "backend": "healthy"},
    })
    raw = yaml.safe_dump(doc, default_flow_style=False).encode()
    assert len(raw) < 1 << 20
    with undisturbed(stack) as load:
        stack.config.write_bytes(raw)
        began = time.monotonic()
        status, body = _reload(stack)
        ended = time.monotonic()
    assert status == 200, body
    answered = sorted(o.ended for o in load.outcomes if began <= o.ended <= ended)
    marks = [began, *answered, ended]
    silence = max(later - earlier for earlier, later in itertools.pairwise(marks))
    # Requests kept being answered while the file was parsed (seconds of PyYAML work): a parse
    # on the event loop left one silence of nearly the whole reload (3.25 s of 3.4 s here),
    # off it the longest was a fifth (0.4 s of 1.9 s). Relative, so a loaded machine is fine.
    assert silence < (ended - began) / 2, (silence, ended - began, len(answered))
    _restore(stack)


def test_sighup_storm(stack: Stack) -> None:
    with undisturbed(stack):
        for i in range(40):
            stack.routes["canary"]["steps"][1]["weight"] = 50 + i % 2
            stack.write()
            stack.live.send_signal(signal.SIGHUP)
        version = stack.write()
        stack.live.send_signal(signal.SIGHUP)
        wait_until(lambda: stack.status()["config"]["version"] == version)
    assert stack.live.proc is not None and stack.live.proc.poll() is None
    assert stack.status()["config"]["last_reload"]["ok"] is True


def test_reload_during_a_50_mb_upload(stack: Stack) -> None:
    size, piece = 50 * 1024 * 1024, b"u" * (1 << 20)
    reloaded = threading.Event()

    def body() -> Iterator[bytes]:
        for i in range(size // len(piece)):
            if i == 5:  # a reload installs a new config while the upload streams
                stack.routes["extra"] = {"type": "direct", "backend": "healthy"}
                stack.apply()
                reloaded.set()
            yield piece

    with undisturbed(stack):
        response = HTTP.post(stack.url("echo"), content=body(), timeout=60)
    assert reloaded.is_set()
    assert response.status_code == 200, response.text
    assert response.json()["body_length"] == size
    del stack.routes["extra"]
    stack.apply()


def test_state_directory_gone(stack: Stack) -> None:
    state_dir = state_file(stack).parent
    wait_until(state_file(stack).exists)
    with undisturbed(stack):
        shutil.rmtree(state_dir)
        rolled = stack.act("canary", "rollback", "directory gone")
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["status"]["phase"] == "rolled_back"

    def stored_phase() -> object:
        routes = json.loads((state_dir / "state.json").read_text())["routes"]
        return routes["canary"]["data"]["state"]["phase"]

    assert wait_until(lambda: stored_phase() == "rolled_back")  # written again by itself
    assert stack.act("canary", "resume").status_code == 200


def test_an_action_that_cannot_be_stored_is_not_answered_200(stack: Stack) -> None:
    """Another config's state for the route (a replica ahead, a half-done reload): not adopted,
    and every compare-and-set against it lost. The action used to answer 200, changing nothing."""
    path = state_file(stack)
    doc = json.loads(path.read_text())
    entry = doc["routes"]["canary"]
    entry["version"] += 100
    entry["data"] = {**entry["data"], "identity": "another-config"}
    path.write_text(json.dumps(doc))
    with undisturbed(stack):
        paused = stack.act("canary", "pause", "lost compare-and-sets")
        assert paused.status_code == 409, paused.text
        assert "nothing changed" in paused.json()["detail"]
        assert stack.route_status("canary")["phase"] == "progressing"
        del doc["routes"]["canary"]
        path.write_text(json.dumps(doc))
        assert stack.act("canary", "pause").status_code == 200  # its record written anew
    assert stack.act("canary", "resume").status_code == 200


def test_state_file_corrupt_at_start(stack: Stack) -> None:
    """Runs last: restarts the module's router on a state file of garbage."""
    stack.stop()
    state_file(stack).write_bytes(b"{not json\x00")
    stack.start()
    with undisturbed(stack):
        events = stack.admin("GET", "/admin/events?limit=1000").json()["events"]
    assert [e["event"] for e in events].count("state_recovered") == 1
    assert list(state_file(stack).parent.glob("state.json.corrupt-*"))
    assert stack.route_status("canary")["phase"] == "progressing"


TOKEN = "t0ken-5ad7f1e2c3"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXPOSED = (
    'admin: {token: "%s"}\nstate: {store: memory}\n'
    'backends: {b: {url: "http://127.0.0.1:9"}}\n'
    "routes: [{name: r, match: {path_prefix: /}, strategy: {type: direct, backend: b}}]\n"
)


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    """A router of its own: admin off loopback with a token, started under ``ulimit -n 256``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"the hard limit on open files ({hard}) leaves nothing to lift")
    config = tmp_path_factory.mktemp("exposed") / "router.yaml"
    config.write_text(EXPOSED % TOKEN)
    router = RouterProcess(config)
    router.extra_args = ("--admin-listen", f"0.0.0.0:{router.admin_port}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # inherited by the router
    try:
        router.start(wait_ready=False)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        wait_until(router._ready, timeout=20)
        yield router
    finally:
        router.stop()


def test_a_low_open_file_limit_is_lifted(exposed: RouterProcess) -> None:
    """Issue 14: under ``ulimit -n 256``, 260 connections made every new client get a reset."""
    with contextlib.ExitStack() as idle:
        for _ in range(400):
            idle.enter_context(connect(exposed.port))
        assert HTTP.get(f"{exposed.admin_url}/healthz").status_code == 200


def test_a_reload_cannot_remove_the_token_of_an_exposed_admin(exposed: RouterProcess) -> None:
    exposed.config_path.write_text(EXPOSED.replace('admin: {token: "%s"}\n', ""))
    response = HTTP.post(f"{exposed.admin_url}/admin/reload", headers=AUTH)
    assert response.status_code == 422, response.text
    assert "off loopback" in " ".join(response.json()["errors"])
    assert HTTP.get(f"{exposed.admin_url}/admin/status").status_code == 401
    assert HTTP.get(f"{exposed.admin_url}/admin/status", headers=AUTH).status_code == 200
