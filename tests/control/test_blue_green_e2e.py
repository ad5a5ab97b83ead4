"""Blue-green end to end (issue 6, item 6): a real router process, real backends, real HTTP.

Preview routing, twenty checked switches back and forth under concurrent load
(none failing, each response from the colour active when it started), a failing
``switch_check`` refusing a switch, post-switch analysis switching back, a
rollback that holds across a reload and a restart, and pause/resume refused.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rollout_support import (
    Knobs,
    Load,
    Outcome,
    Stack,
    burst,
    failures,
    metric,
    running_backends,
    running_stack,
)
from tests.support import ServerThread, wait_until

COLOURS = {"app-blue": "blue", "app-green": "green"}
ANALYSIS = {"interval": "1s", "min_requests": 5, "max_error_rate": 0.1, "failures_to_act": 2}
CHECK = {"path": "/health", "expect_status": 200, "timeout": "1s"}


def other(colour: str) -> str:
    """The other colour."""
    return "green" if colour == "blue" else "blue"


def colours(outcomes: list[Outcome]) -> set[str | None]:
    """The colours that answered ``outcomes``."""
    return {COLOURS.get(o.backend or "") for o in outcomes}


def blue_green(**fields: Any) -> dict[str, Any]:
    """A blue-green strategy section on the shared backends."""
    return {"type": "blue_green", "blue": "app-blue", "green": "app-green", **fields}


@pytest.fixture(scope="module")
def knobs() -> dict[str, Knobs]:
    """The knobs of the blue and green backends."""
    return {"blue": Knobs(), "green": Knobs()}


@pytest.fixture(scope="module")
def backends(knobs: dict[str, Knobs]) -> Iterator[dict[str, ServerThread]]:
    """``app-blue`` and ``app-green``, shared by every test of the module."""
    with running_backends(knobs, prefix="app-") as started:
        yield started


pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("healthy")]  # e2e: tests/conftest.py


def test_preview_header_goes_to_the_inactive_colour(stack: Stack) -> None:
    stack.add_route("preview", blue_green(active="blue", preview_header="x-router-preview"))
    assert colours(burst(stack.url("preview"), 100)) == {"blue"}
    previewed = burst(stack.url("preview"), 100, headers=lambda i: {"x-router-preview": "1"})
    assert colours(previewed) == {"green"} and not failures(previewed)
    status = stack.route_status("preview")
    assert status["phase"] == "steady" and status["active"] == "blue"
    assert status["weights"] == {"blue": 100, "green": 0}
    assert status["backends"] == {"blue": "app-blue", "green": "app-green"}
    # After a switch the preview follows: it goes to the colour now inactive.
    assert stack.act("preview", "promote").status_code == 200
    _wait_switched(stack, "preview", "green")
    assert colours(burst(stack.url("preview"), 50)) == {"green"}
    previewed = burst(stack.url("preview"), 50, headers=lambda i: {"x-router-preview": "yes"})
    assert colours(previewed) == {"blue"}


def test_pause_and_resume_answer_409_with_a_reason(stack: Stack) -> None:
    stack.add_route("nopause", blue_green(active="blue"))
    for action in ("pause", "resume"):
        answer = stack.act("nopause", action)
        assert answer.status_code == 409, answer.text
        assert answer.json()["detail"], answer.text
    assert stack.route_status("nopause")["active"] == "blue"


def _wait_switched(stack: Stack, route: str, target: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = stack.route_status(route)
        if status.get("refused"):
            raise AssertionError(f"switch to {target} refused: {status['refused']}")
        ok = status["active"] == target and status.get("pending_switch") is None
        return status if ok else None

    found: dict[str, Any] = wait_until(done, timeout=5, interval=0.01)
    return found


GRACE = 0.05  # after a switch answers, requests may still be on their way to the old colour


def test_twenty_switches_under_load_fail_no_request(
    stack: Stack, knobs: dict[str, Knobs]
) -> None:
    stack.add_route("flip", blue_green(active="blue", switch_check=CHECK))
    for k in knobs.values():
        k.delay_s = 0.02  # requests are in flight when each switch lands
    timeline: list[tuple[float, float, str]] = []  # (asked, completed, active colour)
    active = "blue"
    with Load(stack.url("flip"), workers=8, gap_s=0.005) as load:
        timeline.append((0.0, time.monotonic(), active))
        wait_until(lambda: len(load.outcomes) >= 20)  # the load is under way
        for i in range(20):
            target = other(active)
            asked = time.monotonic()
            if i % 3 == 0:  # edit, promote, promote: each edit names the other colour
                stack.routes["flip"]["active"] = target
                stack.write()
            else:
                answer = stack.act("flip", "promote")
                assert answer.status_code == 200, answer.text
            _wait_switched(stack, "flip", target)
            timeline.append((asked, time.monotonic(), target))
            active = target
            settled = timeline[-1][1] + GRACE  # requests sent from here on see the new colour
            wait_until(lambda t=settled: len(load.since(t)) >= 10)
        outcomes = load.stop()

    assert not failures(outcomes), failures(outcomes)[:5]
    checked = in_flight = 0
    for (_, done, colour), (next_asked, _, _) in zip(
        timeline, [*timeline[1:], (float("inf"), 0.0, "")], strict=True
    ):
        window = [o for o in outcomes if o.started >= done + GRACE and o.ended <= next_asked]
        wrong = [o for o in window if COLOURS.get(o.backend or "") != colour]
        assert not wrong, f"{len(wrong)} requests after the switch to {colour} went elsewhere"
        checked += len(window)
        in_flight += sum(o.started < next_asked < o.ended for o in outcomes)
    assert checked > 200 and in_flight > 20, (checked, in_flight)
    switches = stack.events("flip", "switch")
    assert len(switches) == 20
    status = stack.route_status("flip")
    assert status["active"] == active and status["previous"] == other(active)
    assert status["last_switch"] is not None
    admin = stack.live.admin_url
    assert metric(admin, "router_traffic_weight_percent", route="flip", variant=active) == 100
    assert metric(admin, "router_traffic_weight_percent", route="flip", variant=other(active)) == 0


def test_failing_switch_check_refuses_the_switch(stack: Stack, knobs: dict[str, Knobs]) -> None:
    stack.add_route("guarded", blue_green(active="blue", switch_check=CHECK))
    knobs["green"].health_status = 503
    with Load(stack.url("guarded"), workers=4) as load:
        assert stack.act("guarded", "promote").status_code == 200

        def refused() -> dict[str, Any] | None:
            status = stack.route_status("guarded")
            return status if status.get("refused") else None

        status = wait_until(refused, timeout=5)
        assert status["active"] == "blue" and status.get("pending_switch") is None
        assert "503" in status["refused"], status["refused"]
        # An edit of ``active`` is checked (and refused) the same way.
        stack.routes["guarded"]["active"] = "green"
        stack.apply()
        wait_until(lambda: len(stack.events("guarded", "switch_refused")) == 2, timeout=5)
        assert stack.route_status("guarded")["active"] == "blue"
        outcomes = load.stop()
    assert colours(outcomes) == {"blue"} and not failures(outcomes)
    events = stack.events("guarded", "switch_refused")
    assert all("503" in e["reason"] and e["to"] == "green" for e in events), events
    logged = stack.log_events("guarded", "switch_refused")
    assert logged and "503" in logged[0]["reason"]
    assert not stack.events("guarded", "switch")

    knobs["green"].health_status = 200
    assert stack.act("guarded", "promote").status_code == 200
    _wait_switched(stack, "guarded", "green")
    assert colours(burst(stack.url("guarded"), 50)) == {"green"}


def test_new_colour_failing_after_the_switch_is_switched_back_by_analysis(
    stack: Stack, knobs: dict[str, Knobs]
) -> None:
    stack.add_route("watched", blue_green(active="blue", analysis=ANALYSIS))
    with Load(stack.url("watched"), workers=4):
        assert stack.act("watched", "promote").status_code == 200
        _wait_switched(stack, "watched", "green")
        knobs["green"].fail = True

        def switched_back() -> dict[str, Any] | None:
            status = stack.route_status("watched")
            return status if status["active"] == "blue" else None

        status = wait_until(switched_back, timeout=30)
    assert status["phase"] == "rolled_back" and status["previous"] == "green"
    assert status["analysis"]["last"]["ok"] is False
    rollbacks = stack.events("watched", "rollback")
    assert len(rollbacks) == 1 and rollbacks[0]["trigger"] == "analysis"
    assert "error_rate" in rollbacks[0]["reason"]
    admin = stack.live.admin_url
    assert metric(admin, "router_rollbacks_total", route="watched", trigger="analysis") == 1
    assert metric(admin, "router_traffic_weight_percent", route="watched", variant="blue") == 100
    assert metric(admin, "router_rollout_phase", route="watched", phase="rolled_back") == 1
    after = burst(stack.url("watched"), 50)
    assert colours(after) == {"blue"} and not failures(after)


@pytest.fixture
def own_stack(tmp_path: Path, backends: dict[str, ServerThread]) -> Iterator[Stack]:
    """A router of this test's own (not started), on a file store (for restarts)."""
    with running_stack(tmp_path, backends, "file", start=False) as own:
        yield own


