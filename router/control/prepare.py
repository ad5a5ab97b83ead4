"""Cells for a new config: which routes keep their live state, which read the store, and
one batched write of what changed (``Rollouts.prepare_cells``, a part of ``Rollouts``).

At thousands of routes a reload must cost what it changes: an unchanged route keeps its
live cell, the store is read only for routes without a live state of their identity, and
the new or changed states go to the store in one ``put_many`` (one rewrite of a state
file, one round trip to Redis; docs/scale.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from router.control.pending import PendingWrites, envelope
from router.control.store import StaleWriteError, StateStore, StateStoreError, StoredState
from router.routing.snapshot import CompiledRoute, RouteCell
from router.telemetry.events import EventLog
from strategies import StrategySpec, Transition
from strategies.base import Strategy

__all__ = ["CellPreparation"]

# A reload that changes at most this many routes reads their stored states one by one.
_FEW_ROUTES = 32
# Routes prepared between two turns of the event loop: a request makes one step per turn.
YIELD_EVERY = 8

_Write = tuple[str, Strategy[Any, Any], StrategySpec, RouteCell]


class CellPreparation:
    """The part of ``Rollouts`` that builds a new config's cells (its attributes are set there)."""

    routes: dict[str, CompiledRoute]
    store: StateStore
    pending: PendingWrites
    events: EventLog
    clock: Callable[[], float]
    state_read: bool
    fallback: Callable[[], Mapping[str, StoredState] | None]
    _log: Any

    async def prepare_cells(
        self,
        routes: list[tuple[str, Strategy[Any, Any], StrategySpec]],
        backend_urls: Mapping[str, str],
    ) -> dict[str, RouteCell]:
        """Cells for a new config, before it is swapped in (call with ``lock`` held).

        An unchanged route (spec and identity) keeps its live cell, unwritten. One of
        the same identity keeps its live state, fitted to the edited spec by
        ``reconcile`` (written only if that changed it); else the stored state of that
        identity, else an initial one. Telling them apart runs in a worker thread.
        """
        now = self.clock()
        cells, changed = await asyncio.to_thread(self._classify, routes, backend_urls)
        # Only a route without a live state of its identity reads the store.
        stored = await self._stored([name for name, strategy, _, identity in changed
                                     if self._live(name, strategy, identity) is None])
        writes: list[_Write] = []
        for done, (name, strategy, spec, identity) in enumerate(changed, 1):
            cell, write = self._prepare_cell(name, strategy, spec, identity, stored.get(name), now)
            cells[name] = cell
            if write:
                writes.append((name, strategy, spec, cell))
            if done % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a store that answers at once never yields: let requests in
        await self._persist(writes)
        return cells

    def _classify(
        self,
        routes: list[tuple[str, Strategy[Any, Any], StrategySpec]],
        backend_urls: Mapping[str, str],
    ) -> tuple[dict[str, RouteCell], list[tuple[str, Strategy[Any, Any], StrategySpec, str]]]:
        """The live cells of unchanged routes, and the other routes with their identity."""
        cells: dict[str, RouteCell] = {}
        changed: list[tuple[str, Strategy[Any, Any], StrategySpec, str]] = []
        for name, strategy, spec in routes:
            identity = strategy.identity(spec, backend_urls)
            live = self.routes.get(name)
            if (live is not None and live.strategy is strategy
                    and live.cell.identity == identity and live.spec == spec):
                cells[name] = live.cell
            else:
                changed.append((name, strategy, spec, identity))
        return cells, changed

    def _live(
        self, name: str, strategy: Strategy[Any, Any], identity: str
    ) -> CompiledRoute | None:
        """The running route ``name`` if its state is of ``strategy`` and ``identity`` (kept)."""
        live = self.routes.get(name)
        if live is None or live.strategy is not strategy or live.cell.identity != identity:
            return None
        return live

    async def _stored(self, names: list[str]) -> Mapping[str, StoredState]:
        stored: Mapping[str, StoredState]
        try:
            if len(names) > _FEW_ROUTES:  # one read of all, else one by one
                stored = await self.store.load_all()
            else:
                found = {name: await self.store.get(name) for name in names}
                stored = {name: state for name, state in found.items() if state is not None}
        except StateStoreError:
            # Fail static: live states are kept; at start, the last state seen (a cache).
            cached = None if self.routes else self.fallback()
            if cached is None:
                return {}
            stored = cached
        self.state_read = True
        return stored

    def _prepare_cell(
        self, name: str, strategy: Strategy[Any, Any], spec: StrategySpec, identity: str,
        found: StoredState | None, now: float,
    ) -> tuple[RouteCell, bool]:
        """The route's new cell, and whether it must be written to the store."""
        live = self._live(name, strategy, identity)
        state: Any = None
        version: int | None = None
        events: tuple[Any, ...] = ()
        if live is not None:
            state, version = live.cell.state, live.cell.version
        else:
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
        for kind, reason in events:
            self._log.info(kind, route=name, reason=reason, identity=identity)
        # A kept state the edit did not change is stored already: no write.
        return cell, (live is None or live.cell.state != state or version is None
                      or name in self.pending)

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

    async def _persist(self, writes: list[_Write]) -> None:
        """Write the prepared cells in one batch (a reload of N routes rewrites a state
        file once); a cell whose write lost takes what another replica stored meanwhile."""
        if not writes:
            return
        batch = [(name, envelope(strategy, cell.identity, cell.state), cell.version)
                 for name, strategy, _, cell in writes]
        try:
            outcomes = await self.store.put_many(batch)
        except StateStoreError:
            for name, _, _, _ in writes:
                self.pending.hold(name)  # written when the store answers again
            return
        for (name, strategy, spec, cell), (_, data, _), outcome in zip(
            writes, batch, outcomes, strict=True
        ):
            if isinstance(outcome, StaleWriteError):
                await self._adopt_stored(name, strategy, spec, cell, data)
            else:
                cell.version = outcome.version

    async def _adopt_stored(
        self, name: str, strategy: Strategy[Any, Any], spec: StrategySpec, cell: RouteCell,
        data: dict[str, Any],
    ) -> None:
        """After a lost write: adopt the stored state if usable, else overwrite it."""
        current = await self.store.get(name)
        adopted = self._load(name, strategy, cell.identity, current)
        if current is not None and adopted is not None:
            cell.state, cell.version = adopted, current.version
            cell.picker = strategy.picker(spec, adopted)
            return
        expected = current.version if current else None
        cell.version = (await self.store.put(name, data, expected)).version
    def _emit(self, route: str, kind: str, reason: str, fields: dict[str, Any]) -> None:
        self.events.emit(kind, route=route, reason=reason, **fields)
