"""Hot reload (docs/configuration.md) and the file state store, against real router processes.

One router serves the reload tests (its config file is rewritten by each
test); the ConfigMap layout, the reload-storm check and the kill -9 restart each
get their own router.
Edits that must be seen by SIGHUP or ``/admin/reload`` only are written through
a hard link in another directory: inotify reports an event to the watch of the
directory whose entry was used, so the config directory's watcher never hears
of them, and only the explicit trigger can load them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backends import Recorder, echo_app, slow_app
from tests.support import RouterProcess, ServerThread, shared_client, wait_until

pytestmark = pytest.mark.e2e  # starts other processes (tests/conftest.py)

VISIBLE_WITHIN_S = 1.0
LOAD_WORKERS = 8
HTTP = shared_client()
SLOW = Recorder()  # the module's slow backend: who arrived


def _version(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _direct_config(backends: dict[str, str], target: str, note: str = "") -> str:
    """A memory-store config with one catch-all direct route to ``target``."""
    lines = [f"# {note}", "state: {store: memory}", "backends:"]
    lines += [f'  {name}: {{url: "{url}"}}' for name, url in backends.items()]
    lines += [
        "routes:",
        "  - name: main",
        "    match: {path_prefix: /}",
        f"    strategy: {{type: direct, backend: {target}}}",
    ]
    return "\n".join(lines) + "\n"


def _replace_file(path: Path, text: str) -> None:
    """Editor-style save: write a temp file next to it, then rename it over the file."""
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_unwatched(path: Path, text: str) -> None:
    """Rewrite ``path`` in place through a hard link in a sibling directory (see module doc)."""
    hidden = path.parent.parent / f"{path.parent.name}-hidden"
    hidden.mkdir(exist_ok=True)
    link = hidden / path.name
    link.unlink(missing_ok=True)
    os.link(path, link)
    with open(link, "w") as file:  # truncates the shared inode, no new directory entry
        file.write(text)


def _metric(admin_url: str, name: str, labels: str = "") -> float:
    text = HTTP.get(f"{admin_url}/metrics").text
    pattern = re.compile(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", re.M)
    match = pattern.search(text)
    return float(match.group(1)) if match else 0.0


def _log_records(router: RouterProcess) -> list[dict[str, Any]]:
    records = []
    for line in router.logs().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _stage_unwatched_switch(stack: dict[str, Any], note: str) -> str:
    """Serve ``alpha`` (a watched edit, drained), then write a ``beta`` config unwatched.

    Returns the unwatched text, which only an explicit reload (SIGHUP, the API) can pick up.
    """
    before = _direct_config(stack["good"], "alpha", f"before {note}")
    _replace_file(stack["config"], before)
    _quiet(stack["router"], _version(before))
    text = _direct_config(stack["good"], "beta", note)
    _write_unwatched(stack["config"], text)
    return text


def _quiet(router: RouterProcess, version: str) -> None:
    """Serve ``version`` and let events of earlier watched edits drain.

    A watched edit can yield a second, late batch of events; the reload it triggers
    would otherwise pick up the next unwatched write before SIGHUP or the API does.
    """
    wait_until(
        lambda: HTTP.get(f"{router.admin_url}/admin/status").json()["config"]["version"] == version,
        timeout=5,
    )
    time.sleep(0.5)


def _router(config: Path, logs: Path) -> RouterProcess:
    """A router whose captured output goes to ``logs``, not next to its config.

    Otherwise every log line is an event in the watched directory (see
    ``test_invalid_file_does_not_storm``), and unwatched writes get picked up anyway.
    """
    router = RouterProcess(config)
    logs.mkdir(exist_ok=True)
    router.log_path = logs / router.log_path.name
    return router


def _backend_of(url: str) -> str:
    return str(HTTP.get(url, timeout=5).json()["backend"])


def _serves(router: RouterProcess, backend: str) -> Callable[[], bool]:
    """A wait_until predicate: the router's answers come from ``backend``."""
    return lambda: _backend_of(router.url) == backend


