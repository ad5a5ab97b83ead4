"""Deployment strategies: the functional core of traffic-router.

Built-in strategies are registered here; third-party ones register under the
entry-point group ``traffic_router.strategies`` (name = the ``type`` used in
YAML, value = ``module:Class``) and are found by ``get_strategy``.

This package never imports ``router``: the arrow points one way.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from strategies.base import (
    ActionRejectedError,
    Command,
    Decision,
    Event,
    MirrorPlan,
    Phase,
    Picker,
    RequestView,
    Strategy,
    StrategySpec,
    Transition,
)
from strategies.observation import Observation, VariantStats

__all__ = [
    "ENTRY_POINT_GROUP",
    "ActionRejectedError",
    "Command",
    "Decision",
    "Event",
    "MirrorPlan",
    "Observation",
    "Phase",
    "Picker",
    "RequestView",
    "Strategy",
    "StrategySpec",
    "Transition",
    "UnknownStrategyError",
    "VariantStats",
    "get_strategy",
    "register",
    "registered",
]

ENTRY_POINT_GROUP = "traffic_router.strategies"

AnyStrategy = Strategy[Any, Any]

_BUILTIN = {
    "direct": "strategies.direct.strategy:DirectStrategy",
    "canary": "strategies.canary.strategy:CanaryStrategy",
    "shadow": "strategies.shadow.strategy:ShadowStrategy",
    "blue_green": "strategies.blue_green.strategy:BlueGreenStrategy",
}
_registry: dict[str, AnyStrategy] = {}
_discovered = False
_broken: dict[str, str] = {}


class UnknownStrategyError(LookupError):
    """No strategy is registered under that ``type``."""


def register(strategy: AnyStrategy) -> None:
    """Register a strategy instance under its ``name`` (used by plug-ins and tests)."""
    _registry[strategy.name] = strategy


def _load(target: str) -> AnyStrategy:
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    instance: AnyStrategy = cls()
    return instance


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for name, target in _BUILTIN.items():
        if name not in _registry:
            _registry[name] = _load(target)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _registry:
            continue
        try:
            instance: AnyStrategy = ep.load()()
        except Exception as exc:  # a broken plug-in must not take the router down
            _broken[ep.name] = f"{ep.value}: {exc}"
            continue
        _registry[ep.name] = instance


def get_strategy(name: str) -> AnyStrategy:
    """The strategy registered as ``name``; raises ``UnknownStrategyError``."""
    _discover()
    try:
        return _registry[name]
    except KeyError:
        if name in _broken:
            raise UnknownStrategyError(
                f"strategy {name!r} failed to load: {_broken[name]}"
            ) from None
        known = ", ".join(sorted(_registry))
        raise UnknownStrategyError(f"unknown strategy type {name!r} (known: {known})") from None


def registered() -> dict[str, AnyStrategy]:
    """Every known strategy by name, built-ins and plug-ins."""
    _discover()
    return dict(_registry)
