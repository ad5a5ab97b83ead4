"""Blue-green: checked switches, instant rollback that holds, post-switch analysis."""

from __future__ import annotations

import json
from typing import Any

import pytest

from strategies.base import ActionRejectedError, Command, Phase, RequestView
from strategies.blue_green.strategy import (
    ACTIONS,
    BlueGreenSpec,
    BlueGreenState,
    BlueGreenStrategy,
    complete_switch,
    pending_switch_target,
)
from strategies.observation import Observation
from strategies.observation import VariantStats as Stats

S = BlueGreenStrategy()
T0 = 1_800_000_000.0
BASE: dict[str, Any] = {"blue": "ranker-a", "green": "ranker-b", "active": "blue"}
CHECK = {"path": "/health"}
ANALYSIS = {"interval": "10s", "min_requests": 10, "max_error_rate": 0.02, "failures_to_act": 2}


def spec(**changes: Any) -> BlueGreenSpec:
    return BlueGreenSpec.model_validate({**BASE, **changes})


Op = tuple[Any, ...]


def run(ops: list[Op], check: bool) -> tuple[BlueGreenState, list[str], BlueGreenSpec]:
    """Play operations on a fresh route; return the state, the event kinds and the last spec."""
    extra = {"switch_check": CHECK} if check else {}
    sp = spec(**extra)
    st = S.initial_state(sp, T0)
    kinds: list[str] = []
    for i, op in enumerate(ops):
        now = T0 + i + 1
        if op[0] == "edit":
            sp = spec(active=op[1], **extra)
            result = S.reconcile(sp, st, now)
        elif op[0] == "check":
            assert pending_switch_target(st) is not None
            result = complete_switch(sp, st, op[1], op[2], now)
        else:
            result = S.apply(sp, st, Command(op[0]), now, "op")
        st = result.state
        kinds += [e.kind for e in result.events]
    return st, kinds, sp


# (id, switch_check?, operations, (active, previous, phase, pending, refused), event kinds)
SCENARIOS: list[tuple[str, bool, list[Op], tuple[Any, ...], list[str]]] = [
    ("edit_switches_at_once", False, [("edit", "green")],
     ("green", "blue", "steady", None, None), ["switch"]),
    ("edit_waits_for_the_check", True, [("edit", "green")],
     ("blue", None, "steady", "green", None), []),
    ("check_passes", True, [("edit", "green"), ("check", True, "200 OK")],
     ("green", "blue", "steady", None, None), ["switch"]),
    ("check_refused", True, [("edit", "green"), ("check", False, "status 503, want 200")],
     ("blue", None, "steady", None, "status 503, want 200"), ["switch_refused"]),
    ("promote_switches_at_once", False, [("promote",)],
     ("green", "blue", "steady", None, None), ["switch"]),
    ("promote_checked", True, [("promote",), ("check", True, "")],
     ("green", "blue", "steady", None, None), ["switch"]),
    ("promote_while_pending_is_a_noop", True, [("promote",), ("promote",)],
     ("blue", None, "steady", "green", None), []),
    ("promote_after_refusal_retries", True,
     [("promote",), ("check", False, "timeout"), ("promote",)],
     ("blue", None, "steady", "green", None), ["switch_refused"]),
    ("rollback_is_instant_and_unchecked", True,
     [("edit", "green"), ("check", True, ""), ("rollback",)],
     ("blue", "green", "rolled_back", None, None), ["switch", "rollback"]),
    ("rollback_twice_is_a_noop", False, [("edit", "green"), ("rollback",), ("rollback",)],
     ("blue", "green", "rolled_back", None, None), ["switch", "rollback"]),
    ("rollback_holds_across_reload", False,
     [("edit", "green"), ("rollback",), ("edit", "green"), ("edit", "green")],
     ("blue", "green", "rolled_back", None, None), ["switch", "rollback"]),
    ("editing_active_to_a_new_value_ends_it", False,
     [("edit", "green"), ("rollback",), ("edit", "blue")],
     ("blue", "green", "steady", None, None), ["switch", "rollback"]),
    ("then_a_new_edit_switches_again", False,
     [("edit", "green"), ("rollback",), ("edit", "blue"), ("edit", "green")],
     ("green", "blue", "steady", None, None), ["switch", "rollback", "switch"]),
    ("rollback_cancels_a_pending_switch", True, [("edit", "green"), ("rollback",)],
     ("blue", None, "rolled_back", None, None), ["rollback"]),
    ("edit_back_cancels_a_pending_switch", True, [("edit", "green"), ("edit", "blue")],
     ("blue", None, "steady", None, None), []),
    ("promote_from_rolled_back", False, [("edit", "green"), ("rollback",), ("promote",)],
     ("green", "blue", "steady", None, None), ["switch", "rollback", "switch"]),
]


