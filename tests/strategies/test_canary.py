"""Canary: the split, the phase table, the ramp, analysis gating and rollback."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from typing import Any

import pytest

from strategies.analysis import HEALTH_DOWN_REASON, format_instant
from strategies.base import ActionRejectedError, Command, Phase, RequestView
from strategies.buckets import bucket_of, in_candidate
from strategies.canary.strategy import (
    ACTIONS,
    CanarySpec,
    CanaryState,
    CanaryStrategy,
    current_weight,
    sticky_salt,
)
from strategies.observation import Observation
from strategies.observation import VariantStats as Stats

S = CanaryStrategy()
T0 = 1_800_000_000.0
RAMP: dict[str, Any] = {
    "stable": "iris-v1",
    "candidate": "iris-v2",
    "steps": [
        {"weight": 5, "hold": "60s"},
        {"weight": 25, "hold": "120s"},
        {"weight": 50, "hold": "manual"},
        {"weight": 100, "hold": "60s"},
    ],
}
ANALYSIS = {"interval": "30s", "min_requests": 50, "max_error_rate": 0.02, "failures_to_act": 2}


def spec(**changes: Any) -> CanarySpec:
    data = {**RAMP, **changes}
    return CanarySpec.model_validate({k: v for k, v in data.items() if v is not None})


def fixed(weight: float, **changes: Any) -> CanarySpec:
    return spec(steps=None, weight=weight, **changes)


def state(phase: Phase, step: int = 0, **changes: Any) -> CanaryState:
    return CanaryState(phase=phase.value, since=T0, step=step, **changes)


def req(**headers: str) -> RequestView:
    return RequestView(
        "POST", "/v2/models/iris/infer", {k.replace("_", "-"): v for k, v in headers.items()}
    )


def obs(cand: Stats, stable: Stats | None = None, up: bool = True) -> Observation:
    return Observation(
        window_s=30.0,
        variants={"candidate": cand, "stable": stable or Stats(1000, 0, 0.05, 0.1)},
        backend_up={"iris-v2": up},
    )


GOOD = Stats(100, 0, 0.05, 0.1)
BAD = Stats(100, 10, 0.05, 0.1)
THIN = Stats(10, 0, 0.05, 0.1)


# --- the picker ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "expected"),
    [(0, 0), (0.5, 5), (10, 100), (25, 250), (50, 500), (100, 1000)],
    ids=["zero", "half_pct", "10pct", "25pct", "50pct", "all"],
)
def test_random_split_is_exact_over_a_uniform_grid(weight: float, expected: int) -> None:
    pick = S.picker(fixed(weight), state(Phase.STEADY))
    draws = [i / 1000 for i in range(1000)]
    assert sum(pick(req(), r).variant == "candidate" for r in draws) == expected


@pytest.mark.parametrize(
    ("weight", "value", "variant", "reason"),
    [
        (0, "candidate", "candidate", "forced"),
        (100, "stable", "stable", "forced"),
        (0, " Candidate ", "candidate", "forced"),
        (0, "evil", "stable", "weight"),
        (100, "", "candidate", "weight"),
    ],
    ids=["to_candidate", "to_stable", "case_and_space", "unknown_value_ignored", "empty_ignored"],
)
def test_force_header(weight: float, value: str, variant: str, reason: str) -> None:
    pick = S.picker(fixed(weight, force_header="X-Router-Variant"), state(Phase.STEADY))
    decision = pick(req(x_router_variant=value), 0.5)
    assert (decision.variant, decision.reason) == (variant, reason)


def test_force_header_unset_means_ignored() -> None:
    pick = S.picker(fixed(0), state(Phase.STEADY))
    assert pick(req(x_router_variant="candidate"), 0.0).variant == "stable"


def test_candidate_decision_carries_the_fallback() -> None:
    with_fallback = S.picker(fixed(100, fallback_to_stable=True), state(Phase.STEADY))(req(), 0)
    assert (with_fallback.backend, with_fallback.fallback_backend) == ("iris-v2", "iris-v1")
    assert with_fallback.fallback_variant == "stable"
    without = S.picker(fixed(100), state(Phase.STEADY))(req(), 0)
    assert without.fallback_backend is None


@pytest.mark.parametrize("weight", [0, 0.5, 37, 100])
@pytest.mark.parametrize("fallback", [False, True])
def test_a_plain_split_decides_as_the_full_picker_does(weight: float, fallback: bool) -> None:
    plain = S.picker(fixed(weight, fallback_to_stable=fallback), state(Phase.STEADY))
    full = S.picker(fixed(weight, fallback_to_stable=fallback, force_header="X-F"),
                    state(Phase.STEADY))  # no request below carries X-F
    draws = [i / 1000 for i in range(1000)]
    assert [plain(req(), r) for r in draws] == [full(req(), r) for r in draws]


def test_routes_with_the_same_backends_share_their_decisions() -> None:
    one = S.picker(fixed(100), state(Phase.STEADY))(req(), 0)
    other = S.picker(fixed(100, force_header="X-F"), state(Phase.STEADY))(req(), 0)
    assert one is other


def test_rolled_back_sends_everything_to_stable() -> None:
    pick = S.picker(fixed(100, force_header="x-v"), state(Phase.ROLLED_BACK))
    for r in (0.0, 0.5, 0.99):
        decision = pick(req(x_v="candidate", x_user_id="u"), r)
        assert (decision.variant, decision.backend) == ("stable", "iris-v1")


def _with_body(body: dict[str, Any]) -> RequestView:
    return RequestView("POST", "/v1/chat/completions", {}, "", body)


@pytest.mark.parametrize(
    ("sticky", "request_of"),
    [
        ({"header": "X-User-Id"}, lambda k: req(x_user_id=k)),
        ({"cookie": "session_id"}, lambda k: req(cookie=f"theme=dark; session_id={k}; a=b")),
        ({"body_field": "user"}, lambda k: _with_body({"model": "m", "user": k})),
        ({"body_field": "metadata.user_id"}, lambda k: _with_body({"metadata": {"user_id": k}})),
    ],
    ids=["header", "cookie", "body-field", "dotted-body-field"],
)
def test_sticky_key_picks_by_bucket_whatever_the_draw(
    sticky: dict[str, str], request_of: Any
) -> None:
    sp = fixed(30, sticky=sticky)
    st = state(Phase.STEADY)
    pick = S.picker(sp, st)
    salt = sticky_salt("", sp)
    for i in range(300):
        key = f"user-{i}"
        expected = "candidate" if in_candidate(bucket_of(key, salt), 30) else "stable"
        variants = {pick(request_of(key), r).variant for r in (0.0, 0.42, 0.999)}
        assert variants == {expected}
        assert pick(request_of(key), 0.0).reason == "sticky"


@pytest.mark.parametrize(
    "body",
    [None, {}, {"user": None}, {"user": {"id": 1}}, {"user": True}, {"metadata": "x"}],
    ids=["not-read", "empty", "null", "object", "bool", "not-an-object"],
)
def test_a_body_without_a_usable_sticky_field_is_assigned_per_request(body: Any) -> None:
    for path in ("user", "metadata.user_id"):
        pick = S.picker(fixed(30, sticky={"body_field": path}), state(Phase.STEADY))
        request = _with_body(body) if body is not None else req()
        assert pick(request, 0.1).variant == "candidate"
        assert pick(request, 0.9).variant == "stable"
        assert pick(request, 0.1).reason == "weight"


def test_a_numeric_body_field_is_a_key_like_its_text() -> None:
    assert _with_body({"user": 42}).body_field("user") == "42"
    assert fixed(30, sticky={"body_field": "user"}).reads_body()
    assert not fixed(30, sticky={"header": "x-user"}).reads_body()


def test_sticky_without_key_falls_back_to_the_draw() -> None:
    pick = S.picker(fixed(30, sticky={"header": "x-user-id"}), state(Phase.STEADY))
    assert pick(req(), 0.1).variant == "candidate"
    assert pick(req(), 0.9).variant == "stable"
    assert pick(req(), 0.1).reason == "weight"


def test_ramp_moves_users_only_from_stable_to_candidate() -> None:
    sp = spec(sticky={"header": "x-user-id"})
    users = [f"user-{i}" for i in range(3000)]
    seen: list[set[str]] = []
    for step in range(4):
        pick = S.picker(sp, state(Phase.PROGRESSING, step))
        seen.append({u for u in users if pick(req(x_user_id=u), 0.5).variant == "candidate"})
    assert all(a <= b for a, b in itertools.pairwise(seen))
    assert len(seen[-1]) == len(users)
    assert 0.03 < len(seen[0]) / len(users) < 0.07


def test_salt_combines_route_and_candidate() -> None:
    assert sticky_salt("iris", fixed(50)) == "iris/iris-v2"


# --- the phase table ----------------------------------------------------------------------

PAUSED_RAMP = {"paused_from": "progressing", "paused_at": T0 + 30}
PAUSED_WAIT = {"paused_from": "waiting", "paused_at": T0 + 30}
PAUSED_FIXED = {"paused_from": "steady", "paused_at": T0 + 30}
REJECT = None
TABLE: list[tuple[str, bool, Phase, int, dict[str, Any], Command, tuple[str, int] | None]] = [
    ("steady_rollback", True, Phase.STEADY, 0, {}, Command.ROLLBACK, ("rolled_back", 0)),
    ("steady_promote", True, Phase.STEADY, 0, {}, Command.PROMOTE, REJECT),
    ("steady_pause", True, Phase.STEADY, 0, {}, Command.PAUSE, ("paused", 0)),
    ("steady_resume", True, Phase.STEADY, 0, {}, Command.RESUME, ("steady", 0)),
    ("progressing_rollback", False, Phase.PROGRESSING, 1, {}, Command.ROLLBACK, ("rolled_back", 1)),
    ("progressing_promote", False, Phase.PROGRESSING, 0, {}, Command.PROMOTE, ("progressing", 3)),
    (
        "progressing_last_promote",
        False,
        Phase.PROGRESSING,
        3,
        {},
        Command.PROMOTE,
        ("progressing", 3),
    ),
    ("progressing_pause", False, Phase.PROGRESSING, 1, {}, Command.PAUSE, ("paused", 1)),
    ("progressing_resume", False, Phase.PROGRESSING, 1, {}, Command.RESUME, ("progressing", 1)),
    ("waiting_rollback", False, Phase.WAITING, 2, {}, Command.ROLLBACK, ("rolled_back", 2)),
    ("waiting_promote", False, Phase.WAITING, 2, {}, Command.PROMOTE, ("progressing", 3)),
    ("waiting_pause", False, Phase.WAITING, 2, {}, Command.PAUSE, ("paused", 2)),
    ("waiting_resume", False, Phase.WAITING, 2, {}, Command.RESUME, ("waiting", 2)),
    ("paused_rollback", False, Phase.PAUSED, 1, PAUSED_RAMP, Command.ROLLBACK, ("rolled_back", 1)),
    ("paused_promote", False, Phase.PAUSED, 1, PAUSED_RAMP, Command.PROMOTE, ("progressing", 3)),
    (
        "paused_waiting_promote",
        False,
        Phase.PAUSED,
        2,
        PAUSED_WAIT,
        Command.PROMOTE,
        ("progressing", 3),
    ),
    ("paused_pause", False, Phase.PAUSED, 1, PAUSED_RAMP, Command.PAUSE, ("paused", 1)),
    ("paused_resume", False, Phase.PAUSED, 1, PAUSED_RAMP, Command.RESUME, ("progressing", 1)),
    ("paused_waiting_resume", False, Phase.PAUSED, 2, PAUSED_WAIT, Command.RESUME, ("waiting", 2)),
    ("paused_fixed_promote", True, Phase.PAUSED, 0, PAUSED_FIXED, Command.PROMOTE, REJECT),
    ("paused_fixed_resume", True, Phase.PAUSED, 0, PAUSED_FIXED, Command.RESUME, ("steady", 0)),
    ("promoted_rollback", False, Phase.PROMOTED, 3, {}, Command.ROLLBACK, ("rolled_back", 3)),
    ("promoted_promote", False, Phase.PROMOTED, 3, {}, Command.PROMOTE, ("promoted", 3)),
    ("promoted_pause", False, Phase.PROMOTED, 3, {}, Command.PAUSE, REJECT),
    ("promoted_resume", False, Phase.PROMOTED, 3, {}, Command.RESUME, ("promoted", 3)),
    ("rolled_back_rollback", False, Phase.ROLLED_BACK, 2, {}, Command.ROLLBACK, ("rolled_back", 2)),
    ("rolled_back_promote", False, Phase.ROLLED_BACK, 2, {}, Command.PROMOTE, REJECT),
    ("rolled_back_pause", False, Phase.ROLLED_BACK, 2, {}, Command.PAUSE, REJECT),
    ("rolled_back_resume", False, Phase.ROLLED_BACK, 2, {}, Command.RESUME, ("progressing", 0)),
    ("rolled_back_fixed_resume", True, Phase.ROLLED_BACK, 0, {}, Command.RESUME, ("steady", 0)),
]


@pytest.mark.parametrize(
    ("is_fixed", "phase", "step", "extra", "command", "expected"),
    [c[1:] for c in TABLE],
    ids=[c[0] for c in TABLE],
)
def test_phase_table(
    is_fixed: bool,
    phase: Phase,
    step: int,
    extra: dict[str, Any],
    command: Command,
    expected: tuple[str, int] | None,
) -> None:
    sp = fixed(10) if is_fixed else spec()
    before = state(phase, step, **extra)
    if expected is None:
        with pytest.raises(ActionRejectedError) as info:
            S.apply(sp, before, command, T0 + 100, "")
        assert info.value.reason
        return
    result = S.apply(sp, before, command, T0 + 100, "because")
    assert (result.state.phase, result.state.step) == expected
    if result.state == before:
        assert result.events == ()
    else:
        assert [e.kind for e in result.events] == [command.value]
        assert result.events[0].reason == "because"
        assert result.events[0].fields["to_phase"] == result.state.phase


def test_table_covers_every_phase_and_command() -> None:
    phases = {p for p in Phase if p != Phase.MIRRORING}
    assert set(ACTIONS) == phases
    assert all(set(row) == set(Command) for row in ACTIONS.values())


def test_manual_rollback_event_says_manual() -> None:
    result = S.apply(spec(), state(Phase.PROGRESSING, 1), Command.ROLLBACK, T0, "bad model")
    (event,) = result.events
    assert (event.kind, event.reason) == ("rollback", "bad model")
    assert event.fields["trigger"] == "manual"
    assert (event.fields["from_weight"], event.fields["to_weight"]) == (25, 0)


# --- the ramp -----------------------------------------------------------------------------


def test_ramp_walk_with_manual_hold() -> None:
    sp = spec()
    st = S.initial_state(sp, T0)
    assert (st.phase, st.step, current_weight(sp, st)) == ("progressing", 0, 5)
    assert S.advance(sp, st, None, T0 + 59).state == st
    moved = S.advance(sp, st, None, T0 + 60)
    st = moved.state
    (event,) = moved.events
    assert event.kind == "rollout_step"
    assert (event.fields["from_step"], event.fields["to_step"]) == (0, 1)
    assert (event.fields["from_weight"], event.fields["to_weight"]) == (5, 25)
    assert (st.step, st.since) == (1, T0 + 60)
    assert S.advance(sp, st, None, T0 + 179).state == st
    st = S.advance(sp, st, None, T0 + 180).state
    assert (st.phase, st.step, current_weight(sp, st)) == ("waiting", 2, 50)
    assert S.advance(sp, st, None, T0 + 99_999).state == st
    st = S.apply(sp, st, Command.PROMOTE, T0 + 5000, "looks good").state
    assert (st.phase, st.step, current_weight(sp, st)) == ("progressing", 3, 100)
    assert S.advance(sp, st, None, T0 + 5059).state == st
    done = S.advance(sp, st, None, T0 + 5060)
    assert done.state.phase == "promoted"
    assert [e.kind for e in done.events] == ["promote"]
    status = S.status(sp, done.state, T0 + 5060)
    assert status["weights"] == {"stable": 0, "candidate": 100}
    assert status["message"] == "all traffic on iris-v2: make it the new stable in the file"
    assert S.picker(sp, done.state)(req(), 0.999).variant == "candidate"


def test_a_manual_first_step_starts_waiting() -> None:
    sp = spec(steps=[{"weight": 10, "hold": "manual"}])
    st = S.initial_state(sp, T0)
    assert st.phase == "waiting"
    assert S.apply(sp, st, Command.PROMOTE, T0 + 1, "").state.phase == "promoted"


def test_fixed_weight_starts_steady_and_follows_the_file() -> None:
    st = S.initial_state(fixed(10), T0)
    assert st.phase == "steady"
    assert current_weight(fixed(12.5), st) == 12.5
    assert S.advance(fixed(10), st, None, T0 + 10**6).state == st


def test_pause_keeps_the_hold_already_served() -> None:
    sp = spec()
    st = S.apply(sp, state(Phase.PROGRESSING, 0), Command.PAUSE, T0 + 40, "").state
    assert current_weight(sp, st) == 5
    assert S.advance(sp, st, None, T0 + 10_000).state == st
    st = S.apply(sp, st, Command.RESUME, T0 + 1000, "").state
    assert (st.phase, st.since) == ("progressing", T0 + 960)
    assert S.advance(sp, st, None, T0 + 1019).state.step == 0
    assert S.advance(sp, st, None, T0 + 1020).state.step == 1


# --- analysis -----------------------------------------------------------------------------


def test_analysis_gates_each_step() -> None:
    sp = spec(analysis=ANALYSIS)
    st = S.initial_state(sp, T0)
    assert S.analysis_window(sp, st) == 30.0
    first = S.advance(sp, st, obs(GOOD), T0 + 30)
    assert [e.kind for e in first.events] == ["analysis"]
    assert first.state.step == 0
    assert S.advance(sp, first.state, obs(GOOD), T0 + 45).events == ()  # not due
    second = S.advance(sp, first.state, obs(GOOD), T0 + 60)
    assert [e.kind for e in second.events] == ["analysis", "rollout_step"]
    assert second.state.step == 1


@pytest.mark.parametrize(
    ("observation", "why"),
    [(obs(THIN), "thin data"), (None, "no observation")],
    ids=["hold_on_thin_data", "missing_observation_holds"],
)
def test_no_verdict_means_hold(observation: Observation | None, why: str) -> None:
    sp = spec(analysis=ANALYSIS)
    st = S.initial_state(sp, T0)
    for t in (30, 60, 90, 120, 500):
        st = S.advance(sp, st, observation, T0 + t).state
    assert (st.phase, st.step, st.consecutive_failures) == ("progressing", 0, 0), why


@pytest.mark.parametrize(
    ("on_failure", "up", "phase", "kind", "trigger"),
    [
        ("rollback", True, "rolled_back", "rollback", "analysis"),
        ("rollback", False, "rolled_back", "rollback", "health"),
        ("pause", True, "paused", "pause", "analysis"),
    ],
    ids=["rollback_on_errors", "rollback_on_health", "pause_on_errors"],
)
def test_failures_to_act(on_failure: str, up: bool, phase: str, kind: str, trigger: str) -> None:
    sp = spec(analysis=ANALYSIS, on_failure=on_failure)
    st = S.initial_state(sp, T0)
    one = S.advance(sp, st, obs(BAD, up=up), T0 + 30)
    assert (one.state.phase, one.state.consecutive_failures) == ("progressing", 1)
    # thin data between two failures neither resets nor adds to the count
    held = S.advance(sp, one.state, obs(THIN, up=True), T0 + 60)
    assert held.state.consecutive_failures == 1
    two = S.advance(sp, held.state, obs(BAD, up=up), T0 + 90)
    assert two.state.phase == phase
    assert [e.kind for e in two.events] == ["analysis", kind]
    assert two.events[1].fields["trigger"] == trigger
    assert two.events[1].reason
    if not up:
        assert HEALTH_DOWN_REASON in two.events[1].reason
    assert S.analysis_window(sp, two.state) is None


def test_a_pass_resets_the_failure_count() -> None:
    sp = spec(analysis=ANALYSIS)
    st = S.advance(sp, S.initial_state(sp, T0), obs(BAD), T0 + 30).state
    st = S.advance(sp, st, obs(GOOD), T0 + 60).state
    st = S.advance(sp, st, obs(BAD), T0 + 90).state
    assert (st.phase, st.consecutive_failures) == ("progressing", 1)


def test_a_fixed_weight_canary_is_rolled_back_by_analysis() -> None:
    sp = fixed(10, analysis=ANALYSIS)
    st = S.initial_state(sp, T0)
    for t in (30, 60):
        st = S.advance(sp, st, obs(BAD), T0 + t).state
    assert st.phase == "rolled_back"
    assert current_weight(sp, st) == 0


@pytest.mark.parametrize(
    ("phase", "window"),
    [
        (Phase.STEADY, 30.0),
        (Phase.PROGRESSING, 30.0),
        (Phase.WAITING, 30.0),
        (Phase.PAUSED, None),
        (Phase.PROMOTED, None),
        (Phase.ROLLED_BACK, None),
    ],
    ids=lambda v: str(v),
)
def test_analysis_window_per_phase(phase: Phase, window: float | None) -> None:
    assert S.analysis_window(spec(analysis=ANALYSIS), state(phase, 2)) == window
    assert S.analysis_window(spec(), state(phase, 2)) is None


# --- reload, restart, resume --------------------------------------------------------------

ROLLED = state(Phase.ROLLED_BACK, 2, consecutive_failures=2)
RECONCILE: list[tuple[str, CanaryState, CanarySpec, tuple[str, int, float]]] = [
    ("rolled_back_same_spec", ROLLED, spec(), ("rolled_back", 2, T0)),
    ("rolled_back_to_fixed", ROLLED, fixed(10), ("rolled_back", 2, T0)),
    (
        "rolled_back_fewer_steps",
        ROLLED,
        spec(steps=[{"weight": 5, "hold": 1}]),
        ("rolled_back", 2, T0),
    ),
    ("steady_to_ramp", state(Phase.STEADY), spec(), ("progressing", 0, T0 + 5)),
    ("progressing_to_fixed", state(Phase.PROGRESSING, 1), fixed(10), ("steady", 0, T0 + 5)),
    ("promoted_to_fixed", state(Phase.PROMOTED, 3), fixed(10), ("steady", 0, T0 + 5)),
    (
        "steps_shrank",
        state(Phase.PROGRESSING, 3),
        spec(steps=RAMP["steps"][:2]),
        ("progressing", 1, T0 + 5),
    ),
    (
        "steps_shrank_to_manual",
        state(Phase.PROGRESSING, 3),
        spec(steps=RAMP["steps"][:3]),
        ("waiting", 2, T0 + 5),
    ),
    (
        "hold_no_longer_manual",
        state(Phase.WAITING, 2),
        spec(steps=[*RAMP["steps"][:2], {"weight": 50, "hold": 5}]),
        ("progressing", 2, T0),
    ),
    (
        "weight_edit_only",
        state(Phase.PROGRESSING, 1),
        spec(steps=[{"weight": 1, "hold": 1}, {"weight": 30, "hold": 9}]),
        ("progressing", 1, T0),
    ),
    ("paused_to_fixed", state(Phase.PAUSED, 1, **PAUSED_RAMP), fixed(10), ("paused", 0, T0)),
]


@pytest.mark.parametrize(
    ("before", "new_spec", "expected"), [c[1:] for c in RECONCILE], ids=[c[0] for c in RECONCILE]
)
def test_reconcile(
    before: CanaryState, new_spec: CanarySpec, expected: tuple[str, int, float]
) -> None:
    result = S.reconcile(new_spec, before, T0 + 5)
    assert (result.state.phase, result.state.step, result.state.since) == expected
    assert bool(result.events) == (result.state != before)


def test_paused_fixed_weight_reconcile_resumes_to_steady() -> None:
    st = S.reconcile(fixed(10), state(Phase.PAUSED, 1, **PAUSED_RAMP), T0 + 5).state
    assert S.apply(fixed(10), st, Command.RESUME, T0 + 6, "").state.phase == "steady"


def test_rolled_back_survives_dump_and_load() -> None:
    sp = spec(analysis=ANALYSIS)
    st = S.initial_state(sp, T0)
    for t in (30, 60):
        st = S.advance(sp, st, obs(BAD), T0 + t).state
    assert st.phase == "rolled_back"
    loaded = S.load_state(json.loads(json.dumps(S.dump_state(st))))
    assert loaded == st
    assert S.reconcile(sp, loaded, T0 + 100).state == loaded
    assert S.picker(sp, loaded)(req(), 0.0).variant == "stable"


def test_resume_restarts_the_ramp_at_step_zero() -> None:
    sp = spec(analysis=ANALYSIS)
    st = state(Phase.ROLLED_BACK, 2, consecutive_failures=2, last_check_at=T0)
    result = S.apply(sp, st, Command.RESUME, T0 + 500, "fixed it")
    new = result.state
    assert (new.phase, new.step, new.since, new.consecutive_failures) == (
        "progressing",
        0,
        T0 + 500,
        0,
    )
    assert new.last_check_at is None
    assert [e.kind for e in result.events] == ["resume"]


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"phase": "flying", "since": 1},
        {"phase": "steady", "since": "x"},
        {"phase": "steady", "since": 1, "step": -1},
        {"phase": "steady", "since": 1, "last_verdict": {"outcome": "maybe", "at": 1}},
        {"phase": "paused", "since": 1, "paused_from": "nowhere"},
    ],
    ids=["empty", "unknown_phase", "bad_since", "negative_step", "bad_verdict", "bad_paused_from"],
)
def test_load_state_rejects_garbage(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        S.load_state(data)


# --- status and identity ------------------------------------------------------------------


def test_status_of_a_ramp() -> None:
    sp = spec(analysis=ANALYSIS)
    st = S.advance(sp, S.initial_state(sp, T0), obs(GOOD), T0 + 30).state
    st = replace(st, step=1)
    status = S.status(sp, st, T0 + 40)
    assert status["phase"] == "progressing"
    assert status["weights"] == {"stable": 75, "candidate": 25}
    assert isinstance(status["weights"]["stable"], int)
    assert (status["step"], status["steps"]) == (1, 4)
    assert status["since"] == format_instant(T0)
    last = status["analysis"]["last"]
    assert (last["ok"], last["outcome"], last["reasons"]) == (True, "pass", [])
    assert status["analysis"]["consecutive_failures"] == 0
    json.dumps(status)


def test_status_of_a_fixed_decimal_weight() -> None:
    status = S.status(fixed(12.5), S.initial_state(fixed(12.5), T0), T0)
    assert status["weights"] == {"stable": 87.5, "candidate": 12.5}
    assert "step" not in status and "analysis" not in status


def test_identity_follows_the_candidate_only() -> None:
    urls = {"iris-v1": "http://127.0.0.1:8001", "iris-v2": "http://127.0.0.1:8002"}
    base = S.identity(spec(), urls)
    assert S.identity(spec(), {**urls, "iris-v1": "http://other"}) == base
    assert S.identity(spec(), {**urls, "iris-v2": "http://other"}) != base
    assert S.identity(spec(candidate="iris-v3"), urls) != base
    assert S.identity(fixed(10), urls) == base


def test_sticky_buckets_are_salted_with_the_route_name() -> None:
    """Two routes with the same candidate do not put the same users first."""
    sp = fixed(50, sticky={"header": "x-user-id"})
    pick = S.picker(sp, state(Phase.STEADY))

    def variants(route: str) -> list[str]:
        return [
            pick(RequestView("GET", "/", {"x-user-id": f"u{i}"}, route), 0.0).variant
            for i in range(2000)
        ]

    first, second = variants("iris"), variants("fraud")
    overlap = sum(a == b == "candidate" for a, b in zip(first, second, strict=True))
    assert 400 < overlap < 600  # independent halves overlap about a quarter of the time
    assert variants("iris") == first
