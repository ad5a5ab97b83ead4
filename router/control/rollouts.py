"""Rollout state at run time: the bridge between strategies (pure) and the store (I/O).

For each route this keeps a ``RouteCell`` (state + compiled picker), persists
every change through the ``StateStore`` with compare-and-set, answers operator
actions, and runs the controller's tick (observations -> ``advance``). Events
that come out of transitions are logged, kept for ``/admin/events`` and
counted in the rollout metrics.

Building a new config's cells (``prepare_cells``) is in ``router.control.prepare``.

A store that cannot be written never blocks a rollback: what the store could
not take is held in memory and written later (``router.control.pending``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from router.control.checks import CheckRunner, PendingChecks
from router.control.pending import PendingWrites, StoreUnavailableError, envelope, rolls_back
from router.control.prepare import YIELD_EVERY, CellPreparation
from router.control.store import StaleWriteError, StateStore, StateStoreError, StoredState
from router.routing.snapshot import CompiledRoute
from router.telemetry.events import EventLog
from router.telemetry.logs import get_logger
from router.telemetry.metrics import Metrics
from strategies import ActionRejectedError, Command, Observation, Transition
from strategies.base import CheckRequest

__all__ = ["CheckRunner", "Observer", "Rollouts", "StoreUnavailableError", "UnknownRouteError"]

Observer = Callable[[CompiledRoute, float, float], Observation]
"""(route, window seconds, now) -> the live numbers of that route."""


class UnknownRouteError(LookupError):
    """No route of that name in the running config (HTTP 404)."""


class Rollouts(CellPreparation):
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
        self.checks = PendingChecks(check_runner, self._check_result)
        self.metrics = metrics
        self.events = events
        self.clock = clock
        self.routes: dict[str, CompiledRoute] = {}
        # The routes whose rollout is under way: what the tick visits (see ``_publish``).
        self.active: dict[str, CompiledRoute] = {}
        # One writer at a time: actions, controller ticks, check results and a
        # reload's prepare->install must not interleave, or a state change made
        # in between would land on a cell the reload is about to replace.
        self.lock = asyncio.Lock()
        self.pending = PendingWrites(store, clock)
        # False until the store has been read once (a replica without it is not ready).
        self.state_read = False
        # Read when the store cannot be, at start: the last state seen (None: none kept).
        self.fallback: Callable[[], Mapping[str, StoredState] | None] = lambda: None
        # Whether the store answered its last call: a rollback does not wait on one that
        # is known to be down (a hung Redis costs a timeout per call).
        self.store_ok: Callable[[], bool] = lambda: True
        # Routes removed by reloads whose stored state is still to delete (drop_removed).
        self._removed: set[str] = set()
        self._swept = False
        # The fleet leader's fencing token, carried by the controller's writes.
        self.fence: int | None = None
        self._log = get_logger("router.control.rollouts")
    async def install(self, routes: tuple[CompiledRoute, ...]) -> None:
        """Adopt the routes of a swapped-in snapshot; forget removed ones.

        Only new cells are published (a kept cell's metrics are current), with a turn of
        the event loop every few dozen: 10,000 of them took a quarter of a second.
        """
        fresh = {route.name: route for route in routes}
        previous, was_active = self.routes, self.active
        for name, old in previous.items():
            if name not in fresh:
                self.metrics.forget_route(name, old.strategy.variants)
                self._removed.add(name)
        self.routes, self.active = fresh, {}
        for done, route in enumerate(routes, 1):
            kept = previous.get(route.name)
            if done % (YIELD_EVERY * 8) == 0:
                await asyncio.sleep(0)
            if kept is None or kept.cell is not route.cell:
                self._publish(route)
            elif route.name in was_active:
                self.active[route.name] = route

    async def drop_removed(self, keep: set[str]) -> None:
        """Delete stored state of routes that are no longer in the config.

        The first call sweeps the store (routes removed while no router ran);
        later ones delete what the reloads since removed.
        """
        if self._swept:
            gone, self._removed = self._removed - keep, set()
        else:
            gone = (await self.store.load_all()).keys() - keep
            self._swept, self._removed = True, set()
        if gone:
            await self.store.delete_many(sorted(gone))  # a state file: one rewrite for them all

    def status(self, route: CompiledRoute) -> dict[str, Any]:
        """The route's part of ``/admin/status``."""
        strategy, spec, state = route.strategy, route.spec, route.cell.state
        body: dict[str, Any] = {"strategy": strategy.name}
        body.update(strategy.status(spec, state, self.clock()))
        body["backends"] = dict(strategy.backends(spec, state))
        return body

    def _publish(self, route: CompiledRoute) -> None:
        """Metrics and the active set after the route's state changed."""
        status = route.strategy.status(route.spec, route.cell.state, self.clock())
        weights = {k: float(v) for k, v in status.get("weights", {}).items()}
        self.metrics.set_rollout(route.name, str(status.get("phase", "")), weights)
        active = getattr(route.strategy, "active", None)
        if active is None or active(route.spec, route.cell.state):
            self.active[route.name] = route
        else:
            self.active.pop(route.name, None)

    async def act(self, name: str, command: Command, reason: str) -> dict[str, Any]:
        """Carry out an operator's action; raises UnknownRouteError or ActionRejectedError."""
        async with self.lock:
            route = self.routes.get(name)
            if route is None:
                raise UnknownRouteError(name)
            for _ in range(3):  # lost a compare-and-set to another replica: retry on its state
                try:
                    if command is not Command.ROLLBACK or self.store_ok():
                        await self.sync_route(route)
                except StateStoreError as exc:
                    if command is not Command.ROLLBACK:
                        raise StoreUnavailableError(str(exc)) from exc
                transition = route.strategy.apply(
                    route.spec, route.cell.state, command, self.clock(), reason
                )
                if await self._commit(route, transition, trigger="manual", action=command.value):
                    break
            else:  # never answer 200 for an action that did not happen (docs/faults.md)
                raise ActionRejectedError(
                    "the route's stored state kept changing under the action (3 lost "
                    "compare-and-sets, or another config's state): nothing changed, try again"
                )
            return self.status(route)

    def persisted(self, name: str) -> bool:
        """Whether the store holds the route's current state (False during an outage)."""
        return name not in self.pending

    async def _commit(
        self,
        route: CompiledRoute,
        transition: Transition[Any],
        *,
        trigger: str,
        action: str = "",
        fenced: bool = False,
    ) -> bool:
        """Persist and install a transition; False when another replica wrote first.

        ``fenced``: a controller decision, written only while our leader token is current.
        """
        cell = route.cell
        if transition.state != cell.state:
            if not self.store_ok() and rolls_back(transition):
                self.pending.hold_failed(route, transition, StateStoreError("store down"))
            elif not await self._write(route, transition, fenced):
                return False
            cell.state = transition.state
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

    async def _write(self, route: CompiledRoute, transition: Transition[Any], fenced: bool) -> bool:
        """Write the transition's state; False if another replica wrote first. A failing
        store holds it in memory when that is allowed (``pending``), else raises."""
        cell = route.cell
        if route.name in self.pending:
            await self._flush(route)
        data = envelope(route.strategy, cell.identity, transition.state)
        try:
            fence = self.fence if fenced else None
            cell.version = (
                await self.store.put(route.name, data, cell.version, fence=fence)
            ).version
        except StaleWriteError:
            await self.sync_route(route)
            return False
        except StateStoreError as exc:
            self.pending.hold_failed(route, transition, exc)
        return True

    async def _flush(self, route: CompiledRoute) -> None:
        if await self.pending.write(route):
            await self.sync_route(route)

    async def flush_unsaved(self) -> None:
        """Retry the writes an outage held back (the controller calls this every second)."""
        async with self.lock:
            for name in self.pending.names():
                route = self.routes.get(name)
                if route is None:
                    self.pending.drop(name)
                    continue
                await self._flush(route)
    async def sync_route(self, route: CompiledRoute) -> None:
        """Adopt a newer state written by another replica, if any."""
        found = await self.store.get(route.name)
        self._adopt(route, found)

    def _adopt(self, route: CompiledRoute, found: StoredState | None) -> None:
        cell = route.cell
        if route.name in self.pending:
            return  # ours is newer: it is written first (``flush_unsaved``)
        if found is None:
            # The stored record is gone (state directory or key removed, a Redis restarted
            # without its data): write ours back, creating the record.
            if cell.version is not None:
                cell.version = None
                self.pending.hold(route.name)
            return
        if found.version == cell.version:
            return  # versions restart at 1 after a store lost its data: any other is news
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
            self.state_read = True
            for route in list(self.routes.values()):
                self._adopt(route, stored.get(route.name))

    async def tick(self, observe: Observer) -> None:
        """One controller step for every active route: observe, advance, persist, publish.

        A settled route cannot change on its own, so a tick costs the routes under way.
        """
        now = self.clock()
        for route in list(self.active.values()):
            async with self.lock:
                if self.routes.get(route.name) is not route:
                    continue  # replaced by a reload meanwhile
                strategy, spec, state = route.strategy, route.spec, route.cell.state
                window = strategy.analysis_window(spec, state)
                observation = observe(route, window, now) if window else None
                transition = strategy.advance(spec, state, observation, now)
                if transition.state != state or transition.events:
                    # A step the store cannot take waits: the store has logged why.
                    with contextlib.suppress(StoreUnavailableError):
                        await self._commit(route, transition, trigger="analysis", fenced=True)
                self.checks.start(route)

    async def _check_result(self, name: str, request: CheckRequest, ok: bool, reason: str) -> None:
        async with self.lock:
            route = self.routes.get(name)
            result = getattr(route.strategy, "check_result", None) if route else None
            if route is None or result is None:
                return
            transition = result(
                route.spec, route.cell.state, request.key, ok, reason, self.clock()
            )
            with contextlib.suppress(StoreUnavailableError):
                await self._commit(route, transition, trigger="check", fenced=True)
