"""The router's runtime: owns the config, snapshot, pools, store and background tasks.

``RouterApp`` is started once per process (``start``), serves the proxy ASGI
callable and the admin Starlette app, reloads on demand (``reload``) and stops
after the servers have drained (``stop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from router.config.collector import collector_paused
from router.config.loader import ConfigError, ConfigIssue, parse_config
from router.config.model import Config, ProxySpec, admin_exposure
from router.control.fleet import Fleet
from router.control.health import HealthChecker, probe
from router.control.metric_checks import MetricChecks
from router.control.redis_store import RedisStateStore
from router.control.reload import ReloadResult
from router.control.rollouts import Rollouts
from router.control.store import StateStoreError
from router.control.store_health import WatchedStore, open_store
from router.control.watcher import ConfigWatcher, read_stable_async
from router.notify.sender import Notifier
from router.proxy.entry import ProxyApp
from router.routing.backends import BackendSet
from router.routing.selection import ALL_ROUTES, RouteQuery, route_phase, select_routes
from router.routing.snapshot import CompiledRoute, Snapshot, SnapshotHolder, build_rules
from router.shadow.dispatcher import ShadowDispatcher
from router.telemetry.dashboard_stats import build_stats
from router.telemetry.drift import DriftMonitor
from router.telemetry.events import EventLog, iso_time
from router.telemetry.feedback import GroundTruth
from router.telemetry.inspection import BodyInspector
from router.telemetry.logs import get_logger, register_secret
from router.telemetry.metrics import Metrics
from router.telemetry.quality import QualityWindows
from router.telemetry.windows import WindowSet
from strategies import Observation, get_strategy
from strategies.base import CheckRequest

__all__ = ["RouterApp"]

CONTROLLER_TICK_S = 0.1
STORE_SYNC_S = 1.0


class _AnalysisSink:
    """Feeds finished requests into the analysis windows."""

    __slots__ = ("windows",)

    def __init__(self, windows: WindowSet) -> None:
        self.windows = windows

    def observe(
        self, route: str, variant: str, backend: str, status: int, duration_s: float, error: bool,
        ttfb_s: float | None = None,
    ) -> None:
        self.windows.record(route, variant, time.time(), duration_s, error, ttfb_s)


def _register_secrets(config: Config) -> None:
    """Keep the admin token and webhook secrets out of every log line."""
    if config.admin.token is not None:
        register_secret(config.admin.token.get_secret_value())
    if config.state.url is not None and (password := urlsplit(config.state.url).password):
        register_secret(password)
    for hook in config.notifications:
        if hook.secret is not None:
            register_secret(hook.secret.get_secret_value())


class RouterApp:
    """Everything one router process runs, apart from the HTTP servers themselves."""

    def __init__(self, config_path: str | Path, *, access_log: bool = True) -> None:
        self.config_path = Path(config_path)
        self.metrics = Metrics()
        self.events = EventLog()
        self.notifier = Notifier(
            self.metrics.registry,
            config_version=self._config_version,
            replica=lambda: self.replica_id,
        )
        self.events.listeners.append(self.notifier.offer)
        self.windows = WindowSet()
        self.quality = QualityWindows()
        self.truth = GroundTruth(self.metrics)
        self.drift = DriftMonitor(self.metrics, self.events)
        self.metric_checks = MetricChecks(
            self.metrics, lambda: self.snapshot.routes,
            leading=lambda: self.fleet is None or self.fleet.leading,
        )
        self.holder = SnapshotHolder()
        self.backends = BackendSet()
        self.shadow = ShadowDispatcher(self.metrics, self.events, lambda: self.snapshot.backends)
        self.shadow.truth = self.truth
        self.proxy = ProxyApp(
            self.holder,
            self.metrics,
            sink=_AnalysisSink(self.windows),
            mirror=self.shadow,
            access_log=access_log,
        )
        self.store: WatchedStore | None = None
        self.health = HealthChecker(self.metrics, self.events, lambda: self.snapshot.backends)
        self.rollouts: Rollouts | None = None
        self.fleet: Fleet | None = None
        # The pod name under Kubernetes; the pid tells apart the processes of --workers N.
        self.replica_id = f"{socket.gethostname()}-{os.getpid()}"
        self.ready = False
        self.admin_listen: str | None = None  # where the admin API listens, if not the file's
        self.last_reload: dict[str, Any] = {"ok": True, "at": None, "error": None}
        self._reload_lock = asyncio.Lock()
        self._failed_version: str | None = None
        # Called with each installed config's proxy section (the server's head limits).
        self.on_proxy_spec: list[Callable[[ProxySpec], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._watcher: ConfigWatcher | None = None
        self._log = get_logger("router.app")

    # -- life cycle --------------------------------------------------------

    @staticmethod
    def read_config(path: Path, raw: bytes) -> Config:
        """Validate ``raw`` as the config file at ``path``; raises ConfigError."""
        return parse_config(raw, source=str(path), base_dir=path.absolute().parent)

    async def start(self, config: Config | None = None, raw: bytes | None = None) -> None:
        """Load the config, open the store and pools, and start the background tasks."""
        if raw is None:
            raw = self.config_path.read_bytes()
        if config is None:
            config = self.read_config(self.config_path, raw)
        _register_secrets(config)
        self.store = await open_store(config.state, self.metrics, self.events)
        self.metrics.leader.set(1.0)  # one process decides for its own state
        self.rollouts = Rollouts(
            self.store, self.metrics, self.events, check_runner=self._run_check
        )
        if isinstance(self.store.inner, RedisStateStore):
            self.rollouts.fallback = self.store.inner.cached
        await self._install(config, raw)
        self.last_reload = {"ok": True, "at": iso_time(time.time()), "error": None}
        self._tasks.append(asyncio.create_task(self._controller(), name="controller"))
        if self.store.shared:
            self.fleet = Fleet(
                self.store, self.rollouts, replica=self.replica_id, lease_s=config.state.lease,
                metrics=self.metrics, events=self.events, windows=self.windows,
            )
            self._tasks.append(asyncio.create_task(self.fleet.run(), name="fleet"))
        self._tasks.append(asyncio.create_task(self.drift.run(), name="drift"))
        self._tasks.append(asyncio.create_task(self.metric_checks.run(), name="metric-checks"))
        self._watcher = ConfigWatcher(self.config_path, self._on_file_change)
        self._tasks.append(asyncio.create_task(self._watcher.run(), name="watcher"))
        # An edit between the first read and the watch starting would go unseen.
        self._tasks.append(asyncio.create_task(self._recheck_after_start(), name="recheck"))

    async def stop(self) -> None:
        """Stop background tasks and close pools and the store."""
        self.ready = False
        if self._watcher is not None:
            self._watcher.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.fleet is not None:
            await self.fleet.release()
        await self.health.aclose()
        await self.notifier.aclose()
        await self.shadow.aclose()
        await self.drift.aclose()
        await self.metric_checks.aclose()
        await self.backends.aclose()
        self.proxy.requests_log.flush()
        if self.store is not None:
            await self.store.aclose()

    @property
    def state_read(self) -> bool:
        """Whether the rollout state was read once (from the store, or its cache at start)."""
        return self.rollouts is not None and self.rollouts.state_read

    # -- config ------------------------------------------------------------

    def _config_version(self) -> str | None:
        current = self.holder.current
        return None if current is None else current.version

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot serving now."""
        current = self.holder.current
        if current is None:
            raise RuntimeError("router not started")
        return current

    async def _install(self, config: Config, raw: bytes) -> None:
        """Compile ``config`` into a snapshot and swap it in (the reload's last step)."""
        assert self.rollouts is not None
        version = hashlib.sha256(raw).hexdigest()[:8]
        urls = {name: backend.url for name, backend in config.backends.items()}
        entries = [
            (route.name, get_strategy(route.strategy.type), route.strategy)
            for route in config.routes
        ]
        with collector_paused():  # see router.config.collector
            async with self.rollouts.lock:
                await self._swap_in(config, version, entries, urls)

    async def _swap_in(
        self,
        config: Config,
        version: str,
        entries: list[tuple[str, Any, Any]],
        urls: dict[str, str],
    ) -> None:
        assert self.rollouts is not None
        # Everything that can fail is built before prepare_cells writes any state (SPEC §15).
        built = self.backends.build(config.backends)
        rules = build_rules(config)
        cells = await self.rollouts.prepare_cells(entries, urls)
        backends = self.backends.commit(built)
        routes = tuple(
            CompiledRoute(
                name=name, rule=rule, strategy=strategy, spec=spec, cell=cells[name],
                header=(b"x-router-route", name.encode()),
            )
            for (name, strategy, spec), rule in zip(entries, rules, strict=True)
        )
        snapshot = Snapshot(
            version=version,
            path=self.config_path,
            config=config,
            routes=routes,
            rules=tuple(route.rule for route in routes),
            backends=backends,
        )
        old = self.holder.swap(snapshot)
        self.rollouts.install(routes)
        if self.store is not None and not self.store.shared:
            # A replica whose file lacks a route must not delete the fleet's state for it.
            await self.rollouts.drop_removed({route.name for route in routes})
        for name in {r.name for r in old.routes} - {r.name for r in routes} if old else ():
            self.windows.forget(name)
            self.quality.forget(name)
            self.metric_checks.forget(name)
            self.shadow.forget(name)
            if self.proxy.services.inspector is not None:
                self.proxy.services.inspector.forget(name)
        self.truth.configure({r.name: r.feedback for r in config.routes if r.feedback})
        self.drift.configure({r.name: r.drift for r in config.routes if r.drift})
        self._configure_inspector(config.proxy.inspect_max_body)
        self.notifier.configure(config.notifications)
        self.metric_checks.configure(config.prometheus)
        for apply in self.on_proxy_spec:
            apply(config.proxy)
        for name, backend in backends.items():
            self.metrics.backend_up.labels(name).set(1.0 if backend.up else 0.0)
        self.health.sync()

    def _configure_inspector(self, cap: int) -> None:
        current = self.proxy.services.inspector
        if cap <= 0:
            self.proxy.services.inspector = None
        elif current is None or current.cap != cap:
            self.proxy.services.inspector = BodyInspector(self.metrics, cap=cap)
        if self.proxy.services.inspector is not None:
            self.proxy.services.inspector.truth = self.truth
            self.proxy.services.inspector.drift = self.drift
            self.proxy.services.inspector.quality = self.quality

    async def _run_check(self, request: CheckRequest) -> tuple[bool, str]:
        backend = self.snapshot.backends.get(request.backend)
        if backend is None:
            return False, f"unknown backend {request.backend}"
        return await probe(
            self.health.client, backend.url, request.path, request.expect_status,
            request.timeout_s,
        )

    async def reload(self, source: str) -> ReloadResult:
        """Re-read the file; apply it if valid and changed, else keep serving the old one."""
        async with self._reload_lock:
            current = self.snapshot
            try:
                raw = await read_stable_async(self.config_path)
            except OSError as exc:
                return self._reload_failed(source, [f"cannot read {self.config_path}: {exc}"])
            version = hashlib.sha256(raw).hexdigest()[:8]
            if version == current.version:
                if not self.last_reload["ok"]:
                    # The last good file was saved back: nothing failed any more.
                    self.last_reload = {"ok": True, "at": iso_time(time.time()), "error": None}
                    self._failed_version = None
                return ReloadResult(ok=True, version=version, changed=False)
            if version == self._failed_version and source == "watch":
                # The same broken content seen again: already counted and logged.
                errors = tuple(str(self.last_reload["error"] or "").split("; "))
                return ReloadResult(ok=False, version=current.version, changed=False, errors=errors)
            try:
                # Off the event loop: a large file takes long to parse (SPEC §15).
                config = await asyncio.to_thread(self.read_config, self.config_path, raw)
                refusal = admin_exposure(config, self.admin_listen or current.config.admin.listen)
                if refusal is not None:
                    raise ConfigError([ConfigIssue("admin.token", refusal)])
            except ConfigError as exc:
                self._failed_version = version
                return self._reload_failed(source, [str(issue) for issue in exc.issues])
            self._failed_version = None
            if config.listen != current.config.listen or (
                config.admin.listen != current.config.admin.listen
            ):
                self._log.warning(
                    "restart_required",
                    reason="listen addresses change only on restart",
                    listen=config.listen, admin_listen=config.admin.listen,
                )
            _register_secrets(config)
            try:
                await self._install(config, raw)
            except ValueError as exc:  # a part that cannot be built: nothing was written
                return self._reload_failed(source, [f"cannot install: {exc}"])
            self.metrics.config_reloads.labels("success").inc()
            self.last_reload = {"ok": True, "at": iso_time(time.time()), "error": None}
            self.events.emit(
                "config_reload", route=None, reason=f"reloaded by {source}",
                version=version, previous=current.version,
            )
            return ReloadResult(ok=True, version=version, changed=True)

    def _reload_failed(self, source: str, errors: list[str]) -> ReloadResult:
        self.metrics.config_reloads.labels("failure").inc()
        self.last_reload = {"ok": False, "at": iso_time(time.time()), "error": "; ".join(errors)}
        self.events.emit(
            "config_reload_failed", route=None, reason=f"invalid config, kept version "
            f"{self.snapshot.version}", source=source, errors=errors,
        )
        return ReloadResult(
            ok=False, version=self.snapshot.version, changed=False, errors=tuple(errors)
        )

    async def _recheck_after_start(self) -> None:
        await asyncio.sleep(0.5)
        await self.reload("watch")

    async def _on_file_change(self) -> None:
        await self.reload("watch")

    # -- controller ----------------------------------------------------------

    def observe(self, route: CompiledRoute, window_s: float, now: float) -> Observation:
        """The live numbers of ``route`` over the trailing window."""
        backends = self.snapshot.backends
        # The current second is still filling up: read ``window_s`` whole seconds
        # plus it, so a short window neither misses traffic nor lags a second.
        span = window_s + 1.0
        variants = route.strategy.variants
        if self.fleet is not None:  # the leader judges the whole fleet's traffic
            figures = self.fleet.figures
            stats = {v: figures.stats(route.name, v, window_s) for v in variants}
            totals = {v: figures.tally(route.name, v) for v in variants}
        else:
            stats = {v: self.windows.stats(route.name, v, now, span) for v in variants}
            totals = {v: self.windows.tally(route.name, v) for v in variants}
        return Observation(
            window_s=window_s,
            variants=stats,
            backend_up={name: backend.up for name, backend in backends.items()},
            totals=totals,
            quality=self.quality.view(route.name, variants, now, span),
            feedback=self.truth.tallies(route.name, now),
            metrics=self.metric_checks.readings(route, now),
            shadow=self.shadow.counts(route.name),
        )

    async def _controller(self) -> None:
        assert self.rollouts is not None
        last_sync = time.monotonic()
        ticks = 0
        while True:
            await asyncio.sleep(CONTROLLER_TICK_S)
            ticks += 1
            if ticks % 2 == 0:
                self.proxy.requests_log.flush()
            try:
                if time.monotonic() - last_sync >= STORE_SYNC_S:
                    last_sync = time.monotonic()
                    await self.rollouts.flush_unsaved()
                    if self.store is not None and self.store.kind != "memory":
                        # Another process's changes to read; a memory store is ours alone.
                        await self.rollouts.sync_all()
                if self.fleet is None or self.fleet.leading:
                    await self.rollouts.tick(self.observe)
            except StateStoreError:
                pass  # the store logs and counts its failures; reads are retried next second
            except Exception as exc:  # the controller must outlive one bad tick
                self._log.exception("controller_error", reason=str(exc))

    # -- status ----------------------------------------------------------------

    def _route_status(self, route: CompiledRoute) -> dict[str, Any]:
        assert self.rollouts is not None
        body = self.rollouts.status(route)
        if "shadow" in route.strategy.variants:
            body["shadow"] = self.shadow.route_stats(route.name)
        feedback = self.truth.summary(route.name, time.time())
        if feedback is not None:
            body["feedback"] = feedback
        return body

    def select(self, query: RouteQuery) -> tuple[list[CompiledRoute], dict[str, Any] | None]:
        """The routes a status or stats call covers, and its ``page`` (None: no query)."""
        assert self.rollouts is not None
        routes = self.snapshot.routes
        if not query.given:
            return list(routes), None
        now = time.time()
        active = self.rollouts.active
        page, matched = select_routes(
            routes, active, query, lambda route: route_phase(route, now)
        )
        return page, {
            "matched": matched, "total": len(routes), "active": len(active),
            "offset": query.offset, "limit": query.limit,
        }

    def stats(self, query: RouteQuery = ALL_ROUTES) -> dict[str, Any]:
        """``GET /admin/stats``: per-version rates, latency, health and sparklines."""
        selected, page = self.select(query)
        routes = [(route.name, route.strategy.variants) for route in selected]
        services = self.proxy.services
        body = build_stats(
            self.windows, routes, time.time(), services.inspector, self.drift,
            self.metrics.streamed,
        )
        if page is not None:
            body["page"] = page
        return body

    def status(self, query: RouteQuery = ALL_ROUTES) -> dict[str, Any]:
        """``GET /admin/status`` (SPEC §8), of the routes ``query`` selects."""
        assert self.rollouts is not None
        snapshot = self.snapshot
        selected, page = self.select(query)
        body = {
            "config": {
                "path": str(self.config_path),
                "version": snapshot.version,
                "last_reload": dict(self.last_reload),
            },
            "routes": {route.name: self._route_status(route) for route in selected},
            "replica": {
                "id": self.replica_id,
                "leader": self.fleet.leading if self.fleet is not None else True,
            },
            "state_store": self.store.health() if self.store is not None else None,
            "backends": {
                name: {"url": backend.url, "healthy": backend.up}
                for name, backend in snapshot.backends.items()
            },
        }
        if page is not None:
            body["page"] = page
        return body
