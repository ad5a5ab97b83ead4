"""The shadow strategy: mirroring decisions, rollback/resume, rejected actions, state."""

from __future__ import annotations

from typing import Any

import pytest

from strategies import get_strategy
from strategies.base import ActionRejectedError, Command, Decision, RequestView
from strategies.compare import Comparator
from strategies.shadow.strategy import CompareSpec, ShadowSpec, ShadowState, ShadowStrategy

STRATEGY = ShadowStrategy()
REQUEST = RequestView(method="POST", path="/predict/fraud", headers={})
NOW = 1_000.0


def spec(**overrides: Any) -> ShadowSpec:
    """A fraud shadow route, with ``overrides``."""
    fields: dict[str, Any] = {"primary": "fraud-v3", "shadows": ("fraud-v4",), **overrides}
    return ShadowSpec(**fields)


MIRRORING = ShadowState(phase="mirroring", since=0.0)
STOPPED = ShadowState(phase="rolled_back", since=0.0)

PICKS = {
    "percent 100 mirrors every draw": (spec(percent=100), MIRRORING, 0.999, True),
    "percent 0 mirrors none": (spec(percent=0), MIRRORING, 0.0, False),
    "percent 30 below the draw": (spec(percent=30), MIRRORING, 0.29, True),
    "percent 30 at the draw": (spec(percent=30), MIRRORING, 0.30, False),
    "percent 30 above the draw": (spec(percent=30), MIRRORING, 0.75, False),
    "rolled back mirrors none": (spec(percent=100), STOPPED, 0.0, False),
}


@pytest.mark.parametrize(("route", "state", "rand", "mirrored"), PICKS.values(), ids=PICKS.keys())
def test_picker(route: ShadowSpec, state: ShadowState, rand: float, mirrored: bool) -> None:
    decision = STRATEGY.picker(route, state)(REQUEST, rand)
    assert (decision.variant, decision.backend) == ("primary", "fraud-v3")
    assert (decision.mirror is not None) is mirrored


def test_mirror_plan_carries_the_spec() -> None:
    route = spec(
        shadows=("fraud-v4", "fraud-v5"), max_body="2KiB", max_in_flight=8,
        compare=CompareSpec(mode="v2"),
    )
    plan = STRATEGY.picker(route, MIRRORING)(REQUEST, 0.0).mirror
    assert plan is not None
    assert (plan.backends, plan.variant, plan.max_body, plan.max_in_flight) == (
        ("fraud-v4", "fraud-v5"), "shadow", 2048, 8,
    )
    assert isinstance(plan.compare, Comparator)


def test_picker_prebuilds_decisions() -> None:
    pick = STRATEGY.picker(spec(percent=50), MIRRORING)
    assert pick(REQUEST, 0.1) is pick(REQUEST, 0.2)
    assert pick(REQUEST, 0.8) is pick(REQUEST, 0.9)


ACTIONS = {
    "rollback stops mirroring": (
        MIRRORING, Command.ROLLBACK, "rolled_back", ("rollback",), {"trigger": "manual"},
    ),
    "rollback again is a no-op": (STOPPED, Command.ROLLBACK, "rolled_back", (), None),
    "resume restarts mirroring": (STOPPED, Command.RESUME, "mirroring", ("resume",), {}),
    "resume while mirroring is a no-op": (MIRRORING, Command.RESUME, "mirroring", (), None),
}


@pytest.mark.parametrize(
    ("state", "command", "phase", "events", "fields"), ACTIONS.values(), ids=ACTIONS.keys()
)
def test_apply(
    state: ShadowState,
    command: Command,
    phase: str,
    events: tuple[str, ...],
    fields: dict[str, Any] | None,
) -> None:
    transition = STRATEGY.apply(spec(), state, command, NOW, "ops said so")
    assert transition.state.phase == phase
    assert tuple(e.kind for e in transition.events) == events
    if events:
        assert transition.state.since == NOW
        assert transition.events[0].reason == "ops said so"
        assert dict(transition.events[0].fields) == fields
    else:
        assert transition.state is state