@pytest.mark.parametrize(
    ("check", "ops", "expected", "kinds"), [c[1:] for c in SCENARIOS], ids=[c[0] for c in SCENARIOS]
)
def test_switch_state_machine(
    check: bool, ops: list[Op], expected: tuple[Any, ...], kinds: list[str]
) -> None:
    st, seen, sp = run(ops, check)
    assert (st.active, st.previous, st.phase, st.pending_switch, st.refused_reason) == expected
    assert seen == kinds
    status = S.status(sp, st, T0 + 100)
    assert status["active"] == st.active
    assert status["refused"] == st.refused_reason
    assert status["weights"][st.active] == 100
    json.dumps(status)


@pytest.mark.parametrize(
    ("command", "ops"),
    [(Command.PAUSE, []), (Command.RESUME, []), (Command.ROLLBACK, []),
     (Command.PAUSE, [("edit", "green"), ("rollback",)])],
    ids=["pause", "resume", "rollback_without_previous", "pause_rolled_back"],
)
def test_rejected_actions(command: Command, ops: list[Op]) -> None:
    st, _, sp = run(ops, False)
    with pytest.raises(ActionRejectedError) as info:
        S.apply(sp, st, command, T0 + 50, "")
    assert info.value.reason


def test_table_covers_every_phase_and_command() -> None:
    assert set(ACTIONS) == {Phase.STEADY, Phase.ROLLED_BACK}
    assert all(set(row) == set(Command) for row in ACTIONS.values())


def test_a_stale_check_result_changes_nothing() -> None:
    sp = spec(switch_check=CHECK)
    st = S.initial_state(sp, T0)
    assert complete_switch(sp, st, True, "", T0 + 1).state == st


def test_removing_the_check_completes_a_pending_switch() -> None:
    sp = spec(switch_check=CHECK, active="green")
    st = S.reconcile(sp, S.initial_state(spec(), T0), T0 + 1).state
    assert st.pending_switch == "green"
    done = S.reconcile(spec(active="green"), st, T0 + 2)
    assert (done.state.active, [e.kind for e in done.events]) == ("green", ["switch"])


# --- picker -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("active", "headers", "variant", "backend"),
    [
        ("blue", {}, "blue", "ranker-a"),
        ("green", {}, "green", "ranker-b"),
        ("blue", {"x-router-preview": "1"}, "green", "ranker-b"),
        ("green", {"x-router-preview": ""}, "blue", "ranker-a"),
    ],
    ids=["blue_active", "green_active", "preview_blue", "preview_green_empty_value"],
)
def test_picker(active: str, headers: dict[str, str], variant: str, backend: str) -> None:
    sp = spec(active=active, preview_header="X-Router-Preview")
    pick = S.picker(sp, S.initial_state(sp, T0))
    decision = pick(RequestView("GET", "/rank", headers), 0.5)
    assert (decision.variant, decision.backend) == (variant, backend)


def test_without_preview_header_everything_goes_to_active() -> None:
    pick = S.picker(spec(), S.initial_state(spec(), T0))
    assert pick(RequestView("GET", "/", {"x-router-preview": "1"}), 0.1).variant == "blue"


# --- post-switch analysis -----------------------------------------------------------------

GOOD = Stats(100, 0, 0.01, 0.05)
BAD = Stats(100, 20, 0.01, 0.05)


def switched(**changes: Any) -> tuple[BlueGreenSpec, BlueGreenState]:
    sp = spec(active="green", analysis=ANALYSIS, **changes)
    st = S.reconcile(sp, S.initial_state(spec(analysis=ANALYSIS), T0), T0).state
    assert st.active == "green"
    return sp, st


