"""Config file watching for hot reload (docs/configuration.md), and reading a file that may
be mid-write.

The watcher watches the config file's *directory*, never the file: editors that
write a new file and rename it over the old one, and Kubernetes ConfigMap
mounts (a ``..data`` symlink swapped to a new timestamped directory), both
replace the file, and a watch on the file itself goes dead after the first such
replacement (watchfiles#235, kubernetes#112677). Any event in the directory
calls ``on_change``; the caller re-reads the file and compares a content hash,
so spurious events are harmless. If the config path is a symlink into another
directory (and not a ConfigMap's own ``..data``), that directory is watched too.

``read_stable`` protects the consumer from an editor that truncates and then
writes the file in pieces: it returns only content seen twice in a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
import watchfiles

__all__ = [
    "ConfigWatcher",
    "UnstableFileError",
    "read_stable",
    "read_stable_async",
]

log = structlog.get_logger(__name__)

_Identity = tuple[tuple[str, int, int], ...]


class UnstableFileError(OSError):
    """The file kept changing for longer than ``read_stable`` was willing to wait."""


class ConfigWatcher:
    """Calls ``on_change`` (at most one call at a time) whenever the config's directory changes.

    Bursts of events are debounced by watchfiles and coalesced here: events that
    arrive while ``on_change`` runs lead to exactly one more call. Errors are
    logged and survived; a directory that disappears is polled for until it
    returns, and then ``on_change`` is called.
    """

    def __init__(
        self,
        path: Path,
        on_change: Callable[[], Awaitable[None]],
        *,
        debounce_ms: int = 150,
        force_polling: bool | None = None,
        recheck_s: float = 1.0,
    ) -> None:
        self.path = Path(os.path.abspath(path))  # absolute, symlinks left as they are
        self._on_change = on_change
        self._debounce_ms = debounce_ms
        self._force_polling = force_polling
        self._recheck_s = recheck_s
        self._stop = asyncio.Event()
        self._pending = asyncio.Event()

    async def run(self) -> None:
        """Watch until ``stop()``; never raises except on cancellation."""
        dispatcher = asyncio.create_task(self._dispatch())
        try:
            while not self._stop.is_set():
                identity = self._identity()
                if not identity:
                    log.warning("config_watch_directory_missing", path=str(self.path.parent))
                    if await self._wait_for_directory():
                        self._pending.set()
                    continue
                try:
                    await self._watch(identity)
                except Exception as exc:
                    log.warning("config_watch_failed", path=str(self.path), error=repr(exc))
                    if self._identity() and not self._force_polling:
                        # e.g. the inotify watch limit is reached: polling works everywhere
                        log.warning("config_watch_polling", path=str(self.path))
                        self._force_polling = True
                    await self._sleep(self._recheck_s)
        finally:
            dispatcher.cancel()
            await asyncio.gather(dispatcher, return_exceptions=True)

    def stop(self) -> None:
        """Ask ``run()`` to return (within about 50 ms)."""
        self._stop.set()

    def _directories(self) -> list[Path]:
        directory = self.path.parent
        directories = [directory]
        target_dir = Path(os.path.realpath(self.path)).parent
        if target_dir.is_dir() and not target_dir.is_relative_to(os.path.realpath(directory)):
            directories.append(target_dir)
        return directories

    def _identity(self) -> _Identity:
        """The watched directories with their inodes; empty if the config's directory is gone."""
        identity = []
        for directory in self._directories():
            try:
                st = os.stat(directory)
            except OSError:
                return ()
            identity.append((str(directory), st.st_dev, st.st_ino))
        return tuple(identity)

    async def _watch(self, identity: _Identity) -> None:
        """One watchfiles session; returns when stopped or when the directories changed."""
        async for changes in watchfiles.awatch(
            *(path for path, _, _ in identity),
            watch_filter=None,
            debounce=self._debounce_ms,
            stop_event=self._stop,
            rust_timeout=max(1, int(self._recheck_s * 1000)),
            yield_on_timeout=True,
            force_polling=self._force_polling,
            recursive=False,
        ):
            if changes and self._relevant(changes):
                self._pending.set()
            if self._identity() != identity:
                self._pending.set()
                return

    def _relevant(self, changes: set[tuple[Any, str]]) -> bool:
        """Whether a batch touches the config: its name, its symlink target, or ``..data``.

        Logs or state files that share the directory must not cause re-reads.
        """
        target = os.path.realpath(self.path)
        for _, changed in changes:
            name = os.path.basename(changed)
            if name == self.path.name or name.startswith("..") or changed == target:
                return True
            if os.path.basename(target) == name:
                return True
        return False

    async def _wait_for_directory(self) -> bool:
        """Poll until the config's directory exists again; False if stopped first."""
        while not self._stop.is_set():
            if self._identity():
                return True
            await self._sleep(0.1)
        return False

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once on ``stop()``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _dispatch(self) -> None:
        while True:
            await self._pending.wait()
            self._pending.clear()
            try:
                await self._on_change()
            except Exception as exc:
                log.warning("config_watch_callback_failed", path=str(self.path), error=repr(exc))


def read_stable(path: Path, settle_s: float = 0.05, max_wait_s: float = 2.0) -> bytes:
    """The file's content once two reads ``settle_s`` apart agree, so a half-written file is
    never returned.

    A missing file (a ConfigMap symlink briefly pointing nowhere) is retried too.
    Raises UnstableFileError, or the last read's error, after ``max_wait_s``.
    """
    deadline = time.monotonic() + max_wait_s
    previous: bytes | None = None
    while True:
        try:
            current = Path(path).read_bytes()
        except FileNotFoundError:
            if time.monotonic() >= deadline:
                raise
            previous = None
        else:
            if current == previous:
                return current
            if time.monotonic() >= deadline:
                raise UnstableFileError(f"{path} was still changing after {max_wait_s}s")
            previous = current
        time.sleep(settle_s)


async def read_stable_async(path: Path, settle_s: float = 0.05, max_wait_s: float = 2.0) -> bytes:
    """``read_stable`` in a worker thread, for use on the event loop."""
    return await asyncio.to_thread(read_stable, path, settle_s, max_wait_s)
