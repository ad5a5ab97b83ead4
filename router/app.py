"""The composition root: builds the router's parts, wires them, starts and stops them.

``RouterApp`` is started once per process (``start``), serves the proxy ASGI
callable and the admin Starlette app, and stops after the servers have drained
(``stop``). The work is in the parts: reloads in ``router.control.reload``, the
rollout loop in ``router.control.controller``, the request path in
``router.proxy``. What stays here is which part gets which other part, and
``_install``: telling every part about a new config once it is validated.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from router.config.collector import collector_paused, free_piecewise
from router.config.loader import read_config
from router.config.model import Config, ProxySpec
from router.control.controller import Controller, LiveObserver
from router.control.fleet import Fleet
from router.control.health import HealthChecker, probe
from router.control.metric_checks import MetricChecks
from router.control.redis_store import RedisStateStore
from router.control.reload import Reloader, ReloadResult
from router.control.rollouts import Rollouts
from router.control.status import StatusViews
from router.control.store import StateStoreError
from router.control.store_health import WatchedStore, open_store
from router.notify.sender import Notifier
from router.proxy.entry import ProxyApp
from router.routing.backends import BackendSet
from router.routing.matching import MatchRule
from router.routing.selection import ALL_ROUTES, RouteQuery
from router.routing.snapshot import (
    Snapshot,
    SnapshotHolder,
    build_rules,
    build_snapshot,
)
from router.shadow.dispatcher import ShadowDispatcher
from router.telemetry.drift import DriftMonitor
from router.telemetry.events import EventLog
from router.telemetry.feedback import GroundTruth
from router.telemetry.inspection import BodyInspector
from router.telemetry.logs import register_secret
from router.telemetry.metrics import Metrics
from router.telemetry.quality import QualityWindows
from router.telemetry.windows import WindowSet
from strategies import StrategySpec, get_strategy
from strategies.base import CheckRequest, Strategy

__all__ = ["RouterApp"]


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


def _route_entries(
    config: Config,
) -> tuple[list[tuple[str, Strategy[Any, Any], StrategySpec]], tuple[MatchRule, ...]]:
    """Each route's (name, strategy, spec), and its match rule, in file order."""
    entries = [
        (route.name, get_strategy(route.strategy.type), route.strategy) for route in config.routes
    ]
    return entries, build_rules(config)


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
        self.reloader = Reloader(
            self.config_path, self._install, lambda: self.snapshot, self.metrics, self.events
        )
        self.observe = LiveObserver(
            self.windows, self.quality, self.truth, self.metric_checks, self.shadow.counts,
            lambda: self.snapshot.backends, lambda: self.fleet,
        )
        self.views = self._status_views()
        # Called with each installed config's proxy section (the listeners' limits).
        self.on_proxy_spec: list[Callable[[ProxySpec], None]] = []
        self._tasks: list[asyncio.Task[None]] = []

    def _status_views(self) -> StatusViews:
        """The admin's read model over this router's parts."""
        return StatusViews(
            config_path=self.config_path,
            replica_id=self.replica_id,
            snapshot=lambda: self.snapshot,
            rollouts=lambda: self.rollouts,
            store=lambda: self.store,
            fleet=lambda: self.fleet,
            inspector=lambda: self.proxy.services.inspector,
            shadow_stats=self.shadow.route_stats,
            reloader=self.reloader,
            windows=self.windows,
            truth=self.truth,
            drift=self.drift,
            metrics=self.metrics,
        )

    # -- life cycle --------------------------------------------------------

    async def start(self, config: Config | None = None, raw: bytes | None = None) -> None:
        """Load the config, open the store and pools, and start the background tasks."""
        if raw is None:
            raw = self.config_path.read_bytes()
        if config is None:
            config = read_config(self.config_path, raw)
        _register_secrets(config)  # before the store can log its URL
        self.store = await open_store(config.state, self.metrics, self.events)
        self.metrics.leader.set(1.0)  # one process decides for its own state
        self.rollouts = Rollouts(
            self.store, self.metrics, self.events, check_runner=self._run_check
        )
        store = self.store
        self.rollouts.store_ok = lambda: store.ok
        if isinstance(store.inner, RedisStateStore):
            self.rollouts.fallback = store.inner.cached
        await self.reloader.start(config, raw)
        if self.store.shared:
            self.fleet = Fleet(
                self.store, self.rollouts, replica=self.replica_id, lease_s=config.state.lease,
                metrics=self.metrics, events=self.events, windows=self.windows,
                quality=self.quality, truth=self.truth, drift=self.drift,
                config_version=lambda: self.snapshot.version,
            )
        controller = Controller(
            self.rollouts, self.store, self.observe,
            leading=lambda: self.fleet is None or self.fleet.leading,
        )
        self._start_tasks(
            ("controller", controller.run()),
            ("access-log", self.proxy.requests_log.flush_every()),
            *((("fleet", self.fleet.run()),) if self.fleet is not None else ()),
            ("drift", self.drift.run()),
            ("metric-checks", self.metric_checks.run()),
            ("watcher", self.reloader.watch()),
        )

    def _start_tasks(self, *named: tuple[str, Coroutine[Any, Any, None]]) -> None:
        for name, coroutine in named:
            self._tasks.append(asyncio.create_task(coroutine, name=name))

    async def stop(self) -> None:
        """Stop background tasks and close pools and the store."""
        self.ready = False
        self.reloader.stop()
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

    async def recent_events(self, limit: int) -> list[dict[str, Any]]:
        """``/admin/events``: the fleet's decisions (from Redis), else this replica's."""
        if self.fleet is not None:
            with contextlib.suppress(StateStoreError):
                return await self.fleet.beat.recent_events(limit)
        return self.events.recent(limit)

    @property
    def state_read(self) -> bool:
        """Whether the rollout state was read once (from the store, or its cache at start)."""
        return self.rollouts is not None and self.rollouts.state_read

    async def reload(self, source: str) -> ReloadResult:
        """Re-read the config file (``router.control.reload``); ``source`` says who asked."""
        return await self.reloader.reload(source)

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

    async def _install(self, config: Config, version: str) -> None:
        """Compile ``config`` into a snapshot, swap it in and tell every part (under the lock).

        What takes long at thousands of routes (the route list, the snapshot and its
        index, freeing the replaced one) is done in worker threads, so the event loop
        keeps serving; the swap itself is one assignment on the loop. Raises ValueError,
        having written nothing, when a part cannot be built.
        """
        assert self.rollouts is not None
        _register_secrets(config)
        urls = {name: backend.url for name, backend in config.backends.items()}
        with collector_paused():  # see router.config.collector
            entries, rules = await asyncio.to_thread(_route_entries, config)
            async with self.rollouts.lock:
                # Everything that can fail is built before prepare_cells writes any state.
                built = self.backends.build(config.backends)
                cells = await self.rollouts.prepare_cells(entries, urls)
                backends = self.backends.commit(built)
                snapshot = await asyncio.to_thread(
                    build_snapshot, config, version, self.config_path,
                    zip(entries, rules, strict=True), cells, backends,
                )
                old = self.holder.swap(snapshot)
                await self.rollouts.install(snapshot.routes)
                if self.store is not None and not self.store.shared:
                    # A replica whose file lacks a route must not delete the fleet's state for it.
                    await self.rollouts.drop_removed({route.name for route in snapshot.routes})
                if old is not None:
                    self._forget({r.name for r in old.routes} - {r.name for r in snapshot.routes})
                pieces = [] if old is None else [old, *old.routes]
                del old
                free_piecewise(pieces)  # see router.config.collector
                self._configure(config)

    def _forget(self, routes: Iterable[str]) -> None:
        """Drop what the parts keep of routes the new config no longer has."""
        for name in routes:
            self.windows.forget(name)
            self.quality.forget(name)
            self.metric_checks.forget(name)
            self.shadow.forget(name)
            if self.proxy.services.inspector is not None:
                self.proxy.services.inspector.forget(name)

    def _configure(self, config: Config) -> None:
        """Hand each part its section of the new config."""
        self.truth.configure({r.name: r.feedback for r in config.routes if r.feedback})
        self.drift.configure({r.name: r.drift for r in config.routes if r.drift})
        self._configure_inspector(config.proxy.inspect_max_body)
        self.notifier.configure(config.notifications)
        self.metric_checks.configure(config.prometheus)
        for apply in self.on_proxy_spec:
            apply(config.proxy)
        for name, backend in self.snapshot.backends.items():
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

    # -- views (router.control.status) -------------------------------------------

    def stats(self, query: RouteQuery = ALL_ROUTES) -> dict[str, Any]:
        """``GET /admin/stats``: per-version rates, latency, health and sparklines."""
        return self.views.stats(query)

    def status(self, query: RouteQuery = ALL_ROUTES) -> dict[str, Any]:
        """``GET /admin/status``, of the routes ``query`` selects."""
        return self.views.status(query)
