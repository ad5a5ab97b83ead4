"""Several real router processes on one config file and one real Redis: a fleet.

``replicas`` starts N ``traffic-router serve`` processes on the file a ``Stack``
writes (its ``state`` section pointed at a ``RedisServer``), each with its own
ports and its log outside the watched directory; ``Replica`` wraps one with the
admin calls the fleet tests make.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.redis_support import RedisServer
from tests.rollout_support import Stack
from tests.support import RouterProcess


class Replica:
    """One router process of the fleet."""

    def __init__(self, process: RouterProcess) -> None:
        self.process = process

    def url(self, route: str) -> str:
        """The proxy URL of ``route`` (``Stack`` serves route R under ``/r/R``)."""
        return f"{self.process.url}/r/{route}"

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call to this replica's admin API."""
        return httpx.request(method, f"{self.process.admin_url}{path}", timeout=10, **kwargs)

    def status(self) -> dict[str, Any]:
        """``GET /admin/status``."""
        body: dict[str, Any] = self.admin("GET", "/admin/status").json()
        return body

    def phase(self, route: str) -> str:
        """The phase this replica serves ``route`` in."""
        return str(self.status()["routes"][route]["phase"])

    def act(self, route: str, action: str) -> httpx.Response:
        """``POST /admin/routes/{route}/{action}``."""
        return self.admin("POST", f"/admin/routes/{route}/{action}")


def use_redis(stack: Stack, redis: RedisServer, **options: Any) -> None:
    """Point the stack's ``state`` section at ``redis``."""
    stack.store = "redis"
    stack.state_options = {"url": redis.url, **options}


@contextlib.contextmanager
def replicas(stack: Stack, n: int) -> Iterator[list[Replica]]:
    """``n`` router processes on ``stack``'s file (written now); all stopped on exit."""
    stack.write()
    with replicas_of(stack.config, n) as started:
        yield started


@contextlib.contextmanager
def replicas_of(config: Path, n: int) -> Iterator[list[Replica]]:
    """``n`` router processes on the config file ``config``; all stopped on exit."""
    logs = config.parent / "logs"
    logs.mkdir(exist_ok=True)
    started: list[RouterProcess] = []
    try:
        for _ in range(n):
            process = RouterProcess(config)
            process.log_path = logs / process.log_path.name
            started.append(process.start())
        yield [Replica(p) for p in started]
    finally:
        for process in started:
            if process.proc is not None and process.proc.poll() is not None:
                tail = "\n".join(process.logs().splitlines()[-20:])
                print(f"replica {process.port} had exited ({process.proc.returncode}):\n{tail}")
            process.stop()
