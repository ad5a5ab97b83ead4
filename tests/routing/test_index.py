"""The route index returns exactly what the plain scan returns, visiting only a few routes."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest

from router.routing.index import RouteIndex
from router.routing.matching import MatchRule, match_route

# A small alphabet makes prefixes nest, repeat and collide, where the index can go wrong.
_PIECES = ("/", "a", "b", "/a", "/b", "ab", "/v2/models/", "x")
_HEADERS = (("x-tenant", "acme"), ("x-tenant", "other"), ("x-beta", "1"))
_METHODS = ("GET", "POST", "PUT")
_BODY = (("model", "llama"), ("model", "mistral"), ("tier", "gold"))


def _random_path(rng: random.Random, pieces: int) -> str:
    return "/" + "".join(rng.choice(_PIECES) for _ in range(pieces))


def _random_rule(rng: random.Random) -> MatchRule:
    headers = tuple(sorted({rng.choice(_HEADERS) for _ in range(rng.choice((0, 0, 1, 2)))}))
    methods = frozenset(rng.sample(_METHODS, rng.choice((0, 0, 1, 2))))
    body = tuple(sorted(dict(rng.sample(_BODY, rng.choice((0, 0, 0, 1, 2)))).items()))
    return MatchRule(prefix=_random_path(rng, rng.randrange(0, 4)), headers=headers,
                     methods=methods, body=body)


def _random_request(rng: random.Random) -> tuple[str, str, dict[str, str], dict[str, str]]:
    headers = dict(rng.sample(_HEADERS, rng.randrange(0, 3)))
    fields = dict(rng.sample(_BODY, rng.randrange(0, 3)))
    return rng.choice(_METHODS), _random_path(rng, rng.randrange(0, 6)), headers, fields


@pytest.mark.parametrize("seed", range(40))
def test_index_agrees_with_the_plain_scan_on_random_tables(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        rules = [_random_rule(rng) for _ in range(rng.randrange(1, 40))]
        index = RouteIndex(rules)
        for _ in range(200):
            method, path, headers, fields = _random_request(rng)
            expected = match_route(rules, method, path, headers, fields)
            assert index.match(method, path, headers, fields) == expected, (rules, method, path)
            # The proxy matches without the body first and reads it only when the route
            # found has body rules (or stickiness on the body): that must land on the same route.
            first = index.match(method, path, headers)
            if first is not None and rules[first].body:
                first = index.match(method, path, headers, fields)
            assert first == expected, (rules, method, path, headers, fields)


def test_body_rules_compare_top_level_fields_as_strings() -> None:
    rules = [MatchRule("/v1", body=(("model", "llama-3-8b"),)), MatchRule("/v1")]
    index = RouteIndex(rules)
    assert index.match("POST", "/v1/chat", {}, {"model": "llama-3-8b", "n": 1}) == 0
    assert index.match("POST", "/v1/chat", {}, {"model": "other"}) == 1
    assert index.match("POST", "/v1/chat", {}, {"model": 8}) == 1
    assert index.match("POST", "/v1/chat", {}, {}) == 1
    assert index.match("POST", "/v1/chat", {}) == 0  # body not read yet: assumed to hold


def test_an_earlier_shorter_prefix_beats_a_later_longer_one() -> None:
    rules = [MatchRule("/v2"), MatchRule("/v2/models/iris")]
    assert RouteIndex(rules).match("GET", "/v2/models/iris/infer", {}) == 0


def test_a_later_route_wins_when_the_earlier_ones_conditions_fail() -> None:
    rules = [
        MatchRule("/v2/models/iris", headers=(("x-tenant", "acme"),)),
        MatchRule("/v2/models/iris", methods=frozenset({"POST"})),
        MatchRule("/"),
    ]
    index = RouteIndex(rules)
    assert index.match("POST", "/v2/models/iris", {"x-tenant": "acme"}) == 0
    assert index.match("POST", "/v2/models/iris", {}) == 1
    assert index.match("GET", "/v2/models/iris", {}) == 2
    assert index.match("GET", "/other", {}) == 2


def test_nothing_matches() -> None:
    assert RouteIndex([MatchRule("/a"), MatchRule("/b", methods=frozenset({"GET"}))]).match(
        "POST", "/b", {}
    ) is None


def test_a_route_with_no_other_condition_shadows_the_rest_of_its_prefix() -> None:
    rules = [MatchRule("/a"), MatchRule("/a", headers=(("x-beta", "1"),))]
    assert RouteIndex(rules).match("GET", "/a", {"x-beta": "1"}) == 0


class _CountingRule(MatchRule):
    """A rule that counts how often its non-path conditions are checked."""

    checked = 0

    def accepts(
        self, method: str, headers: Mapping[str, str], fields: Mapping[str, Any] | None = None
    ) -> bool:
        type(self).checked += 1
        return super().accepts(method, headers, fields)


def test_the_last_of_ten_thousand_routes_is_found_after_checking_one() -> None:
    rules = [
        _CountingRule(f"/v2/models/model-{n:05d}", methods=frozenset({"POST"}))
        for n in range(10_000)
    ]
    index = RouteIndex(rules)
    _CountingRule.checked = 0
    assert index.match("POST", "/v2/models/model-09999/infer", {}) == 9_999
    assert _CountingRule.checked == 1
