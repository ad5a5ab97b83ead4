"""The file state store (``state.store: file``, the default): every route in one JSON file.

The file is rewritten atomically (a temp file, fsync, rename, fsync of the directory), so
a crash leaves the old content or the new, never half of either; every operation holds an
exclusive ``flock``, so the processes of ``--workers N`` can share it. ``put_many`` writes
any number of routes with one rewrite. The contract (compare-and-set on a version) is in
``router.control.store``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from router.control.store import (
    StaleWriteError,
    StateStoreError,
    StoredState,
    Write,
    WriteOutcome,
    copy_json,
)

__all__ = ["FILE_FORMAT", "FileStateStore", "read_state_file", "write_state_file"]

FILE_FORMAT = 1
_T = TypeVar("_T")
_StatKey = tuple[int, int, int, int]


def _copied(state: StoredState) -> StoredState:
    return StoredState(copy_json(state.data), state.version)


def _apply_put(
    routes: dict[str, StoredState], route: str, data: dict[str, Any], expected: int | None
) -> StoredState:
    """Compare-and-set on ``routes`` in place; the new state, or StaleWriteError."""
    current = routes.get(route)
    actual = current.version if current is not None else None
    if actual != expected:
        raise StaleWriteError(route, expected, actual)
    new = StoredState(data, (actual or 0) + 1)
    routes[route] = new
    return new

def _parse(raw: bytes) -> dict[str, StoredState]:
    """The routes of a state file; ValueError (with the reason) if it is not one."""
    doc = json.loads(raw)
    if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
        raise ValueError(f"not a traffic-router state file of format {FILE_FORMAT}")
    routes = doc.get("routes")
    if not isinstance(routes, dict):
        raise ValueError("'routes' is not an object")
    parsed: dict[str, StoredState] = {}
    for name, entry in routes.items():
        version = entry.get("version") if isinstance(entry, dict) else None
        data = entry.get("data") if isinstance(entry, dict) else None
        if type(version) is not int or version < 1 or not isinstance(data, dict):
            raise ValueError(f"route {name!r}: expected {{'version': int >= 1, 'data': object}}")
        parsed[name] = StoredState(data, version)
    return parsed


def _describe(path: Path, exc: OSError) -> str:
    # strerror only: the message must not name the random temp file, so that the
    # same fault reads the same at every retry (it is logged once per change).
    return f"state file {path}: {exc.strerror or exc}"


def _stat_key(st: os.stat_result) -> _StatKey:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class FileStateStore:
    """All routes in one JSON file, rewritten atomically; safe to share between processes.

    File: ``{"format": 1, "routes": {name: {"version": n, "data": {...}}}}``. Every
    operation runs in a worker thread holding an exclusive ``flock`` on
    ``<name>.lock``, and re-reads the file if it changed, so processes sharing it
    see each other's versions. A file that cannot be read or parsed is renamed to
    ``<name>.corrupt-<UTC timestamp>`` and the store starts empty; ``recovered_from``
    and ``recovery_reason`` then say so, for the caller to log and report.
    """

    def __init__(self, path: Path, *, lock_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.recovered_from: Path | None = None
        self.recovery_reason: str | None = None
        self._lock_timeout = lock_timeout
        self._lock = asyncio.Lock()
        self._cache_key: _StatKey | None = None
        self._cache: dict[str, StoredState] = {}
        self._closed = False

    def stat_key(self) -> tuple[int, int, int, int] | None:
        """The file's (device, inode, mtime, size) now, None if there is none: a rewrite
        (always a new inode) changes it. A stat, cheap enough for the event loop."""
        try:
            return _stat_key(os.stat(self.path))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateStoreError(_describe(self.path, exc)) from exc

    async def load_all(self) -> dict[str, StoredState]:
        """Every stored route; a corrupt file is moved aside and reads as empty."""

        def copied() -> dict[str, StoredState]:
            # In the worker thread: 10,000 routes take some 80 ms to copy, and the
            # controller reads them all every second.
            return {name: _copied(state) for name, state in self._read().items()}

        return await self._run(copied)

    async def get(self, route: str) -> StoredState | None:
        """The route's state as the file has it now, or None."""
        state = (await self._run(self._read)).get(route)
        return _copied(state) if state is not None else None

    async def put(
        self,
        route: str,
        data: Mapping[str, Any],
        expected_version: int | None,
        *,
        fence: int | None = None,
    ) -> StoredState:
        """Compare-and-set against the file's current content, then rewrite it atomically."""
        payload = copy_json(data)

        def put_locked() -> StoredState:
            routes = dict(self._read())
            new = _apply_put(routes, route, payload, expected_version)
            self._write(routes)
            return new

        return _copied(await self._run(put_locked))

    async def put_many(self, writes: Sequence[Write]) -> list[WriteOutcome]:
        """One locked read, every compare-and-set, then one atomic rewrite of the file."""
        payloads = [(route, copy_json(data), expected) for route, data, expected in writes]

        def put_all_locked() -> list[WriteOutcome]:
            routes = dict(self._read())
            outcomes: list[WriteOutcome] = []
            for route, payload, expected in payloads:
                try:
                    outcomes.append(_apply_put(routes, route, payload, expected))
                except StaleWriteError as exc:
                    outcomes.append(exc)
            if any(isinstance(outcome, StoredState) for outcome in outcomes):
                self._write(routes)
            return outcomes

        done = await self._run(put_all_locked)
        return [o if isinstance(o, StaleWriteError) else _copied(o) for o in done]

    async def delete(self, route: str) -> None:
        """Remove the route from the file (no write if it is not there)."""
        await self.delete_many([route])

    async def delete_many(self, routes: Sequence[str]) -> None:
        """Remove these routes from the file with one rewrite (none if none was there)."""
        names = list(routes)

        def delete_locked() -> None:
            kept = dict(self._read())
            removed = [kept.pop(name, None) for name in names]
            if any(state is not None for state in removed):
                self._write(kept)

        await self._run(delete_locked)

    async def aclose(self) -> None:
        """Wait for a running operation, then refuse new ones."""
        async with self._lock:
            self._closed = True

    async def _run(self, operation: Callable[[], _T]) -> _T:
        if self._closed:
            raise StateStoreError("state store is closed")
        async with self._lock:
            return await asyncio.to_thread(self._with_file_lock, operation)

    def _with_file_lock(self, operation: Callable[[], _T]) -> _T:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StateStoreError(_describe(self.path, exc)) from exc
        try:
            self._flock(fd)
            return operation()
        except OSError as exc:
            raise StateStoreError(_describe(self.path, exc)) from exc
        finally:
            os.close(fd)  # also releases the flock

    def _flock(self, fd: int) -> None:
        deadline = time.monotonic() + self._lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StateStoreError(
                        f"timed out after {self._lock_timeout}s waiting for {self.lock_path}"
                    ) from None
                time.sleep(0.005)

    def _read(self) -> dict[str, StoredState]:
        """The file's routes (cached while its inode, mtime and size stay the same)."""
        try:
            key = _stat_key(os.stat(self.path))
        except FileNotFoundError:
            self._cache_key, self._cache = None, {}
            return self._cache
        if key == self._cache_key:
            return self._cache
        try:
            routes = _parse(self.path.read_bytes())
        except (OSError, ValueError) as exc:  # ValueError covers JSON and UTF-8 errors
            self._move_aside(f"{type(exc).__name__}: {exc}")
            return self._cache
        self._cache_key, self._cache = key, routes
        return routes

    def _move_aside(self, reason: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            os.rename(self.path, target)
        except OSError as exc:
            raise StateStoreError(
                f"state file {self.path} is unusable ({reason}) and could not be moved aside: {exc}"
            ) from exc
        self.recovered_from, self.recovery_reason = target, reason
        self._cache_key, self._cache = None, {}

    def _write(self, routes: dict[str, StoredState]) -> None:
        write_state_file(self.path, routes)
        self._cache_key, self._cache = _stat_key(os.stat(self.path)), routes


def write_state_file(path: Path, routes: Mapping[str, StoredState]) -> None:
    """Write ``routes`` in the state file format: a temp file in the same directory,
    fsync, rename over the file, fsync the directory (a crash leaves old or new)."""
    doc = {
        "format": FILE_FORMAT,
        "routes": {name: {"version": s.version, "data": s.data} for name, s in routes.items()},
    }
    raw = json.dumps(doc, indent=2, sort_keys=True).encode()
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(raw)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_state_file(path: Path) -> dict[str, StoredState] | None:
    """The routes of a state file; None if it is missing or unusable."""
    try:
        return _parse(path.read_bytes())
    except (OSError, ValueError):
        return None


