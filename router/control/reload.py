"""Config reloads in one straight line: watcher -> reload -> loader -> install.

``Reloader.reload`` reads the file (``read_stable_async``: never half a write),
skips content it already serves, validates it (``router.config.loader``), and
hands a good config with its version to ``install``; a bad one is counted,
logged as an event and leaves the old config serving. ``watch`` runs the
directory watcher that calls ``reload("watch")``; SIGHUP and the admin API call
``reload`` with their own source.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.config.collector import free_piecewise
from router.config.loader import ConfigError, ConfigIssue, config_version, read_config
from router.config.model import Config, admin_exposure
from router.control.watcher import ConfigWatcher, read_stable_async
from router.routing.snapshot import Snapshot
from router.telemetry.events import EventLog, iso_time
from router.telemetry.logs import get_logger
from router.telemetry.metrics import Metrics

__all__ = ["Install", "ReloadResult", "Reloader"]

# Compiles a validated config of the given version into a snapshot and swaps it in.
Install = Callable[[Config, str], Awaitable[None]]

# An edit between the first read and the watch starting would go unseen: read once more.
_RECHECK_AFTER_START_S = 0.5


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did: ``ok``, the version now serving, whether it changed, and errors."""

    ok: bool
    version: str
    changed: bool
    errors: tuple[str, ...] = ()


class Reloader:
    """Re-reads the config file on demand and installs it when it is valid and new."""

    def __init__(
        self, path: Path, install: Install, current: Callable[[], Snapshot],
        metrics: Metrics, events: EventLog,
    ) -> None:
        self.path = path
        self._install = install
        self._current = current
        self._metrics = metrics
        self._events = events
        self._lock = asyncio.Lock()
        self._failed_version: str | None = None
        self._watcher: ConfigWatcher | None = None
        self.last_reload: dict[str, Any] = {"ok": True, "at": None, "error": None}
        self.admin_listen: str | None = None  # where the admin API listens, if not the file's
        self._log = get_logger("router.control.reload")

    async def start(self, config: Config, raw: bytes) -> None:
        """Install the first config (already read and validated by the caller)."""
        await self._install(config, config_version(raw))
        self._succeeded()

    async def watch(self) -> None:
        """Reload whenever the config's directory changes, until ``stop``."""
        self._watcher = ConfigWatcher(self.path, self._on_change)
        recheck = asyncio.create_task(self._recheck(), name="reload-recheck")
        try:
            await self._watcher.run()
        finally:
            recheck.cancel()

    def stop(self) -> None:
        """Stop watching."""
        if self._watcher is not None:
            self._watcher.stop()

    async def reload(self, source: str) -> ReloadResult:
        """Re-read the file; apply it if valid and changed, else keep serving the old one."""
        async with self._lock:
            # Only the version and listen addresses of the serving config are kept here:
            # holding the snapshot would free the replaced one on the event loop.
            previous, listens = self._serving()
            try:
                raw = await read_stable_async(self.path)
            except OSError as exc:
                return self._failed(source, [f"cannot read {self.path}: {exc}"])
            version = config_version(raw)
            if version == previous:
                if not self.last_reload["ok"]:
                    # The last good file was saved back: nothing failed any more.
                    self._succeeded()
                return ReloadResult(ok=True, version=version, changed=False)
            if version == self._failed_version and source == "watch":
                # The same broken content seen again: already counted and logged.
                errors = tuple(str(self.last_reload["error"] or "").split("; "))
                return ReloadResult(ok=False, version=previous, changed=False, errors=errors)
            try:
                config = await self._validate(raw, listens[1])
            except ConfigError as exc:
                self._failed_version = version
                return self._failed(source, [str(issue) for issue in exc.issues])
            self._warn_on_restart_only_changes(listens, config)
            try:
                await self._install(config, version)
            except ValueError as exc:  # a part that cannot be built: nothing was written
                return self._failed(source, [f"cannot install: {exc}"])
            # The routes' models are compiled now and read no more: freed off the loop.
            pieces = [config, *config.routes]
            del config
            free_piecewise(pieces)
            self._metrics.config_reloads.labels("success").inc()
            self._succeeded()
            self._events.emit(
                "config_reload", route=None, reason=f"reloaded by {source}",
                version=version, previous=previous,
            )
            return ReloadResult(ok=True, version=version, changed=True)

    def _serving(self) -> tuple[str, tuple[str, str]]:
        """The serving config's version and its (listen, admin listen)."""
        current = self._current()
        return current.version, (current.config.listen, current.config.admin.listen)

    async def _validate(self, raw: bytes, admin_listen: str) -> Config:
        """The new config, or ConfigError; parsed off the event loop (a large file takes long)."""
        config = await asyncio.to_thread(read_config, self.path, raw)
        refusal = admin_exposure(config, self.admin_listen or admin_listen)
        if refusal is not None:
            raise ConfigError([ConfigIssue("admin.token", refusal)])
        return config

    async def _on_change(self) -> None:
        await self.reload("watch")

    async def _recheck(self) -> None:
        await asyncio.sleep(_RECHECK_AFTER_START_S)
        await self.reload("watch")

    def _succeeded(self) -> None:
        self._failed_version = None
        self.last_reload = {"ok": True, "at": iso_time(time.time()), "error": None}

    def _failed(self, source: str, errors: list[str]) -> ReloadResult:
        version = self._current().version
        self._metrics.config_reloads.labels("failure").inc()
        self.last_reload = {"ok": False, "at": iso_time(time.time()), "error": "; ".join(errors)}
        self._events.emit(
            "config_reload_failed", route=None, reason=f"invalid config, kept version {version}",
            source=source, errors=errors,
        )
        return ReloadResult(ok=False, version=version, changed=False, errors=tuple(errors))

    def _warn_on_restart_only_changes(self, old: tuple[str, str], new: Config) -> None:
        if (new.listen, new.admin.listen) != old:
            self._log.warning(
                "restart_required",
                reason="listen addresses change only on restart",
                listen=new.listen, admin_listen=new.admin.listen,
            )
