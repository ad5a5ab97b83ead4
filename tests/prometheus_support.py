"""A real Prometheus for tests (Debian's ``prometheus`` package; ``make test`` installs it).

It runs on a free loopback port with a temporary config that scrapes the given
targets every second and keeps its data in a temporary directory; it is stopped by
its PID.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

from tests.support import answers_200, free_port, wait_until

PROMETHEUS = shutil.which("prometheus")


class PrometheusServer:
    """One ``prometheus`` scraping ``targets`` (``host:port`` serving ``/metrics``)."""

    def __init__(self, directory: Path, targets: list[str], interval: str = "1s") -> None:
        self.directory = directory
        self.targets = targets
        self.interval = interval
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The HTTP API's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        """Write the config, start, and wait until Prometheus says it is ready."""
        assert PROMETHEUS is not None, "prometheus is not installed (make prometheus)"
        config = self.directory / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "scrape_configs": [{"job_name": "router", "static_configs": [
                {"targets": self.targets}]}],
        }))
        cmd = [
            PROMETHEUS, f"--config.file={config}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        log = open(self.directory / "prometheus.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(self._ready, timeout=60)
        return self

    def _ready(self) -> bool:
        return answers_200(self.proc, f"{self.url}/-/ready", "prometheus")

    def query(self, promql: str) -> list[dict[str, object]]:
        """The result of an instant query (a vector's samples)."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        result: list[dict[str, object]] = answer.json()["data"]["result"]
        return result

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it lingers."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def running_prometheus(directory: Path, targets: list[str]) -> Iterator[PrometheusServer]:
    """A started ``PrometheusServer``, stopped on exit."""
    server = PrometheusServer(directory, targets).start()
    try:
        yield server
    finally:
        server.stop()
