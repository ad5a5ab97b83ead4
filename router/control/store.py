"""Runtime-state stores (README, "Strategies"): each route's rollout state survives restarts.

A route's state is a JSON-able mapping (a strategy's ``dump_state`` plus a small
envelope added by the caller). Every write is a compare-and-set on the route's
version, so several replicas (the processes of ``--workers N`` sharing one file,
or later a shared redis) never blindly overwrite each other's newer state.

``put(route, data, expected_version)``: ``None`` means "the route must not exist
yet"; an int must equal the current version. The stored version is then the old
one plus 1 (1 on creation). A route that is deleted and created again starts at
version 1 again.

``put_many(writes)`` applies many such writes in one go (the file store: one locked
read and one rewrite of the file, however many routes; Redis: one round trip). Each
write keeps its own compare-and-set: one that loses comes back as its
``StaleWriteError`` in the list of outcomes, and the others are stored all the same.

The stores are here (``memory``), in ``router.control.file_store`` (``file``) and in
``router.control.redis_store`` (``redis``). They report and never log:
``FileStateStore.recovered_from`` and
``recovery_reason`` tell the caller that a corrupt file was moved aside.

Exceptions::

    Exception
    ├── StateStoreError    I/O failure, non-JSON data, closed store, unknown kind
    └── StaleWriteError    a compare-and-set lost: the route's version is not the expected one
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "MemoryStateStore",
    "StaleWriteError",
    "StateStore",
    "StateStoreError",
    "StoredState",
    "Write",
    "WriteOutcome",
    "build_state_store",
    "copy_json",
]


@dataclass(frozen=True, slots=True)
class StoredState:
    """One route's stored state and its version (1 after the first write, +1 on each write)."""

    data: Mapping[str, Any]
    version: int


class StateStoreError(Exception):
    """The store cannot do what was asked (I/O failure, non-JSON data, closed store)."""


class StaleWriteError(Exception):
    """A compare-and-set lost: someone else wrote the route since ``expected`` was read."""

    def __init__(self, route: str, expected: int | None, actual: int | None) -> None:
        super().__init__(f"route {route!r}: expected version {expected}, found {actual}")
        self.route = route
        self.expected = expected
        self.actual = actual


Write = tuple[str, Mapping[str, Any], int | None]
"""One write of ``put_many``: (route, data, expected version -- None: the route must not exist)."""

WriteOutcome = StoredState | StaleWriteError
"""What became of one write of ``put_many``: the new state, or the compare-and-set it lost."""


class StateStore(Protocol):
    """Where routes' runtime state is kept; every write is a compare-and-set on a version."""

    async def load_all(self) -> dict[str, StoredState]:
        """Every stored route: name -> state."""

    async def get(self, route: str) -> StoredState | None:
        """The route's state, or None if none is stored."""

    async def put(
        self,
        route: str,
        data: Mapping[str, Any],
        expected_version: int | None,
        *,
        fence: int | None = None,
    ) -> StoredState:
        """Store ``data`` if the current version is ``expected_version`` (None: absent).

        Returns the new state (version + 1); raises StaleWriteError otherwise. A
        shared store also refuses a write whose ``fence`` (the writer's leader
        token) is no longer the current one; a store of one process ignores it.
        """

    async def put_many(self, writes: Sequence[Write]) -> list[WriteOutcome]:
        """Each write as ``put`` (no fence) would do it, in order, all in one go.

        One outcome per write, in order: the new state, or the ``StaleWriteError`` of a
        write that lost its compare-and-set (the others are stored all the same). Data
        that is not a JSON object raises StateStoreError before anything is written.
        """

    async def delete(self, route: str) -> None:
        """Forget the route's state (nothing happens if none is stored)."""

    async def delete_many(self, routes: Sequence[str]) -> None:
        """Forget these routes' states in one go (a file: one rewrite; Redis: one round trip)."""

    async def aclose(self) -> None:
        """Release resources; later calls raise StateStoreError."""


