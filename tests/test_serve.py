"""``traffic-router serve`` as a process: graceful drain, workers, the access log line."""

from __future__ import annotations

import json
import signal
import textwrap
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.backends import Recorder, echo_app, slow_app
from tests.support import RouterProcess, ServerThread, wait_until

pytestmark = pytest.mark.e2e  # starts other processes (tests/conftest.py)


def _config(tmp_path: Path, echo_url: str, slow_url: str) -> Path:
    path = tmp_path / "router.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            state: {{store: memory}}
            backends:
              echo: {{url: "{echo_url}"}}
              slow: {{url: "{slow_url}"}}
            routes:
              - name: slow
                match: {{path_prefix: /slow}}
                strategy: {{type: direct, backend: slow}}
              - name: echo
                match: {{path_prefix: /}}
                strategy: {{type: direct, backend: echo}}
            """
        )
    )
    return path


def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    slow_recorder = Recorder()
    with ServerThread(echo_app()) as echo, ServerThread(slow_app(slow_recorder)) as slow:
        router = RouterProcess(_config(tmp_path, echo.url, slow.url)).start()
        results: list[int] = []

        def call() -> None:
            results.append(httpx.get(f"{router.url}/slow?s=1.5", timeout=10).status_code)

        thread = threading.Thread(target=call)
        thread.start()
        wait_until(lambda: slow_recorder.arrived == 1)  # the request waits on the backend
        assert results == []
        started = time.monotonic()
        router.send_signal(signal.SIGTERM)
        thread.join(timeout=10)
        code = router.stop(timeout=15)
        assert results == [200]
        assert code == 0
        assert time.monotonic() - started < 10
        assert '"event":"stopped"' in router.logs()


def test_access_log_line_has_the_spec_fields(tmp_path: Path) -> None:
    with (
        ServerThread(echo_app()) as echo,
        ServerThread(slow_app(Recorder())) as slow,
        RouterProcess(_config(tmp_path, echo.url, slow.url)) as router,
    ):
        httpx.post(f"{router.url}/predict?token=s3cr3t", content=b"12345")
        line = wait_until(
            lambda: next(
                (
                    json.loads(raw)
                    for raw in router.logs().splitlines()
                    if '"event":"request"' in raw
                ),
                None,
            )
        )
    for field in (
        "request_id", "route", "variant", "backend", "method", "path", "status",
        "duration_ms", "bytes_in", "bytes_out",
    ):
        assert field in line, field
    assert line["route"] == "echo" and line["variant"] == "default"
    assert line["status"] == 200 and line["bytes_in"] == 5
    assert line["path"] == "/predict"  # the query string is never logged
    assert "s3cr3t" not in json.dumps(line)


def test_two_workers_share_the_listeners(tmp_path: Path) -> None:
    recorder = Recorder()
    with ServerThread(echo_app(recorder)) as echo, ServerThread(slow_app(Recorder())) as slow:
        router = RouterProcess(_config(tmp_path, echo.url, slow.url), "--workers", "2").start()
        try:
            assert router.proc is not None
            parent = psutil.Process(router.proc.pid)
            wait_until(lambda: len(parent.children()) == 2, timeout=10)
            codes = [httpx.get(f"{router.url}/x").status_code for _ in range(40)]
            assert codes == [200] * 40
        finally:
            assert router.stop() == 0
