"""Which routes the controller ticks: ``active`` is true exactly while something can move."""

from __future__ import annotations

from typing import Any

import pytest

from strategies import get_strategy
from strategies.base import Command

NOW = 1_000_000.0
CANARY = {"type": "canary", "stable": "a", "candidate": "b"}
STEPS = {"steps": [{"weight": 10, "hold": "1m"}, {"weight": 50, "hold": "manual"}]}
ANALYSIS = {"analysis": {"interval": "10s", "max_error_rate": 0.02}}


def _active(section: dict[str, Any], *commands: Command) -> bool:
    strategy = get_strategy(section["type"])
    spec = strategy.spec_type.model_validate(section)
    state = strategy.initial_state(spec, NOW)
    for command in commands:
        state = strategy.apply(spec, state, command, NOW, "test").state
    return bool(strategy.active(spec, state))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("section", "commands", "expected"),
    [
        ({"type": "direct", "backend": "a"}, (), False),
        ({**CANARY, "weight": 10}, (), False),
        ({**CANARY, "weight": 10, **ANALYSIS}, (), True),
        ({**CANARY, **STEPS}, (), True),
        ({**CANARY, **STEPS}, (Command.PAUSE,), False),
        ({**CANARY, **STEPS}, (Command.PAUSE, Command.RESUME), True),
        ({**CANARY, **STEPS, **ANALYSIS}, (Command.ROLLBACK,), False),
        ({"type": "shadow", "primary": "a", "shadows": ["b"]}, (), True),
        ({"type": "shadow", "primary": "a", "shadows": ["b"], "percent": 0}, (), False),
        ({"type": "blue_green", "blue": "a", "green": "b", **ANALYSIS}, (), False),
    ],
    ids=[
        "direct", "fixed-weight", "fixed-weight-analysed", "ramp", "ramp-paused",
        "ramp-resumed", "rolled-back", "shadow", "shadow-off", "blue-green-steady",
    ],
)
def test_active(section: dict[str, Any], commands: tuple[Command, ...], expected: bool) -> None:
    assert _active(section, *commands) is expected