def test_rollback_then_resume_restores_the_mirror() -> None:
    route = spec()
    stopped = STRATEGY.apply(route, MIRRORING, Command.ROLLBACK, NOW, "").state
    assert STRATEGY.picker(route, stopped)(REQUEST, 0.0).mirror is None
    resumed = STRATEGY.apply(route, stopped, Command.RESUME, NOW + 1, "").state
    assert STRATEGY.picker(route, resumed)(REQUEST, 0.0).mirror is not None


REJECTED = {
    "promote": (Command.PROMOTE, "make the shadow the primary in the file"),
    "pause": (Command.PAUSE, "use rollback to stop mirroring"),
}


@pytest.mark.parametrize(("command", "reason"), REJECTED.values(), ids=REJECTED.keys())
def test_rejected_actions(command: Command, reason: str) -> None:
    for state in (MIRRORING, STOPPED):
        with pytest.raises(ActionRejectedError) as info:
            STRATEGY.apply(spec(), state, command, NOW, "")
        assert reason in info.value.reason


STATES = {
    "mirroring": ShadowState("mirroring", 12.5),
    "rolled back": ShadowState("rolled_back", 3.0),
}


@pytest.mark.parametrize("state", STATES.values(), ids=STATES.keys())
def test_dump_load_round_trip(state: ShadowState) -> None:
    assert STRATEGY.load_state(STRATEGY.dump_state(state)) == state


BAD_STATES = {
    "missing phase": {"since": 1.0},
    "missing since": {"phase": "mirroring"},
    "unknown phase": {"phase": "promoted", "since": 1.0},
    "since not a number": {"phase": "mirroring", "since": "soon"},
}


@pytest.mark.parametrize("data", BAD_STATES.values(), ids=BAD_STATES.keys())
def test_load_rejects_bad_state(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        STRATEGY.load_state(data)


@pytest.mark.parametrize("state", STATES.values(), ids=STATES.keys())
def test_status(state: ShadowState) -> None:
    expected = {"phase": state.phase, "weights": {"primary": 100}}
    assert STRATEGY.status(spec(), state, NOW) == expected


def test_roles_and_refs() -> None:
    route = spec(shadows=("fraud-v4", "fraud-v5"))
    assert STRATEGY.backend_refs(route) == {
        "primary": "fraud-v3", "shadows[0]": "fraud-v4", "shadows[1]": "fraud-v5",
    }
    assert STRATEGY.backends(route, MIRRORING) == {
        "primary": "fraud-v3", "shadow": "fraud-v4", "shadow[1]": "fraud-v5",
    }


IDENTITY_URLS = {"fraud-v3": "http://a", "fraud-v4": "http://b", "fraud-v5": "http://c"}
IDENTITIES = {
    "shadow url changes": (spec(), {**IDENTITY_URLS, "fraud-v4": "http://z"}, True),
    "shadow name changes": (spec(shadows=("fraud-v5",)), IDENTITY_URLS, True),
    "primary changes": (spec(primary="fraud-v5"), IDENTITY_URLS, True),
    "percent changes": (spec(percent=5), IDENTITY_URLS, False),
}


@pytest.mark.parametrize(("route", "urls", "changed"), IDENTITIES.values(), ids=IDENTITIES.keys())
def test_identity(route: ShadowSpec, urls: dict[str, str], changed: bool) -> None:
    before = STRATEGY.identity(spec(), IDENTITY_URLS)
    assert (STRATEGY.identity(route, urls) != before) is changed


def test_no_analysis_and_nothing_moves() -> None:
    route = spec()
    assert STRATEGY.analysis_window(route, MIRRORING) is None
    assert STRATEGY.advance(route, MIRRORING, None, NOW).state is MIRRORING
    assert STRATEGY.reconcile(route, STOPPED, NOW).state is STOPPED
    assert STRATEGY.initial_state(route, NOW) == ShadowState("mirroring", NOW)


def test_registered() -> None:
    strategy = get_strategy("shadow")
    assert isinstance(strategy, ShadowStrategy)
    assert strategy.variants == ("primary", "shadow")
    decision = strategy.picker(spec(), MIRRORING)(REQUEST, 0.5)
    assert isinstance(decision, Decision)