def test_rollback_holds_across_a_reload_and_a_restart(own_stack: Stack) -> None:
    stack = own_stack
    stack.routes["ranker"] = blue_green(active="blue", switch_check=CHECK)
    stack.routes["other"] = {"type": "direct", "backend": "app-blue"}
    stack.start()
    stack.routes["ranker"]["active"] = "green"
    stack.apply()
    _wait_switched(stack, "ranker", "green")
    assert colours(burst(stack.url("ranker"), 30)) == {"green"}

    answer = stack.act("ranker", "rollback", reason="bad model")
    assert answer.status_code == 200, answer.text
    status = stack.route_status("ranker")
    assert (status["active"], status["phase"]) == ("blue", "rolled_back")
    assert "edit active" in status["message"]
    assert colours(burst(stack.url("ranker"), 30)) == {"blue"}
    admin = stack.live.admin_url
    assert metric(admin, "router_rollbacks_total", route="ranker", trigger="manual") == 1
    assert stack.events("ranker", "rollback")[0]["reason"] == "bad model"

    stack.routes["other"] = {"type": "direct", "backend": "app-green"}
    stack.apply()
    assert stack.route_status("ranker")["active"] == "blue"
    assert colours(burst(stack.url("ranker"), 30)) == {"blue"}

    stack.restart()
    status = stack.route_status("ranker")
    assert (status["active"], status["phase"]) == ("blue", "rolled_back")
    assert colours(burst(stack.url("ranker"), 30)) == {"blue"}
    time.sleep(1.2)  # controller ticks and a store sync must not undo it either
    assert stack.route_status("ranker")["active"] == "blue"

    # Editing ``active`` to a new value ends the rollback; the next edit switches again.
    stack.routes["ranker"]["active"] = "blue"
    stack.apply()
    status = stack.route_status("ranker")
    assert (status["active"], status["phase"]) == ("blue", "steady")
    stack.routes["ranker"]["active"] = "green"
    stack.apply()
    _wait_switched(stack, "ranker", "green")
    assert colours(burst(stack.url("ranker"), 30)) == {"green"}
