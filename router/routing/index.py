"""A route index compiled at load: lookup cost follows the request, not the route count.

The contract is the plain scan's (``match_route``): the first route in file
order whose rule matches wins. The index gets there without visiting every
route:

- Routes are grouped by their exact ``path_prefix``. The prefixes that a
  request path starts with are the longest such prefix and its ancestors (the
  shorter prefixes in the table that it starts with), so each group keeps a
  link to its nearest ancestor group and a lookup walks that short chain.
- The longest prefix is found with one dictionary probe per distinct prefix
  length in the table (longest first), never more than the path is long.
- Inside a group, routes keep file order, and a route with no other condition
  (no header, method or any later rule) ends the group: nothing after it in
  that group can ever be first. Every other condition is checked by the rule
  itself, only on these candidates, so a new kind of rule needs no change here.

A route with many others sharing its prefix and differing only by header (say
thousands of routes on ``/`` told apart by a tenant header) is still a scan of
that group: the index narrows by path only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router.routing.matching import MatchRule

__all__ = ["RouteIndex"]


@dataclass(frozen=True, slots=True)
class _Group:
    """The routes with one exact prefix, in file order, and the nearest ancestor group."""

    candidates: tuple[tuple[int, MatchRule], ...]
    parent: _Group | None


class RouteIndex:
    """The first-match-in-file-order lookup over a table of ``MatchRule``s."""

    __slots__ = ("_groups", "_lengths")

    def __init__(self, rules: Sequence[MatchRule]) -> None:
        by_prefix: dict[str, list[tuple[int, MatchRule]]] = {}
        for position, rule in enumerate(rules):
            group = by_prefix.setdefault(rule.prefix, [])
            if not group or not group[-1][1].unconditional:
                group.append((position, rule))
        self._lengths: tuple[int, ...] = tuple(sorted({len(p) for p in by_prefix}, reverse=True))
        self._groups: dict[str, _Group] = {}
        # Shortest prefixes first, so a group's ancestor is built before it.
        for prefix in sorted(by_prefix, key=len):
            parent = self._longest(prefix, exclusive=True)
            self._groups[prefix] = _Group(tuple(by_prefix[prefix]), parent)

    def _longest(self, path: str, *, exclusive: bool = False) -> _Group | None:
        """The group of the longest prefix ``path`` starts with (shorter than it if exclusive)."""
        limit = len(path) - 1 if exclusive else len(path)
        groups = self._groups
        for length in self._lengths:
            if length <= limit:
                group = groups.get(path[:length])
                if group is not None:
                    return group
        return None

    def match(
        self, method: str, path: str, headers: Mapping[str, str],
        fields: Mapping[str, Any] | None = None,
    ) -> int | None:
        """Position in file order of the first rule that matches, or ``None``.

        ``fields`` is the JSON body's, once read; ``None`` assumes body rules hold.
        """
        group = self._longest(path)
        best: int | None = None
        while group is not None:
            for position, rule in group.candidates:
                if best is not None and position >= best:
                    break
                if rule.accepts(method, headers, fields):
                    best = position
                    break
            group = group.parent
        return best
