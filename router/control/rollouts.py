"""Rollout state at run time: the bridge between strategies (pure) and the store (I/O).

For each route this keeps a ``RouteCell`` (state + compiled picker), persists
every change through the ``StateStore`` with compare-and-set, answers operator
actions, and runs the controller's tick (observations -> ``advance``). Events
that come out of transitions are logged, kept for ``/admin/events`` and
counted in the rollout metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from router.control.store import StaleWriteError, StateStore, StoredState
from router.routing.snapshot import CompiledRoute, RouteCell
from router.telemetry.events import EventLog
from router.telemetry.logs import get_logger
from router.telemetry.metrics import Metrics
from strategies import Command, Observation, StrategySpec, Transition
from strategies.base import CheckRequest, Strategy

__all__ = ["CheckRunner", "Observer", "Rollouts", "UnknownRouteError"]

Observer = Callable[[CompiledRoute, float, float], Observation]
"""(route, window seconds, now) -> the live numbers of that route."""

CheckRunner = Callable[[CheckRequest], Awaitable[tuple[bool, str]]]
"""Runs a strategy's pre-transition HTTP check: (ok, reason)."""


class UnknownRouteError(LookupError):
    """No route of that name in the running config (HTTP 404)."""


def _envelope(strategy: Strategy[Any, Any], identity: str, state: Any) -> dict[str, Any]:
    return {"strategy": strategy.name, "identity": identity, "state": strategy.dump_state(state)}


