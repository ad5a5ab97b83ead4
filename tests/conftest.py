"""The two kinds of test, kept apart so that one cannot pass for the other.

A test is *in-process* (the default: pure code, or real uvicorn servers on threads in the
test's own process) or *end to end* (marked ``e2e``: it starts another process, such as the
router itself, redis-server, prometheus, a browser or a benchmark). ``make test-fast`` runs
only the first kind (``pytest -m "not e2e"``); ``make test`` runs both.

The marker cannot be forgotten: while a test runs, starting a process through
``subprocess.Popen`` (which ``subprocess.run`` and asyncio's default loop use too) fails
the test unless it carries the marker. Mark a whole module with
``pytestmark = pytest.mark.e2e``; a test that asks for a fixture in ``PROCESS_FIXTURES``
is marked by ``pytest_collection_modifyitems``.

``make test`` runs the suite on pytest-xdist workers, a module per worker at a time
(``--dist loadfile``, so module fixtures are shared), the slowest modules first
(``SLOWEST_FIRST``): the run cannot end before its longest module, so that one must not
start last. Everything a test starts (ports, temporary directories, processes) is its
own, so workers never share one.

Fixtures here are shared by every test package.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.redis_support import REDIS_SERVER, RedisServer

E2E = "e2e"
# Fixtures that start a process: by this suite's convention a fixture named ``router`` or
# ``stack`` runs ``traffic-router serve`` as a child process.
PROCESS_FIXTURES = frozenset({"redis_server", "router", "stack"})

# The modules that take longest (``pytest --durations``), slowest first; the rest follow in
# collection order. A module missing here only makes a parallel run end a little later.
SLOWEST_FIRST = (
    "tests/control/test_replicas.py",
    "tests/control/test_canary_e2e.py",
    "tests/demo/test_demo_drift.py",
    "tests/faults/test_operations_faults.py",
    "tests/cli/test_cli_client.py",
    # After the other demo: a demo's own traffic must reach the rates its gates need.
    "tests/demo/test_demo_runner.py",
    "tests/admin/test_dashboard_browser.py",
    "tests/strategies/test_sequential.py",
    "tests/control/test_fail_static.py",
    "tests/control/test_blue_green_e2e.py",
    "tests/telemetry/test_drift_samples.py",
    "tests/control/test_reload.py",
    "tests/faults/test_traffic_faults.py",
    "tests/test_serve.py",
    "tests/control/test_store_outage.py",
    "tests/proxy/test_slow_clients.py",
    "tests/proxy/test_proxy.py",
    "tests/telemetry/test_prediction_memory.py",
    "tests/admin/test_dashboard_scale_browser.py",
    "tests/demo/test_demo_llm.py",
)
_RANK = {path: rank for rank, path in enumerate(SLOWEST_FIRST)}

_current: list[pytest.Item] = []
_original_init = subprocess.Popen.__init__


def _guarded_init(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
    if _current and _current[0].get_closest_marker(E2E) is None:
        raise pytest.fail.Exception(
            f"{_current[0].nodeid} starts a process ({args[0] if args else kwargs.get('args')!r}) "
            f"but is not marked {E2E}: add `pytestmark = pytest.mark.{E2E}` to its module"
        )
    _original_init(self, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and install the guard for this run."""
    config.addinivalue_line(
        "markers", f"{E2E}: starts other processes (router, redis, prometheus, browser, bench)"
    )
    subprocess.Popen.__init__ = _guarded_init  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put ``subprocess.Popen`` back as it was."""
    subprocess.Popen.__init__ = _original_init  # type: ignore[method-assign]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a process-starting fixture; put the slowest modules first."""
    for item in items:
        if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(E2E)
    # Stable: a module's tests keep their order and stay together.
    items.sort(key=lambda item: _RANK.get(item.nodeid.partition("::")[0], len(_RANK)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Know which test is running (setup, call and teardown) while it runs."""
    _current.append(item)
    try:
        return (yield)
    finally:
        _current.clear()


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh real ``redis-server`` on a free loopback port, stopped by PID afterwards."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (make redis installs it)")
    server = RedisServer(Path(tmp_path_factory.mktemp("redis"))).start()
    try:
        yield server
    finally:
        server.stop()