def bg_obs(green: Stats, up: bool = True) -> Observation:
    return Observation(10.0, {"green": green, "blue": GOOD}, {"ranker-b": up})


@pytest.mark.parametrize(("up", "trigger"), [(True, "analysis"), (False, "health")],
                         ids=["errors", "health_down"])
def test_failing_after_a_switch_switches_back(up: bool, trigger: str) -> None:
    sp, st = switched()
    assert S.analysis_window(sp, st) == 10.0
    assert S.advance(sp, st, bg_obs(BAD, up), T0 + 5).state == st  # not due yet
    one = S.advance(sp, st, bg_obs(BAD, up), T0 + 10)
    assert (one.state.active, one.state.consecutive_failures) == ("green", 1)
    two = S.advance(sp, one.state, bg_obs(BAD, up), T0 + 20)
    assert (two.state.active, two.state.previous, two.state.phase) == ("blue", "green",
                                                                        "rolled_back")
    assert [e.kind for e in two.events] == ["analysis", "rollback"]
    assert two.events[1].fields["trigger"] == trigger
    assert S.analysis_window(sp, two.state) is None
    # the switch-back holds across a reload of the same file
    assert S.reconcile(sp, two.state, T0 + 30).state == two.state


def test_analysis_watch_ends_after_a_healthy_while() -> None:
    sp, st = switched()
    for t in range(10, 41, 10):
        st = S.advance(sp, st, bg_obs(GOOD), T0 + t).state
    assert (st.active, st.consecutive_failures, st.watch_until) == ("green", 0, T0 + 40)
    st = S.advance(sp, st, bg_obs(BAD), T0 + 41).state
    assert st.watch_until is None
    assert S.analysis_window(sp, st) is None
    assert S.advance(sp, st, bg_obs(BAD), T0 + 60).state == st


def test_thin_data_after_a_switch_holds() -> None:
    sp, st = switched()
    for t in (10, 20, 30):
        st = S.advance(sp, st, bg_obs(Stats(3, 3, 0.1, 0.1)), T0 + t).state
    assert (st.active, st.consecutive_failures, st.last_verdict and st.last_verdict.outcome) == (
        "green", 0, "hold")


def test_no_analysis_without_a_switch() -> None:
    sp = spec(analysis=ANALYSIS)
    st = S.initial_state(sp, T0)
    assert S.analysis_window(sp, st) is None
    assert S.advance(sp, st, bg_obs(BAD), T0 + 100).state == st


# --- store, status, identity --------------------------------------------------------------


def test_dump_and_load_round_trip() -> None:
    sp, st = switched(switch_check=None)
    st = S.advance(sp, st, bg_obs(BAD), T0 + 10).state
    loaded = S.load_state(json.loads(json.dumps(S.dump_state(st))))
    assert loaded == st


@pytest.mark.parametrize(
    "data",
    [{}, {"active": "red", "since": 1, "spec_active": "blue"},
     {"active": "blue", "since": "x", "spec_active": "blue"},
     {"active": "blue", "since": 1, "spec_active": "blue", "phase": "paused"},
     {"active": "blue", "since": 1, "spec_active": "blue", "pending_switch": "red"}],
    ids=["empty", "unknown_colour", "bad_since", "bad_phase", "bad_pending"],
)
def test_load_state_rejects_garbage(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        S.load_state(data)


def test_status_shape() -> None:
    sp, st = switched()
    status = S.status(sp, st, T0)
    assert status["phase"] == "steady"
    assert (status["active"], status["previous"]) == ("green", "blue")
    assert status["weights"] == {"blue": 0, "green": 100}
    assert status["last_switch"] == status["since"]
    assert (status["pending_switch"], status["refused"]) == (None, None)
    assert status["analysis"] == {"last": None, "consecutive_failures": 0}


def test_identity_covers_both_colours() -> None:
    urls = {"ranker-a": "http://a", "ranker-b": "http://b"}
    base = S.identity(spec(), urls)
    assert base == "ranker-a=http://a|ranker-b=http://b"
    assert S.identity(spec(active="green"), urls) == base
    assert S.identity(spec(), {**urls, "ranker-b": "http://c"}) != base