class Rollouts:
    """Live rollout state of every route, persisted in a ``StateStore``."""

    def __init__(
        self,
        store: StateStore,
        metrics: Metrics,
        events: EventLog,
        *,
        clock: Callable[[], float] = time.time,
        check_runner: CheckRunner | None = None,
    ) -> None:
        self.store = store
        self.check_runner = check_runner
        self._checks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.metrics = metrics
        self.events = events
        self.clock = clock
        self.routes: dict[str, CompiledRoute] = {}
        # One writer at a time: actions, controller ticks, check results and a
        # reload's prepare->install must not interleave, or a state change made
        # in between would land on a cell the reload is about to replace.
        self.lock = asyncio.Lock()
        self._log = get_logger("router.control.rollouts")

    async def prepare_cells(
        self,
        routes: list[tuple[str, Strategy[Any, Any], StrategySpec]],
        backend_urls: Mapping[str, str],
    ) -> dict[str, RouteCell]:
        """Cells for a new config, before it is swapped in (call with ``lock`` held).

        A route whose identity is unchanged keeps its live state (fitted to
        the edited spec by ``reconcile``); otherwise the stored state is used
        when its identity matches, else the strategy's initial state.
        """
        now = self.clock()
        stored = await self.store.load_all()
        cells: dict[str, RouteCell] = {}
        for name, strategy, spec in routes:
            identity = strategy.identity(spec, backend_urls)
            live = self.routes.get(name)
            state: Any = None
            version: int | None = None
            events: tuple[Any, ...] = ()
            if live is not None and live.strategy is strategy and live.cell.identity == identity:
                state, version = live.cell.state, live.cell.version
            else:
                found = stored.get(name)
                state = self._load(name, strategy, identity, found)
                version = found.version if found is not None else None
            if state is None:
                state = strategy.initial_state(spec, now)
                events = (("route_started", f"new rollout state for {strategy.name} route"),)
            else:
                transition: Transition[Any] = strategy.reconcile(spec, state, now)
                state = transition.state
                for event in transition.events:
                    self._emit(name, event.kind, event.reason, dict(event.fields))
            cell = RouteCell(state=state, picker=strategy.picker(spec, state), version=version,
                             identity=identity)
            await self._persist(name, strategy, spec, cell)
            cells[name] = cell
            for kind, reason in events:
                self._log.info(kind, route=name, reason=reason, identity=identity)
        return cells

    def _load(
        self, name: str, strategy: Strategy[Any, Any], identity: str, found: StoredState | None
    ) -> Any:
        if found is None:
            return None
        data = found.data
        if data.get("strategy") != strategy.name or data.get("identity") != identity:
            return None
        try:
            return strategy.load_state(data.get("state", {}))
        except ValueError as exc:
            self._log.warning("state_unusable", route=name, reason=str(exc))
            return None

    async def _persist(
        self, name: str, strategy: Strategy[Any, Any], spec: StrategySpec, cell: RouteCell
    ) -> None:
        """Write a prepared cell; adopt what another replica stored meanwhile, if usable."""
        data = _envelope(strategy, cell.identity, cell.state)
        try:
            cell.version = (await self.store.put(name, data, cell.version)).version
            return
        except StaleWriteError:
            current = await self.store.get(name)
        adopted = self._load(name, strategy, cell.identity, current)
        if current is not None and adopted is not None:
            cell.state, cell.version = adopted, current.version
            cell.picker = strategy.picker(spec, adopted)
            return
        expected = current.version if current else None
        cell.version = (await self.store.put(name, data, expected)).version

    def install(self, routes: tuple[CompiledRoute, ...]) -> None:
        """Adopt the routes of a swapped-in snapshot; forget removed ones."""
        fresh = {route.name: route for route in routes}
        for name, old in self.routes.items():
            if name not in fresh:
                self.metrics.forget_route(name, old.strategy.variants)
        self.routes = fresh
        for route in routes:
            self._publish(route)

    async def drop_removed(self, keep: set[str]) -> None:
        """Delete stored state of routes that are no longer in the config."""
        for name in (await self.store.load_all()).keys() - keep:
            await self.store.delete(name)

    def status(self, route: CompiledRoute) -> dict[str, Any]:
        """The route's part of ``/admin/status``."""
        strategy, spec, state = route.strategy, route.spec, route.cell.state
        body: dict[str, Any] = {"strategy": strategy.name}
        body.update(strategy.status(spec, state, self.clock()))
        body["backends"] = dict(strategy.backends(spec, state))
        return body

    def _publish(self, route: CompiledRoute) -> None:
        status = route.strategy.status(route.spec, route.cell.state, self.clock())
        weights = {k: float(v) for k, v in status.get("weights", {}).items()}
        self.metrics.set_rollout(route.name, str(status.get("phase", "")), weights)

    async def act(self, name: str, command: Command, reason: str) -> dict[str, Any]:
        """Carry out an operator's action; raises UnknownRouteError or ActionRejectedError."""
        async with self.lock:
            route = self.routes.get(name)
            if route is None:
                raise UnknownRouteError(name)
            for _ in range(3):  # lost a compare-and-set to another replica: retry on its state
                await self.sync_route(route)
                transition = route.strategy.apply(
                    route.spec, route.cell.state, command, self.clock(), reason
                )
                if await self._commit(route, transition, trigger="manual", action=command.value):
                    break
            return self.status(route)

    async def _commit(
        self, route: CompiledRoute, transition: Transition[Any], *, trigger: str, action: str = ""
    ) -> bool:
        """Persist and install a transition; False when another replica wrote first."""
        cell = route.cell
        if transition.state != cell.state:
            data = _envelope(route.strategy, cell.identity, transition.state)
            try:
                stored = await self.store.put(route.name, data, cell.version)
            except StaleWriteError:
                await self.sync_route(route)
                return False
            cell.state = transition.state
            cell.version = stored.version
            cell.picker = route.strategy.picker(route.spec, transition.state)
            self._publish(route)
        for event in transition.events:
            fields = dict(event.fields)
            if event.kind == "rollback":
                fields.setdefault("trigger", trigger)
                self.metrics.rollbacks.labels(route.name, str(fields["trigger"])).inc()
            if action:
                fields.setdefault("action", action)
            self._emit(route.name, event.kind, event.reason, fields)
        return True

    def _emit(self, route: str, kind: str, reason: str, fields: dict[str, Any]) -> None:
        self.events.emit(kind, route=route, reason=reason, **fields)

    async def sync_route(self, route: CompiledRoute) -> None:
        """Adopt a newer state written by another replica, if any."""
        found = await self.store.get(route.name)
        self._adopt(route, found)

    def _adopt(self, route: CompiledRoute, found: StoredState | None) -> None:
        cell = route.cell
        if found is None or (cell.version is not None and found.version <= cell.version):
            return
        state = self._load(route.name, route.strategy, cell.identity, found)
        if state is None:
            return
        cell.state, cell.version = state, found.version
        cell.picker = route.strategy.picker(route.spec, state)
        self._publish(route)

    async def sync_all(self) -> None:
        """Adopt every newer state in the store (other replicas' actions and steps)."""
        async with self.lock:
            stored = await self.store.load_all()
            for route in list(self.routes.values()):
                self._adopt(route, stored.get(route.name))

    async def tick(self, observe: Observer) -> None:
        """One controller step for every route: observe, advance, persist, publish."""
        now = self.clock()
        for route in list(self.routes.values()):
            async with self.lock:
                if self.routes.get(route.name) is not route:
                    continue  # replaced by a reload meanwhile
                strategy, spec, state = route.strategy, route.spec, route.cell.state
                window = strategy.analysis_window(spec, state)
                observation = observe(route, window, now) if window else None
                transition = strategy.advance(spec, state, observation, now)
                if transition.state != state or transition.events:
                    await self._commit(route, transition, trigger="analysis")
                self._start_checks(route)

    def _start_checks(self, route: CompiledRoute) -> None:
        pending = getattr(route.strategy, "pending_checks", None)
        if pending is None or self.check_runner is None:
            return
        for request in pending(route.spec, route.cell.state):
            key = (route.name, request.key)
            if key not in self._checks:
                task = asyncio.create_task(self._run_check(route.name, request))
                self._checks[key] = task
                task.add_done_callback(self._check_done)

    def _check_done(self, task: asyncio.Task[None]) -> None:
        for key, running in list(self._checks.items()):
            if running is task:
                del self._checks[key]

    async def _run_check(self, name: str, request: CheckRequest) -> None:
        assert self.check_runner is not None
        ok, reason = await self.check_runner(request)
        async with self.lock:
            route = self.routes.get(name)
            result = getattr(route.strategy, "check_result", None) if route else None
            if route is None or result is None:
                return
            transition = result(
                route.spec, route.cell.state, request.key, ok, reason, self.clock()
            )
            await self._commit(route, transition, trigger="check")