def copy_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy through JSON, so both stores accept and return exactly the same things."""
    try:
        copied = json.loads(json.dumps(data, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise StateStoreError(f"state is not JSON-serialisable: {exc}") from exc
    if not isinstance(copied, dict):
        raise StateStoreError(f"state must be a mapping (got {type(data).__name__})")
    return copied

def _encode(data: Mapping[str, Any]) -> str:
    """``data`` as compact JSON text; StateStoreError if it is not a JSON object."""
    if not isinstance(data, Mapping):
        raise StateStoreError(f"state must be a mapping (got {type(data).__name__})")
    try:
        return json.dumps(data, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StateStoreError(f"state is not JSON-serialisable: {exc}") from exc


class MemoryStateStore:
    """A store that lives as long as the process: for tests and ``state.store: memory``.

    Each route is kept as its JSON text and version: one string per route instead of a
    tree of objects (a tenth of the memory at thousands of routes), and every read
    decodes a fresh copy, so no caller can change what is stored.
    """

    def __init__(self) -> None:
        self._routes: dict[str, tuple[str, int]] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StateStoreError("state store is closed")

    async def load_all(self) -> dict[str, StoredState]:
        """Every stored route: name -> state."""
        self._check_open()
        return {name: StoredState(json.loads(text), version)
                for name, (text, version) in self._routes.items()}

    async def get(self, route: str) -> StoredState | None:
        """The route's state, or None."""
        self._check_open()
        found = self._routes.get(route)
        return None if found is None else StoredState(json.loads(found[0]), found[1])

    async def put(
        self,
        route: str,
        data: Mapping[str, Any],
        expected_version: int | None,
        *,
        fence: int | None = None,
    ) -> StoredState:
        """Compare-and-set the route's state; see ``StateStore.put``."""
        self._check_open()
        text = _encode(data)
        current = self._routes.get(route)
        actual = current[1] if current is not None else None
        if actual != expected_version:
            raise StaleWriteError(route, expected_version, actual)
        version = (actual or 0) + 1
        self._routes[route] = (text, version)
        return StoredState(json.loads(text), version)

    async def put_many(self, writes: Sequence[Write]) -> list[WriteOutcome]:
        """Each write in turn; see ``StateStore.put_many``."""
        self._check_open()
        for _, data, _ in writes:
            _encode(data)  # refuse the whole batch before writing any of it
        outcomes: list[WriteOutcome] = []
        for route, data, expected in writes:
            try:
                outcomes.append(await self.put(route, data, expected))
            except StaleWriteError as exc:
                outcomes.append(exc)
        return outcomes

    async def delete(self, route: str) -> None:
        """Forget the route's state."""
        self._check_open()
        self._routes.pop(route, None)

    async def delete_many(self, routes: Sequence[str]) -> None:
        """Forget these routes' states."""
        self._check_open()
        for route in routes:
            self._routes.pop(route, None)

    async def aclose(self) -> None:
        """Close the store."""
        self._closed = True


def build_state_store(
    kind: str,
    path: Path | None,
    url: str | None,
    key_prefix: str = "traffic-router",
    cache: Path | None = None,
) -> StateStore:
    """The store named by ``state.store``: ``memory``, ``file`` (a path) or ``redis`` (a url)."""
    if kind == "memory":
        return MemoryStateStore()
    if kind == "file":
        if path is None:
            raise StateStoreError("the file state store needs a path")
        from router.control.file_store import FileStateStore  # it builds on this module

        return FileStateStore(path)
    if kind == "redis":
        if not url:
            raise StateStoreError("the redis state store needs state.url")
        from router.control.redis_store import RedisStateStore  # the client only when used

        return RedisStateStore(url, key_prefix, cache=cache)
    raise StateStoreError(f"unknown state store {kind!r} (known: file, memory, redis)")