@dataclass
class Load:
    """Concurrent requests against the router for as long as ``running`` is set."""

    url: str
    statuses: Counter[int] = field(default_factory=Counter)
    backends: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    running: threading.Event = field(default_factory=threading.Event)

    async def _worker(self, client: httpx.AsyncClient, worker: int) -> None:
        i = 0
        while self.running.is_set():
            i += 1
            try:
                response = await client.post(f"{self.url}/load/{worker}/{i}", content=b"x" * 64)
            except httpx.HTTPError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            self.statuses[response.status_code] += 1
            if response.status_code == 200:
                self.backends[response.json()["backend"]] += 1

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            await asyncio.gather(*(self._worker(client, n) for n in range(LOAD_WORKERS)))

    def start(self) -> threading.Thread:
        self.running.set()
        thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        thread.start()
        return thread


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, str]]:
    """Three echo backends that answer with their own name."""
    started = {
        name: ServerThread(echo_app(None, name)).start() for name in ("alpha", "beta", "gamma")
    }
    started["slow"] = ServerThread(slow_app(SLOW)).start()
    try:
        yield {name: server.url for name, server in started.items()}
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def stack(
    backends: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("reload")
    directory = tmp / "conf"
    directory.mkdir()
    config = directory / "router.yaml"
    good = {"alpha": backends["alpha"], "beta": backends["beta"]}
    config.write_text(_direct_config(good, "alpha", "start"))
    router = _router(config, tmp / "logs").start()
    try:
        yield {"router": router, "config": config, "good": good}
    finally:
        router.stop()


def _invalid_versions(backends: dict[str, str], n: int) -> tuple[str, str]:
    """The n-th invalid file (YAML, schema or unknown backend) and the place its error names.

    Each one would send traffic to ``gamma`` if it were (wrongly) applied.
    """
    kind = n % 3
    if kind == 0:
        text = _direct_config(backends, "gamma", f"invalid {n}: yaml") + "  - name: [unclosed\n"
        return text, r"line \d+, column \d+"
    if kind == 1:
        text = _direct_config(backends, "gamma", f"invalid {n}: schema").replace(
            "type: direct,", "type: direct, surprise: 1,"
        )
        return text, r"routes\[0\]\.strategy"
    text = _direct_config(backends, "gamma", f"invalid {n}: unknown backend").replace(
        "backend: gamma", "backend: delta"
    )
    return text, r"routes\[0\]\.strategy\.backend: unknown backend 'delta'"


def test_twenty_edits_under_load(stack: dict[str, Any], backends: dict[str, str]) -> None:
    """Valid and invalid edits alternate while 8 workers send requests without pause."""
    router: RouterProcess = stack["router"]
    config: Path = stack["config"]
    good: dict[str, str] = stack["good"]
    config.write_text(_direct_config(good, "alpha", "load start"))
    wait_until(lambda: _backend_of(router.url) == "alpha", timeout=5)
    failures_before = _metric(router.admin_url, "router_config_reloads_total", '{result="failure"}')
    load = Load(router.url)
    thread = load.start()
    slow: list[str] = []
    current = "alpha"
    invalid_edits = 0
    try:
        for edit in range(20):
            if edit % 2 == 0:
                current = "beta" if current == "alpha" else "alpha"
                config.write_text(_direct_config(good, current, f"edit {edit}"))
                written = time.monotonic()
                wait_until(_serves(router, current), timeout=5, interval=0.01)
                took = time.monotonic() - written
                if took > VISIBLE_WITHIN_S:
                    slow.append(f"edit {edit}: visible after {took:.2f}s")
                status = HTTP.get(f"{router.admin_url}/admin/status").json()
                assert status["config"]["last_reload"]["ok"] is True
            else:
                text, place = _invalid_versions(backends, invalid_edits)
                invalid_edits += 1
                config.write_text(text)

                def refused(place: str = place) -> bool:
                    last = HTTP.get(f"{router.admin_url}/admin/status").json()["config"][
                        "last_reload"
                    ]
                    return last["ok"] is False and re.search(place, last["error"] or "") is not None

                wait_until(refused, timeout=5)
                assert _backend_of(router.url) == current
                counted = _metric(
                    router.admin_url, "router_config_reloads_total", '{result="failure"}'
                )
                assert counted >= failures_before + invalid_edits
    finally:
        load.running.clear()
        thread.join(timeout=15)
    assert not load.errors, load.errors[:5]
    assert set(load.statuses) == {200}, load.statuses
    assert sum(load.statuses.values()) > 100
    assert "gamma" not in load.backends, load.backends
    assert set(load.backends) == {"alpha", "beta"}
    assert not slow, slow
    failed = [r for r in _log_records(router) if r.get("event") == "config_reload_failed"]
    assert len(failed) >= invalid_edits
    logged = json.dumps(failed)
    for n in range(3):
        assert re.search(_invalid_versions(backends, n)[1], logged), n


def test_reverting_a_bad_edit_clears_the_failure(stack: dict[str, Any]) -> None:
    """Saving the last good content again (undoing a bad edit) must not leave the status red."""
    router: RouterProcess = stack["router"]
    config: Path = stack["config"]
    good_text = _direct_config(stack["good"], "alpha", "revert")
    _apply(router, config, good_text, timeout=5)
    config.write_text(good_text + "routes: [\n")
    wait_until(
        lambda: (
            HTTP.get(f"{router.admin_url}/admin/status").json()["config"]["last_reload"]["ok"]
            is False
        ),
        timeout=5,
    )
    config.write_text(good_text)

    def healthy_again() -> bool:
        last = HTTP.get(f"{router.admin_url}/admin/status").json()["config"]["last_reload"]
        return last["ok"] is True and last["error"] is None

    wait_until(healthy_again, timeout=3)


def test_invalid_file_does_not_storm(
    backends: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """One bad save is one failure, even with the router's log next to its config.

    That layout (``cd /etc/router && traffic-router serve --config router.yaml >> router.log``,
    and RouterProcess's default) makes each log line an event in the watched directory;
    the failed reload must not log its way into the next one.
    """
    directory = tmp_path_factory.mktemp("storm")
    config = directory / "router.yaml"
    good = {"alpha": backends["alpha"], "beta": backends["beta"]}
    config.write_text(_direct_config(good, "alpha", "storm"))
    with RouterProcess(config) as router:
        assert router.log_path.parent == directory
        config.write_text(_direct_config(good, "alpha", "storm").replace("direct,", "direkt,"))
        wait_until(
            lambda: (
                _metric(router.admin_url, "router_config_reloads_total", '{result="failure"}') >= 1
            ),
            timeout=5,
        )
        time.sleep(1.5)  # not synchronisation: a window in which a storm would show
        failures = _metric(router.admin_url, "router_config_reloads_total", '{result="failure"}')
        assert failures == 1, f"one bad save counted {failures:.0f} times"
        assert router.logs().count('"event":"config_reload_failed"') == 1


def test_editor_rename_is_picked_up(stack: dict[str, Any]) -> None:
    router: RouterProcess = stack["router"]
    config: Path = stack["config"]
    for target, note in (("beta", "rename 1"), ("alpha", "rename 2"), ("beta", "rename 3")):
        _replace_file(config, _direct_config(stack["good"], target, note))
        wait_until(_serves(router, target), timeout=VISIBLE_WITHIN_S)


def test_sighup_reloads(stack: dict[str, Any]) -> None:
    router: RouterProcess = stack["router"]
    config: Path = stack["config"]
    text = _stage_unwatched_switch(stack, "sighup")
    router.send_signal(signal.SIGHUP)
    wait_until(lambda: _backend_of(router.url) == "beta", timeout=VISIBLE_WITHIN_S)
    events = HTTP.get(f"{router.admin_url}/admin/events?limit=50").json()["events"]
    reloads = [
        e for e in events if e["event"] == "config_reload" and e["version"] == _version(text)
    ]
    assert reloads and reloads[0]["reason"] == "reloaded by sighup", reloads
    # An invalid file on SIGHUP: refused and counted, the old config keeps serving.
    before = _metric(router.admin_url, "router_config_reloads_total", '{result="failure"}')
    _write_unwatched(config, text.replace("type: direct,", "type: direkt,"))
    router.send_signal(signal.SIGHUP)
    wait_until(
        lambda: (
            _metric(router.admin_url, "router_config_reloads_total", '{result="failure"}') > before
        ),
        timeout=3,
    )
    assert _backend_of(router.url) == "beta"
    assert router.proc is not None and router.proc.poll() is None


def test_admin_reload_endpoint(stack: dict[str, Any]) -> None:
    router: RouterProcess = stack["router"]
    config: Path = stack["config"]
    text = _stage_unwatched_switch(stack, "api reload")
    response = HTTP.post(f"{router.admin_url}/admin/reload")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == _version(text)
    assert body["changed"] is True
    assert _backend_of(router.url) == "beta"
    # Same content again: 200, unchanged.
    again = HTTP.post(f"{router.admin_url}/admin/reload")
    assert again.status_code == 200 and again.json()["changed"] is False
    # Invalid: 422 with located errors, the old version keeps serving.
    _write_unwatched(config, text.replace("backend: beta", "backend: nowhere"))
    refused = HTTP.post(f"{router.admin_url}/admin/reload")
    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    assert any("routes[0].strategy.backend" in e and "nowhere" in e for e in errors), errors
    assert refused.json()["version"] == _version(text)
    assert _backend_of(router.url) == "beta"
    status = HTTP.get(f"{router.admin_url}/admin/status").json()
    assert status["config"]["version"] == _version(text)
    assert status["config"]["last_reload"]["ok"] is False
    assert "routes[0].strategy.backend" in status["config"]["last_reload"]["error"]


def _configmap_dir(root: Path, stamp: str, text: str) -> None:
    """A new timestamped data directory swapped in as ``..data`` (what the kubelet does)."""
    data = root / f"..{stamp}"
    data.mkdir()
    (data / "config.yaml").write_text(text)
    tmp_link = root / "..data_tmp"
    tmp_link.symlink_to(data.name)
    os.replace(tmp_link, root / "..data")


def test_configmap_symlink_swap(
    backends: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("configmap")
    good = {"alpha": backends["alpha"], "beta": backends["beta"]}
    first = root / "..2026_11_29_12_00_00.000000001"
    first.mkdir()
    (first / "config.yaml").write_text(_direct_config(good, "alpha", "configmap 0"))
    (root / "..data").symlink_to(first.name)
    (root / "config.yaml").symlink_to("..data/config.yaml")
    with _router(root / "config.yaml", root.parent / f"{root.name}-logs") as router:
        assert _backend_of(router.url) == "alpha"
        for n, target in enumerate(("beta", "alpha", "beta"), start=1):
            _configmap_dir(
                root, f"2026_11_29_12_00_0{n}.00000000{n}", _direct_config(good, target, f"cm {n}")
            )
            wait_until(_serves(router, target), timeout=VISIBLE_WITHIN_S)


def _canary_config(backends: dict[str, str], state_path: Path) -> str:
    return textwrap.dedent(
        f"""
        state: {{store: file, path: "{state_path}"}}
        backends:
          alpha: {{url: "{backends["alpha"]}"}}
          beta: {{url: "{backends["beta"]}"}}
        routes:
          - name: iris
            match: {{path_prefix: /}}
            strategy:
              type: canary
              stable: alpha
              candidate: beta
              steps:
                - {{weight: 10, hold: 1h}}
                - {{weight: 50, hold: 1h}}
        """
    )


def test_state_file_survives_kill_9(
    backends: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Starts on a corrupt state file (moved aside), rolls back, is killed, keeps the rollback."""
    tmp = tmp_path_factory.mktemp("persist")
    state_file = tmp / "state" / "state.json"
    state_file.parent.mkdir()
    state_file.write_text('{"format": 1, "routes": {"iris": ')
    config = tmp / "router.yaml"
    config.write_text(_canary_config(backends, state_file))
    first = _router(config, tmp / "logs").start()
    try:
        moved = list(state_file.parent.glob("state.json.corrupt-*"))
        assert len(moved) == 1 and moved[0].read_text().startswith('{"format": 1')
        events = HTTP.get(f"{first.admin_url}/admin/events").json()["events"]
        assert any(e["event"] == "state_recovered" for e in events), events
        assert '"event":"state_recovered"' in first.logs()
        iris = HTTP.get(f"{first.admin_url}/admin/status").json()["routes"]["iris"]
        assert (iris["phase"], iris["step"], iris["weights"]["candidate"]) == ("progressing", 0, 10)
        response = HTTP.post(
            f"{first.admin_url}/admin/routes/iris/rollback", json={"reason": "bad latency"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"]["phase"] == "rolled_back"
    finally:
        code = first.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL
    with _router(config, tmp / "logs") as second:
        iris = HTTP.get(f"{second.admin_url}/admin/status").json()["routes"]["iris"]
        assert iris["phase"] == "rolled_back"
        assert iris["weights"] == {"stable": 100, "candidate": 0}
        with httpx.Client(timeout=5) as client:
            seen = Counter(client.get(f"{second.url}/p/{i}").json()["backend"] for i in range(60))
        assert seen == Counter({"alpha": 60})
        # A reload of the unchanged route keeps it rolled back too.
        config.write_text(config.read_text() + "# touched\n")
        wait_until(
            lambda: (
                HTTP.get(f"{second.admin_url}/admin/status").json()["config"]["version"]
                == _version(config.read_text())
            ),
            timeout=3,
        )
        status = HTTP.get(f"{second.admin_url}/admin/status").json()
        assert status["routes"]["iris"]["phase"] == "rolled_back"
        # A new candidate URL is a new rollout: the ramp starts again at step 0.
        _apply(second, config, config.read_text().replace(backends["beta"], backends["gamma"]))
        iris = HTTP.get(f"{second.admin_url}/admin/status").json()["routes"]["iris"]
        assert (iris["phase"], iris["step"], iris["weights"]["candidate"]) == ("progressing", 0, 10)
        # A removed route's state leaves the file.
        assert "iris" in json.loads(state_file.read_text())["routes"]
        _apply(second, config, config.read_text().replace("name: iris", "name: iris2"))
        # (dropped just after the new snapshot is swapped in, so poll)
        wait_until(lambda: "iris" not in json.loads(state_file.read_text())["routes"], timeout=3)


def _apply(router: RouterProcess, config: Path, text: str, timeout: float = 3) -> None:
    """Save ``text`` and wait until it serves."""
    config.write_text(text)
    wait_until(
        lambda: (
            HTTP.get(f"{router.admin_url}/admin/status").json()["config"]["version"]
            == _version(text)
        ),
        timeout=timeout,
    )


def test_backend_url_change_and_listen_change(
    stack: dict[str, Any], backends: dict[str, str]
) -> None:
    """Same backend name, new URL: the new server answers. A new listen address: logged."""
    router: RouterProcess = stack["router"]
    config: Path = stack["config"]
    moved = {"alpha": backends["alpha"], "beta": backends["beta"]}
    _apply(router, config, _direct_config(moved, "alpha", "url change"))
    assert _backend_of(router.url) == "alpha"
    moved["alpha"] = backends["gamma"]
    _apply(router, config, _direct_config(moved, "alpha", "url change"))
    assert _backend_of(router.url) == "gamma"
    _apply(router, config, "listen: 127.0.0.1:1\n" + _direct_config(stack["good"], "alpha", "l"))
    assert _backend_of(router.url) == "alpha"
    wait_until(lambda: '"event":"restart_required"' in router.logs(), timeout=3)


def test_in_flight_request_finishes_when_its_backend_url_changes(
    stack: dict[str, Any], backends: dict[str, str]
) -> None:
    """The old backend client is closed only after its in-flight requests finish."""
    router: RouterProcess = stack["router"]
    config: Path = stack["config"]
    _apply(router, config, _direct_config({"alpha": backends["slow"]}, "alpha", "slow"))
    result: dict[str, httpx.Response] = {}

    def slow_request() -> None:
        result["response"] = httpx.get(f"{router.url}/slow?s=1.5", timeout=10)

    thread = threading.Thread(target=slow_request)
    arrived = SLOW.arrived
    thread.start()
    wait_until(lambda: SLOW.arrived > arrived)  # the request waits on the slow backend
    _apply(router, config, _direct_config({"alpha": backends["alpha"]}, "alpha", "fast"))
    assert _backend_of(router.url) == "alpha"
    thread.join(timeout=10)
    response = result["response"]
    assert (response.status_code, response.text) == (200, "slow done")
