"""Backends at run time: one keep-alive pool each, reused across reloads when unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from urllib.parse import urlsplit

from router.config.model import BackendSpec
from router.upstream.pool import UpstreamPool

__all__ = ["Backend", "BackendSet"]


class Backend:
    """A configured backend: its pool, Host header and health."""

    __slots__ = ("header", "host", "name", "pool", "spec", "up", "url")

    def __init__(self, name: str, spec: BackendSpec) -> None:
        self.name = name
        self.spec = spec
        self.url = spec.url
        parts = urlsplit(spec.url)
        self.host = parts.netloc.encode("latin-1")
        self.header = (b"x-router-backend", name.encode())  # encoded once, sent per request
        self.up = True
        self.pool = UpstreamPool(
            spec.url,
            max_connections=spec.max_connections,
            connect_timeout=spec.timeout.connect,
            read_timeout=spec.timeout.read,
            pool_timeout=min(5.0, spec.timeout.read),
        )


class BackendSet:
    """Owns every backend's pool; ``update`` keeps unchanged ones and retires the rest.

    A retired pool closes once its in-flight requests finish, so a reload never
    cuts a stream in progress.
    """

    def __init__(self) -> None:
        self._backends: dict[str, Backend] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    def update(self, specs: Mapping[str, BackendSpec]) -> dict[str, Backend]:
        """Backends for ``specs``: reuse identical ones, create new, retire the removed/changed."""
        return self.commit(self.build(specs))

    def build(self, specs: Mapping[str, BackendSpec]) -> dict[str, Backend]:
        """Backends for ``specs`` (identical ones reused), changing nothing yet; may raise.

        A reload builds them before it writes any state, and ``commit``s them once installed.
        """
        fresh: dict[str, Backend] = {}
        for name, spec in specs.items():
            current = self._backends.get(name)
            if current is not None and current.spec == spec:
                fresh[name] = current
            else:
                fresh[name] = Backend(name, spec)
        return fresh

    def commit(self, fresh: dict[str, Backend]) -> dict[str, Backend]:
        """Make ``fresh`` (from ``build``) the live set; retire the backends it does not keep."""
        for name, backend in self._backends.items():
            if fresh.get(name) is not backend:
                self._retire(backend)
        self._backends = fresh
        return dict(fresh)

    def _retire(self, backend: Backend) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._close_when_idle(backend))
        except RuntimeError:
            return
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _close_when_idle(backend: Backend, limit_s: float = 300.0) -> None:
        waited = 0.0
        while backend.pool.in_use and waited < limit_s:
            await asyncio.sleep(0.1)
            waited += 0.1
        await backend.pool.aclose()

    async def aclose(self) -> None:
        """Close every pool (after the servers have drained)."""
        for backend in self._backends.values():
            await backend.pool.aclose()
        for task in list(self._retiring):
            task.cancel()
        self._backends = {}
