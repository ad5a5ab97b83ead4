"""Which routes a status or stats call covers: filters and a page, for configs of any size.

``GET /admin/status`` and ``GET /admin/stats`` take the same query parameters:

- ``route``: a part of the route name (case-insensitive);
- ``phase``: one or more phases, comma-separated (``progressing,waiting``);
- ``active=1``: only routes whose rollout is under way;
- ``order=active``: routes under way first, then the rest (each in file order);
- ``limit`` and ``offset``: a page of the matching routes.

Without any of them every route is listed, as before. With any, the answer
also carries ``page: {matched, total, active, offset, limit}``. Filtering
reads each route's name and phase only; the full status is built for the
page alone, so a page costs the same at 10 routes as at 10,000.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from router.routing.snapshot import CompiledRoute

__all__ = ["ALL_ROUTES", "MAX_LIMIT", "RouteQuery", "route_phase", "select_routes"]

MAX_LIMIT = 1000
_KEYS = ("route", "phase", "active", "order", "limit", "offset")


@dataclass(frozen=True, slots=True)
class RouteQuery:
    """A parsed filter and page; ``RouteQuery()`` selects every route."""

    name: str = ""
    phases: frozenset[str] = frozenset()
    active_only: bool = False
    active_first: bool = False
    limit: int | None = None
    offset: int = 0
    given: bool = False  # whether any parameter was given (the answer then has ``page``)

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> RouteQuery:
        """Read the query parameters; ValueError names the one that is wrong."""
        if not any(key in params for key in _KEYS):
            return cls()
        order = params.get("order", "file")
        if order not in ("file", "active"):
            raise ValueError(f"order must be file or active (got {order!r})")
        phases = frozenset(p.strip() for p in params.get("phase", "").split(",") if p.strip())
        return cls(
            name=params.get("route", "").lower(),
            phases=phases,
            active_only=_flag(params.get("active", "0"), "active"),
            active_first=order == "active",
            limit=_bounded(params["limit"], "limit", 1, MAX_LIMIT) if "limit" in params else None,
            offset=_bounded(params.get("offset", "0"), "offset", 0, None),
            given=True,
        )


ALL_ROUTES = RouteQuery()
"""No filter, no page: every route, and no ``page`` in the answer."""


def _flag(value: str, key: str) -> bool:
    if value in ("1", "true"):
        return True
    if value in ("0", "false", ""):
        return False
    raise ValueError(f"{key} must be 1 or 0 (got {value!r})")


def _bounded(value: str, key: str, low: int, high: int | None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{key} must be an integer (got {value!r})") from None
    if number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{key} must be {bound} (got {number})")
    return number


def select_routes(
    routes: Sequence[CompiledRoute],
    active: Collection[str],
    query: RouteQuery,
    phase_of: Callable[[CompiledRoute], str],
) -> tuple[list[CompiledRoute], int]:
    """The page of routes the query selects, and how many matched in all."""
    matched = [
        route for route in routes
        if (not query.name or query.name in route.name.lower())
        and (not query.active_only or route.name in active)
        and (not query.phases or phase_of(route) in query.phases)
    ]
    if query.active_first:
        matched = [r for r in matched if r.name in active] + [
            r for r in matched if r.name not in active
        ]
    end = None if query.limit is None else query.offset + query.limit
    return matched[query.offset:end], len(matched)


def route_phase(route: CompiledRoute, now: float) -> str:
    """The route's phase: read off its state when it has one, else from its status."""
    phase = getattr(route.cell.state, "phase", None)
    if isinstance(phase, str):
        return phase
    return str(route.strategy.status(route.spec, route.cell.state, now).get("phase", ""))
