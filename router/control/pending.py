"""States held in memory while the store cannot take them, written when it answers again.

A store that cannot be written never blocks a rollback (docs/faults.md; fail
static): a transition with a ``rollback`` event takes effect in memory at once
and is written when the store answers, winning over whatever was stored
meanwhile (rollback is the safe direction). Analysis bookkeeping that leaves the
routing as it is (a failed check counted, say) is also kept in memory, so an
analysis can still reach its rollback during the outage; when written later it
yields to a newer stored state. Anything else -- a step, a promote, a pause --
raises ``StoreUnavailableError`` and changes nothing.

A route the store lost (a Redis restart without persistence, a state file
removed) is held the same way, so the replica writes its state back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from router.control.store import StaleWriteError, StateStore, StateStoreError
from router.routing.snapshot import CompiledRoute
from strategies import Transition
from strategies.base import Strategy

__all__ = ["PendingWrites", "StoreUnavailableError", "envelope", "rolls_back"]

_ROUTING_KEYS = ("phase", "step", "weights", "active")


class StoreUnavailableError(Exception):
    """The state store cannot be written and the change is not a rollback (HTTP 503)."""


def envelope(strategy: Strategy[Any, Any], identity: str, state: Any) -> dict[str, Any]:
    """What is stored for a route: its strategy, identity and state."""
    return {"strategy": strategy.name, "identity": identity, "state": strategy.dump_state(state)}


def rolls_back(transition: Transition[Any]) -> bool:
    """Whether a transition is a rollback (the safe direction, never refused)."""
    return any(event.kind == "rollback" for event in transition.events)


def _routing_view(route: CompiledRoute, state: Any, now: float) -> dict[str, Any]:
    """What of a state decides where requests go (compared to tell bookkeeping from a move)."""
    status = route.strategy.status(route.spec, state, now)
    return {key: status.get(key) for key in _ROUTING_KEYS}


class PendingWrites:
    """Route name -> whether its in-memory state must win when written (a rollback)."""

    def __init__(self, store: StateStore, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        self._wins: dict[str, bool] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._wins

    def names(self) -> list[str]:
        """The routes with a state to write."""
        return list(self._wins)

    def hold(self, name: str) -> None:
        """Write the route's state when the store answers (yielding to a newer stored one)."""
        self._wins.setdefault(name, False)

    def drop(self, name: str) -> None:
        """Nothing to write for the route any more (removed)."""
        self._wins.pop(name, None)

    def hold_failed(
        self, route: CompiledRoute, transition: Transition[Any], exc: StateStoreError
    ) -> None:
        """The store failed a write: allow a rollback or bookkeeping, refuse anything else."""
        if rolls_back(transition):
            self._wins[route.name] = True
            return
        now = self.clock()
        if _routing_view(route, transition.state, now) != _routing_view(
            route, route.cell.state, now
        ):
            raise StoreUnavailableError(str(exc)) from exc
        self.hold(route.name)

    async def write(self, route: CompiledRoute) -> bool:
        """Try to write the route's held state; True if it yielded to a newer stored one
        (the caller then reads the store). Store failures leave it held for next time."""
        wins, cell = self._wins[route.name], route.cell
        try:
            current = await self.store.get(route.name)
            if current is None or wins:
                expected = current.version if current is not None else None
            else:
                expected = cell.version
            data = envelope(route.strategy, cell.identity, cell.state)
            cell.version = (await self.store.put(route.name, data, expected)).version
        except StaleWriteError:
            if wins:
                return False  # written in between: read it again next time
            del self._wins[route.name]
            return True  # bookkeeping only: the stored state goes first
        except StateStoreError:
            return False  # still failing: the state stays in effect here
        del self._wins[route.name]
        return False
