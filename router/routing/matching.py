"""Pure route matching: first match in file order; ``match_route`` is the plain scan.

The proxy looks routes up through ``router.routing.index.RouteIndex``, which
returns what this scan returns without visiting every route.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["MatchRule", "match_route"]


@dataclass(frozen=True, slots=True)
class MatchRule:
    """A route's compiled match: path prefix, required headers, allowed methods.

    ``prefix`` is matched against the raw request path (not percent-decoded),
    the same bytes that are forwarded upstream.
    """

    prefix: str
    headers: tuple[tuple[str, str], ...] = ()
    methods: frozenset[str] = frozenset()

    def matches(self, method: str, path: str, headers: Mapping[str, str]) -> bool:
        """Whether a request with this method, raw path and headers belongs to the route."""
        return path.startswith(self.prefix) and self.accepts(method, headers)

    def accepts(self, method: str, headers: Mapping[str, str]) -> bool:
        """Whether every condition other than the path prefix holds."""
        if self.methods and method not in self.methods:
            return False
        return all(headers.get(name) == value for name, value in self.headers)

    @property
    def unconditional(self) -> bool:
        """True when the prefix is the only condition (every other field at its default).

        Compared with a rule of the same prefix and nothing else, so a condition
        added later as a field with a "no condition" default is covered too.
        """
        return self == MatchRule(self.prefix)


def match_route(
    rules: Sequence[MatchRule], method: str, path: str, headers: Mapping[str, str]
) -> int | None:
    """Index of the first rule that matches, or ``None``."""
    for index, rule in enumerate(rules):
        if rule.matches(method, path, headers):
            return index
    return None
