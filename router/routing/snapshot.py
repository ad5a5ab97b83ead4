"""The compiled, immutable routing table and its atomic holder.

A reload builds a whole new ``Snapshot`` and swaps it in; each request reads
the holder exactly once and finishes on what it read. Everything in it is
frozen except two documented live parts, which change between reloads:

- each route's ``RouteCell`` (its rollout state and compiled picker), which the
  rollout manager updates so actions take effect on the next request without
  rebuilding the table;
- each ``Backend``'s ``up`` flag, which the health checker sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router.config.model import Config
from router.routing.backends import Backend
from router.routing.index import RouteIndex
from router.routing.matching import MatchRule
from strategies import Picker, StrategySpec
from strategies.base import Strategy

__all__ = [
    "CompiledRoute",
    "RouteCell",
    "Snapshot",
    "SnapshotHolder",
    "build_rules",
    "build_snapshot",
]


@dataclass(slots=True)
class RouteCell:
    """The live rollout of one route: its state, store version and compiled picker."""

    state: Any
    picker: Picker
    version: int | None = None
    identity: str = ""


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """One route, compiled at load: match rule, strategy, spec and live cell."""

    name: str
    rule: MatchRule
    strategy: Strategy[Any, Any]
    spec: StrategySpec
    cell: RouteCell
    header: tuple[bytes, bytes]  # (b"x-router-route", name), encoded once at load
    # Match or stickiness needs the JSON body: read it before routing (small bodies only).
    reads_body: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reads_body", bool(self.rule.body) or self.spec.reads_body())


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a request needs, compiled once per config version."""

    version: str
    path: Path
    config: Config  # the file's settings; its ``routes`` are empty, compiled into ``routes``
    routes: tuple[CompiledRoute, ...]
    rules: tuple[MatchRule, ...]
    backends: Mapping[str, Backend]
    index: RouteIndex = field(init=False)  # compiled from ``rules``; what requests look up

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", RouteIndex(self.rules))


_ANY_METHOD: frozenset[str] = frozenset()  # one for every rule: an empty set is 216 bytes


def build_rules(config: Config) -> tuple[MatchRule, ...]:
    """The match rules of every route, in file order."""
    return tuple(
        MatchRule(
            prefix=route.match.path_prefix,
            headers=tuple(sorted(route.match.headers.items())),
            methods=frozenset(route.match.methods) if route.match.methods else _ANY_METHOD,
            body=tuple(sorted(route.match.body.items())),
        )
        for route in config.routes
    )


def build_snapshot(
    config: Config, version: str, path: Path,
    entries: Iterable[tuple[tuple[str, Strategy[Any, Any], StrategySpec], MatchRule]],
    cells: Mapping[str, RouteCell], backends: Mapping[str, Backend],
) -> Snapshot:
    """The snapshot of ``config``: each route ((name, strategy, spec), rule) with its cell.

    The snapshot keeps ``config`` without its routes' models, which nothing reads once
    compiled (at 10,000 routes, about 10 MiB).
    """
    routes = tuple(
        CompiledRoute(
            name=name, rule=rule, strategy=strategy, spec=spec, cell=cells[name],
            header=(b"x-router-route", name.encode()),
        )
        for (name, strategy, spec), rule in entries
    )
    return Snapshot(
        version=version,
        path=path,
        config=config.model_copy(update={"routes": ()}),
        routes=routes,
        rules=tuple(route.rule for route in routes),
        backends=backends,
    )


class SnapshotHolder:
    """Holds the current snapshot; ``swap`` replaces it atomically."""

    __slots__ = ("current",)

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self.current: Snapshot | None = snapshot

    def swap(self, snapshot: Snapshot) -> Snapshot | None:
        """Install ``snapshot`` and return the previous one."""
        old, self.current = self.current, snapshot
        return old
