"""Routes are validated one by one, so a large file never holds the interpreter lock (and a
reload's event loop) for the whole validation; a bad route is still worded as before."""

from __future__ import annotations

from typing import Any

import pytest

from router.config.loader import ConfigError, parse_config
from router.config.model import RouteSpec

BACKENDS = "backends: {a: {url: 'http://127.0.0.1:8001'}, b: {url: 'http://127.0.0.1:8002'}}\n"


def _file(count: int, bad: int | None = None) -> str:
    lines = [BACKENDS, "routes:"]
    for n in range(count):
        prefix = "m" if n == bad else f"/m{n}/"  # a prefix must start with /
        lines.append(f"- {{name: m{n}, match: {{path_prefix: '{prefix}'}}, "
                     "strategy: {type: canary, stable: a, candidate: b, weight: 10}}")
    return "\n".join(lines) + "\n"


def test_each_route_is_validated_in_a_call_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    validate = RouteSpec.model_validate.__func__  # type: ignore[attr-defined]

    def counted(cls: type[RouteSpec], value: Any, *args: Any, **kwargs: Any) -> RouteSpec:
        calls.append(value)
        return validate(cls, value, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(RouteSpec, "model_validate", classmethod(counted))
    config = parse_config(_file(50))
    assert len(calls) == 50
    assert [route.name for route in config.routes] == [f"m{n}" for n in range(50)]


def test_a_bad_route_is_reported_at_its_place() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_file(50, bad=37))
    assert [issue.place for issue in info.value.issues] == ["routes[37].match.path_prefix"]
