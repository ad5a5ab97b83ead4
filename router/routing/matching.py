"""Pure route matching: first match in file order; ``match_route`` is the plain scan.

The proxy looks routes up through ``router.routing.index.RouteIndex``, which
returns what this scan returns without visiting every route.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from router.routing.body import BodyFields, json_literal

__all__ = ["MatchRule", "body_fields", "match_route"]


@dataclass(frozen=True, slots=True)
class MatchRule:
    """A route's compiled match: path prefix, required headers, allowed methods, body fields.

    ``prefix`` is matched against the raw request path (not percent-decoded),
    the same bytes that are forwarded upstream. ``body`` lists top-level JSON
    fields and the string each must equal; it is checked only when the caller
    passes the body's ``fields`` (``None``: not read yet, assume they hold).
    """

    prefix: str
    headers: tuple[tuple[str, str], ...] = ()
    methods: frozenset[str] = frozenset()
    body: tuple[tuple[str, str], ...] = ()
    # The body fields' names and values as JSON strings: a cheap test before any parse.
    literals: tuple[bytes, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        literals = tuple(json_literal(text) for pair in self.body for text in pair)
        object.__setattr__(self, "literals", literals)

    def matches(
        self, method: str, path: str, headers: Mapping[str, str],
        fields: Mapping[str, Any] | None = None,
    ) -> bool:
        """Whether a request with this method, raw path and headers belongs to the route."""
        return path.startswith(self.prefix) and self.accepts(method, headers, fields)

    def accepts(
        self, method: str, headers: Mapping[str, str], fields: Mapping[str, Any] | None = None
    ) -> bool:
        """Whether every condition other than the path prefix holds."""
        if self.methods and method not in self.methods:
            return False
        if fields is not None and self.body:
            if isinstance(fields, BodyFields) and not all(map(fields.may_hold, self.literals)):
                return False
            for name, value in self.body:
                if fields.get(name) != value:
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
    rules: Sequence[MatchRule], method: str, path: str, headers: Mapping[str, str],
    fields: Mapping[str, Any] | None = None,
) -> int | None:
    """Index of the first rule that matches, or ``None``."""
    for index, rule in enumerate(rules):
        if rule.matches(method, path, headers, fields):
            return index
    return None


def body_fields(body: bytes) -> Mapping[str, Any]:
    """The fields of a JSON object body, parsed when first needed (empty for anything else)."""
    return BodyFields(body)
