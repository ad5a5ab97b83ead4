"""A canary's shadow-first stage: copies only, judged on agreement, then the ramp or on_failure."""

from __future__ import annotations

from typing import Any

import pytest

from strategies.base import Command, Phase, RequestView
from strategies.canary.strategy import CanarySpec, CanaryState, CanaryStrategy, current_weight
from strategies.observation import Observation, ShadowCounts

S = CanaryStrategy()
T0 = 1_800_000_000.0
FIRST = {"percent": 100, "min_compared": 200, "min_agreement": 0.98, "max_label_flip_rate": 0.02}


def spec(**changes: Any) -> CanarySpec:
    data: dict[str, Any] = {
        "stable": "iris-v1", "candidate": "iris-v2", "shadow_first": FIRST,
        "steps": [{"weight": 5, "hold": "60s"}, {"weight": 100, "hold": "60s"}], **changes,
    }
    return CanarySpec.model_validate({k: v for k, v in data.items() if v is not None})


def seen(compared: int, matched: int, labelled: int = 0, flips: int = 0) -> Observation:
    return Observation(1.0, shadow=ShadowCounts(compared, matched, labelled, flips))


def run(sp: CanarySpec, counts: list[Observation]) -> tuple[CanaryState, list[Any]]:
    """Start a rollout and feed it the counts, one tick two seconds apart."""
    st = S.initial_state(sp, T0)
    events = []
    for i, observation in enumerate(counts):
        transition = S.advance(sp, st, observation, T0 + 2 * i)
        st = transition.state
        events += transition.events
    return st, events


def test_the_stage_sends_copies_only() -> None:
    sp = spec(force_header="x-router-variant")
    st = S.initial_state(sp, T0)
    assert st.phase == Phase.SHADOWING and current_weight(sp, st) == 0
    assert S.status(sp, st, T0)["weights"] == {"stable": 100, "candidate": 0}
    pick = S.picker(sp, st)
    forced = RequestView("POST", "/p", {"x-router-variant": "candidate"})
    for rand in (0.0, 0.5, 0.99):
        decision = pick(forced, rand)
        assert (decision.variant, decision.backend) == ("stable", "iris-v1")
        assert decision.mirror is not None and decision.mirror.backends == ("iris-v2",)


def test_too_few_comparisons_hold_and_show_progress() -> None:
    sp = spec()
    st, events = run(sp, [seen(1000, 1000), seen(1120, 1119)])
    assert st.phase == Phase.SHADOWING and not events
    shown = S.status(sp, st, T0)["shadow_first"]
    assert (shown["compared"], shown["min_compared"]) == (120, 200)
    assert shown["explanation"] == "shadow_agreement: 120 of 200 comparisons made"


def test_agreement_passes_to_step_zero() -> None:
    sp = spec()
    st, events = run(sp, [seen(0, 0), seen(250, 249, 250, 1)])
    assert (st.phase, st.step, current_weight(sp, st)) == (Phase.PROGRESSING, 0, 5)
    (event,) = events
    assert event.kind == "shadow_passed"
    assert event.reason == ("shadow_agreement 99.6% >= 98.0% (249 of 250 compared answers "
                            "matched; label flips 0.4% of 250)")
    assert event.fields["shadow_compared"] == 250 and event.fields["to_weight"] == 5


@pytest.mark.parametrize(
    ("counts", "why"),
    [(seen(200, 180), "shadow_agreement 90.0% (min 98.0%, max flips 2.0%): 180 of 200"),
     (seen(200, 199, 200, 10), "shadow_agreement 99.5% (min 98.0%, max flips 2.0%): 199 of 200")],
    ids=["disagrees", "flips_labels"],
)
def test_disagreement_rolls_back_with_the_numbers(counts: Observation, why: str) -> None:
    st, events = run(spec(), [seen(0, 0), counts])
    assert st.phase == Phase.ROLLED_BACK
    (event,) = events
    assert event.kind == "rollback" and event.fields["trigger"] == "analysis"
    assert event.reason.startswith(why)
    again = S.apply(spec(), st, Command.RESUME, T0 + 100, "")
    assert again.state.phase == Phase.SHADOWING  # resume restarts with the stage


def test_on_failure_pause_pauses_the_stage() -> None:
    st, events = run(spec(on_failure="pause"), [seen(0, 0), seen(200, 100)])
    assert (st.phase, st.paused_from, events[0].kind) == (Phase.PAUSED, "shadowing", "pause")


def test_promote_skips_the_stage_and_fixed_weights_start_steady() -> None:
    st = S.initial_state(spec(), T0)
    skipped = S.apply(spec(), st, Command.PROMOTE, T0 + 1, "")
    assert (skipped.state.phase, skipped.state.step) == (Phase.PROGRESSING, 0)
    assert skipped.events[0].kind == "promote"
    fixed = spec(steps=None, weight=10)
    st, events = run(fixed, [seen(0, 0), seen(300, 300)])
    assert [e.kind for e in events] == ["shadow_passed"]
    assert (st.phase, current_weight(fixed, st)) == (Phase.STEADY, 10)
    paused = S.apply(fixed, S.initial_state(fixed, T0), Command.PAUSE, T0, "").state
    assert S.apply(fixed, paused, Command.PROMOTE, T0 + 1, "").state.phase == Phase.STEADY


def test_a_restart_counts_again_and_the_state_round_trips() -> None:
    sp = spec()
    st, _ = run(sp, [seen(500, 500), seen(600, 600)])
    restarted = S.advance(sp, st, seen(10, 10), T0 + 10).state  # counters went back
    assert restarted.shadow_mark == ShadowCounts(10, 10)
    assert S.load_state(S.dump_state(restarted)) == restarted


def test_removing_shadow_first_from_the_file_starts_the_ramp() -> None:
    st = S.initial_state(spec(), T0)
    fitted = S.reconcile(spec(shadow_first=None), st, T0 + 5)
    assert (fitted.state.phase, fitted.state.step) == (Phase.PROGRESSING, 0)
