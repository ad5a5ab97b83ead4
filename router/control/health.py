"""Active health checks and pre-switch checks, over httpx (off the hot path).

A backend with a ``health`` section is probed every ``interval``; after
``unhealthy_after`` consecutive failures it is marked down (the proxy stops
sending it traffic, a canary's analysis counts it as a failed check), and
after ``healthy_after`` successes it is up again. Each change is logged as a
``backend_health`` event and shown on ``router_backend_up``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

import httpx

from router.routing.backends import Backend
from router.telemetry.events import EventLog
from router.telemetry.metrics import Metrics

__all__ = ["HealthChecker", "probe"]


def _client() -> httpx.AsyncClient:
    # No proxies from the environment, no cookies kept, no redirects followed.
    return httpx.AsyncClient(
        trust_env=False, follow_redirects=False, timeout=httpx.Timeout(5.0),
        cookies=None, headers={"user-agent": "traffic-router-health"},
    )


async def probe(
    client: httpx.AsyncClient, url: str, path: str, expect_status: int | None, timeout_s: float
) -> tuple[bool, str]:
    """GET ``url + path``; ok when the status is ``expect_status`` (or any 2xx when None)."""
    try:
        response = await client.get(url + path, timeout=timeout_s)
    except httpx.TimeoutException:
        return False, f"GET {path} timed out after {timeout_s:g}s"
    except httpx.HTTPError as exc:
        return False, f"GET {path} failed: {type(exc).__name__}"
    finally:
        client.cookies.clear()
    ok = response.status_code == expect_status if expect_status else response.is_success
    if ok:
        return True, f"GET {path} answered {response.status_code}"
    wanted = expect_status if expect_status else "2xx"
    return False, f"GET {path} answered {response.status_code}, expected {wanted}"


class HealthChecker:
    """Runs one probe loop per backend that has a ``health`` section."""

    def __init__(
        self, metrics: Metrics, events: EventLog, backends: Callable[[], Mapping[str, Backend]]
    ) -> None:
        self.metrics = metrics
        self.events = events
        self._backends = backends
        self.client = _client()
        self._loops: dict[str, tuple[Backend, asyncio.Task[None]]] = {}

    def sync(self) -> None:
        """Start loops for new or changed backends, stop the ones gone."""
        current = self._backends()
        for name, (backend, task) in list(self._loops.items()):
            if current.get(name) is not backend:
                task.cancel()
                del self._loops[name]
        for name, backend in current.items():
            if backend.spec.health is not None and name not in self._loops:
                task = asyncio.create_task(self._loop(backend), name=f"health:{name}")
                self._loops[name] = (backend, task)

    async def _loop(self, backend: Backend) -> None:
        spec = backend.spec.health
        assert spec is not None
        failures = successes = 0
        while True:
            ok, reason = await probe(self.client, backend.url, spec.path, None, spec.timeout)
            if ok:
                failures, successes = 0, successes + 1
                if not backend.up and successes >= spec.healthy_after:
                    self._mark(backend, True, reason)
            else:
                failures, successes = failures + 1, 0
                if backend.up and failures >= spec.unhealthy_after:
                    self._mark(backend, False, f"{reason} ({failures} in a row)")
            await asyncio.sleep(spec.interval)

    def _mark(self, backend: Backend, up: bool, reason: str) -> None:
        backend.up = up
        self.metrics.backend_up.labels(backend.name).set(1.0 if up else 0.0)
        self.events.emit(
            "backend_health", route=None, reason=reason, backend=backend.name,
            healthy=up,
        )

    async def aclose(self) -> None:
        """Stop every loop and close the client."""
        for _, task in self._loops.values():
            task.cancel()
        for _, task in self._loops.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops.clear()
        await self.client.aclose()
