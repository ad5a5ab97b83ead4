"""Canary end to end (issue 4, item 6): a real router process, real backends, real HTTP.

Splitting, stickiness and its monotonicity across a file edit, ramps walking to
``promoted``, manual holds released by the CLI, pause/resume, analysis rolling a
failing candidate back (and that holding across a reload and a restart),
``fallback_to_stable`` hiding a dead candidate, ``force_header`` and live weight
edits. Most tests share one router and add their own route to its file (a new
route starts its ramp at step 0); tests that restart the router get their own.

The helpers (``Knobs``/``knob_app``, ``Load``, ``burst``, ``Stack``, ``metric``) live in
``tests/rollout_support.py``, shared with ``tests/control/test_blue_green_e2e.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.rollout_support import (
    Knobs,
    Load,
    Outcome,
    Stack,
    burst,
    failures,
    knob_app,
    metric,
    running_stack,
    share,
)
from tests.support import ROOT, ServerThread, free_port, wait_until

# -- fixtures ------------------------------------------------------------------------


pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("healthy")]  # e2e: tests/conftest.py


def canary(**fields: Any) -> dict[str, Any]:
    """A canary strategy section on the shared ``stable``/``candidate`` backends."""
    return {"type": "canary", "stable": "stable", "candidate": "candidate", **fields}


# -- splitting -------------------------------------------------------------------------


def test_weight_20_sends_20_percent_without_a_sticky_key(stack: Stack) -> None:
    stack.add_route("split", canary(weight=20))
    outcomes = burst(stack.url("split"), 2000)
    assert not failures(outcomes)
    assert share(outcomes, "candidate") == pytest.approx(0.20, abs=0.03)
    assert stack.route_status("split")["phase"] == "steady"
    assert stack.route_status("split")["weights"] == {"stable": 80, "candidate": 20}


def _variants(outcomes: list[Outcome], keys: list[str]) -> dict[str, set[str | None]]:
    seen: dict[str, set[str | None]] = {}
    for key, outcome in zip(keys, outcomes, strict=True):
        seen.setdefault(key, set()).add(outcome.backend)
    return seen


def test_sticky_header_keeps_its_variant_and_only_grows_with_the_weight(stack: Stack) -> None:
    stack.add_route("sticky", canary(weight=10, sticky={"header": "x-user-id"}))
    keys = [f"user-{i}" for i in range(1500)]
    repeated = keys + keys[:300] + keys[:300]
    at_10 = burst(stack.url("sticky"), len(repeated), headers=lambda i: {"x-user-id": repeated[i]})
    assert not failures(at_10)
    seen = _variants(at_10, repeated)
    assert all(len(variants) == 1 for variants in seen.values()), "a key changed variant"
    in_candidate_10 = {k for k, v in seen.items() if v == {"candidate"}}
    assert len(in_candidate_10) / len(keys) == pytest.approx(0.10, abs=0.03)

    stack.routes["sticky"] = canary(weight=40, sticky={"header": "x-user-id"})
    stack.apply()
    at_40 = burst(stack.url("sticky"), len(keys), headers=lambda i: {"x-user-id": keys[i]})
    assert not failures(at_40)
    in_candidate_40 = {k for k, o in zip(keys, at_40, strict=True) if o.backend == "candidate"}
    assert in_candidate_10 <= in_candidate_40, (
        f"{len(in_candidate_10 - in_candidate_40)} keys moved back to stable"
    )
    assert len(in_candidate_40) / len(in_candidate_10) == pytest.approx(4.0, rel=0.2)


def test_sticky_cookie_keeps_its_variant(stack: Stack) -> None:
    stack.add_route("cookie", canary(weight=30, sticky={"cookie": "session_id"}))
    keys = [f"s{i:04d}" for i in range(600)]
    repeated = keys * 3
    outcomes = burst(
        stack.url("cookie"), len(repeated),
        headers=lambda i: {"cookie": f"theme=dark; session_id={repeated[i]}"},
    )
    assert not failures(outcomes)
    seen = _variants(outcomes, repeated)
    assert all(len(variants) == 1 for variants in seen.values()), "a session changed variant"
    candidates = sum(v == {"candidate"} for v in seen.values())
    assert candidates / len(keys) == pytest.approx(0.30, abs=0.05)


def test_sticky_buckets_are_salted_with_the_route_name(stack: Stack) -> None:
    """Issue 4 item 1: the key is hashed salted with the route's name, so two routes
    with the same candidate do not put the same users first."""
    sticky = {"header": "x-user-id"}
    stack.routes["salt-a"] = canary(weight=50, sticky=sticky)
    stack.add_route("salt-b", canary(weight=50, sticky=sticky))
    keys = [f"user-{i}" for i in range(400)]
    picked = {}
    for route in ("salt-a", "salt-b"):
        outcomes = burst(stack.url(route), len(keys), headers=lambda i: {"x-user-id": keys[i]})
        picked[route] = {k for k, o in zip(keys, outcomes, strict=True) if o.backend == "candidate"}
    overlap = len(picked["salt-a"] & picked["salt-b"]) / max(1, len(picked["salt-a"]))
    # Independent salts overlap by about half; the same salt overlaps completely.
    assert overlap < 0.8, f"{overlap:.0%} of route a's candidate users are route b's too"


def test_force_header_sends_requests_to_the_named_variant(stack: Stack) -> None:
    stack.add_route(
        "forced",
        canary(weight=50, sticky={"header": "x-user-id"}, force_header="x-router-variant"),
    )
    for variant in ("candidate", "stable"):

        def forced(i: int, variant: str = variant) -> dict[str, str]:
            return {"x-router-variant": variant, "x-user-id": f"u{i}"}

        outcomes = burst(stack.url("forced"), 200, headers=forced)
        assert {o.backend for o in outcomes} == {variant}
        assert not failures(outcomes)


def test_weight_edit_shifts_traffic_within_a_second(stack: Stack) -> None:
    stack.add_route("fixed", canary(weight=0))
    assert {o.backend for o in burst(stack.url("fixed"), 50)} == {"stable"}
    stack.routes["fixed"] = canary(weight=100)
    written = time.monotonic()
    stack.write()

    def all_candidate() -> bool:
        return {o.backend for o in burst(stack.url("fixed"), 8, concurrency=8)} == {"candidate"}

    wait_until(all_candidate, timeout=1.0, interval=0.01)
    took = time.monotonic() - written
    assert took < 1.0, f"traffic moved after {took:.2f}s"
    assert stack.route_status("fixed")["weights"] == {"stable": 0, "candidate": 100}


# -- ramps and actions -------------------------------------------------------------------


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()


def test_short_steps_walk_to_promoted(stack: Stack) -> None:
    steps = [{"weight": w, "hold": "1s"} for w in (10, 30, 60, 100)]
    stack.add_route("ramp", canary(steps=steps))
    first = stack.route_status("ramp")
    assert first["phase"] == "progressing" and first["step"] == 0 and first["steps"] == 4

    def promoted() -> dict[str, Any] | None:
        status = stack.route_status("ramp")
        return status if status["phase"] == "promoted" else None

    final = wait_until(promoted, timeout=10)
    assert final["weights"] == {"stable": 0, "candidate": 100}
    assert "candidate" in final["message"] and "new stable" in final["message"]
    steps_taken = sorted(stack.events("ramp", "rollout_step"), key=_at)
    assert [e["to_step"] for e in steps_taken] == [1, 2, 3]
    assert [e["to_weight"] for e in steps_taken] == [30, 60, 100]
    done = stack.events("ramp", "promote")
    assert len(done) == 1 and "new stable" in done[0]["reason"]
    # A 1 s hold is honoured: never early. How late depends on the controller's tick and on
    # how busy the machine is; the bound only catches a hold counted twice.
    moments = [_at(e) for e in [*steps_taken, done[0]]]
    gaps = [b - a for a, b in itertools.pairwise(moments)]
    assert all(0.99 <= gap < 2.0 for gap in gaps), gaps
    assert metric(stack.live.admin_url, "router_rollout_phase", route="ramp", phase="promoted") == 1
    assert metric(
        stack.live.admin_url, "router_traffic_weight_percent", route="ramp", variant="candidate"
    ) == 100
    assert {o.backend for o in burst(stack.url("ramp"), 50)} == {"candidate"}


def test_manual_hold_waits_for_the_promote_command(stack: Stack) -> None:
    steps = [{"weight": 10, "hold": "manual"}, {"weight": 50, "hold": "1s"}]
    stack.add_route("manual", canary(steps=steps))
    status = stack.route_status("manual")
    assert status["phase"] == "waiting" and status["weights"]["candidate"] == 10
    time.sleep(1.2)  # longer than any timed hold here: a manual hold must not move by itself
    assert stack.route_status("manual")["phase"] == "waiting"

    done = subprocess.run(
        [sys.executable, "-m", "router", "promote", "manual", "--admin", stack.live.admin_url],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    # The promote's own answer: a status read after it may already be past the 1 s hold.
    assert "phase progressing" in done.stdout and "candidate=50%" in done.stdout, done.stdout
    wait_until(lambda: stack.route_status("manual")["phase"] == "promoted", timeout=5)
    promotes = stack.events("manual", "promote")
    assert any(e.get("action") == "promote" for e in promotes)


def test_pause_freezes_the_weight_and_resume_continues(stack: Stack) -> None:
    steps = [{"weight": w, "hold": "1s"} for w in (10, 40, 70, 100)]
    stack.add_route("pausing", canary(steps=steps))
    wait_until(lambda: stack.route_status("pausing")["step"] >= 1, timeout=5)
    paused = stack.act("pausing", "pause")
    assert paused.status_code == 200, paused.text
    frozen = stack.route_status("pausing")
    assert frozen["phase"] == "paused"
    time.sleep(1.5)  # longer than the hold: a paused ramp must not step
    later = stack.route_status("pausing")
    assert later["phase"] == "paused"
    assert (later["step"], later["weights"]) == (frozen["step"], frozen["weights"])
    admin = stack.live.admin_url
    assert metric(admin, "router_rollout_phase", route="pausing", phase="paused") == 1
    assert metric(
        admin, "router_traffic_weight_percent", route="pausing", variant="candidate"
    ) == frozen["weights"]["candidate"]
    assert stack.act("pausing", "pause").status_code == 200  # idempotent

    assert stack.act("pausing", "resume").status_code == 200
    assert stack.route_status("pausing")["phase"] == "progressing"
    wait_until(lambda: stack.route_status("pausing")["phase"] == "promoted", timeout=6)
    kinds = {e["event"] for e in stack.events("pausing")}
    assert {"pause", "resume", "promote"} <= kinds


# -- failure handling ------------------------------------------------------------------


def test_dead_candidate_with_fallback_costs_no_failed_request(
    stack: Stack, knobs: dict[str, Knobs]
) -> None:
    doomed = ServerThread(knob_app("doomed", Knobs())).start()
    try:
        stack.backends["doomed"] = {"url": doomed.url}
        stack.add_route(
            "fallback",
            {"type": "canary", "stable": "stable", "candidate": "doomed", "weight": 50,
             "fallback_to_stable": True},
        )
        with Load(stack.url("fallback"), workers=6, gap_s=0.002) as load:
            wait_until(lambda: sum(o.backend == "doomed" for o in load.outcomes) >= 50)
            doomed.stop()
            stopped = time.monotonic()
            wait_until(lambda: len(load.since(stopped + 0.3)) >= 400, timeout=20)
        outcomes = load.outcomes
        assert not failures(outcomes), failures(outcomes)[:5]
        after = [o for o in outcomes if o.started > stopped + 0.3]
        assert {o.backend for o in after} == {"stable"}
        errors = metric(
            stack.live.admin_url, "router_upstream_errors_total",
            route="fallback", backend="doomed", kind="connect",
        )
        assert errors is not None and errors > 0, "the candidate was never tried"
    finally:
        doomed.stop()


def test_fallback_counts_a_candidate_error_and_no_stable_error(stack: Stack) -> None:
    """Issue 4 item 1: a request rescued by ``fallback_to_stable`` is a candidate error;
    stable answered it, so stable's numbers must not count it as an error."""
    stack.backends["nowhere"] = {"url": f"http://127.0.0.1:{free_port()}"}
    stack.add_route(
        "rescued",
        {"type": "canary", "stable": "stable", "candidate": "nowhere", "weight": 50,
         "fallback_to_stable": True,
         # Thresholds that never fire: only the numbers behind the verdicts are read.
         "analysis": {"interval": "1s", "window": "3s", "min_requests": 1, "max_error_rate": 1}},
    )

    def judged() -> dict[str, Any] | None:
        last = stack.route_status("rescued")["analysis"]["last"]
        return last["numbers"] if last and last["numbers"]["baseline_requests"] else None

    with Load(stack.url("rescued"), workers=2, gap_s=0.01) as load:
        numbers = wait_until(judged, timeout=10)
    assert not failures(load.outcomes)
    assert numbers["candidate_error_rate"] == 1.0, numbers
    assert numbers["baseline_error_rate"] == 0.0, numbers


def test_candidate_marked_down_by_health_checks_is_rolled_back(
    stack: Stack, knobs: dict[str, Knobs]
) -> None:
    """Issue 4 item 3: a candidate backend marked down by health checks is a failed check."""
    stack.backends["sick"] = {
        "url": stack.backends["candidate"]["url"],
        "health": {"path": "/health", "interval": "200ms", "unhealthy_after": 1},
    }
    stack.add_route(
        "sick",
        {"type": "canary", "stable": "stable", "candidate": "sick", "weight": 20,
         "fallback_to_stable": True,
         "analysis": {"interval": "1s", "min_requests": 5, "failures_to_act": 2}},
    )
    knobs["candidate"].health_status = 503
    wait_until(lambda: not stack.status()["backends"]["sick"]["healthy"], timeout=5)
    wait_until(lambda: stack.route_status("sick")["phase"] == "rolled_back", timeout=5)
    rollbacks = stack.events("sick", "rollback")
    assert len(rollbacks) == 1 and rollbacks[0]["trigger"] == "health", rollbacks
    admin = stack.live.admin_url
    assert metric(admin, "router_rollbacks_total", route="sick", trigger="health") == 1
    assert {o.backend for o in burst(stack.url("sick"), 50)} == {"stable"}


@pytest.fixture
def own_stack(tmp_path: Path, backends: dict[str, ServerThread]) -> Iterator[Stack]:
    """A router of this test's own (not started), on a file store (for restarts)."""
    with running_stack(tmp_path, backends, "file", start=False) as own:
        yield own


ANALYSIS = {"interval": "1s", "min_requests": 5, "max_error_rate": 0.1, "failures_to_act": 2}


def test_failing_candidate_is_rolled_back_and_stays_rolled_back(
    own_stack: Stack, knobs: dict[str, Knobs]
) -> None:
    stack = own_stack
    stack.routes["iris"] = canary(weight=50, analysis=ANALYSIS)
    stack.routes["other"] = {"type": "direct", "backend": "stable"}
    stack.start()
    admin = stack.live.admin_url
    with Load(stack.url("iris"), workers=4) as load:

        def passed() -> bool:
            last = stack.route_status("iris")["analysis"]["last"]
            return last is not None and last["outcome"] == "pass"

        wait_until(passed, timeout=10)
        knobs["candidate"].fail = True
        wait_until(lambda: stack.route_status("iris")["phase"] == "rolled_back", timeout=10)
        rolled_back = time.monotonic()
        wait_until(lambda: len(load.since(rolled_back + 0.2)) >= 100)
        after = load.since(rolled_back + 0.2)
    # The rollback came at the failures_to_act-th (2) failing analysis in a row, not later:
    # the analyses before it, newest first, are two failures after a pass.
    kinds = [(e["event"], e.get("outcome")) for e in stack.events("iris")]  # newest first
    acted = kinds.index(("rollback", None))
    assert [o for k, o in kinds[acted + 1:] if k == "analysis"][:3] == ["fail", "fail", "pass"]
    assert {o.backend for o in after} == {"stable"} and not failures(after)

    status = stack.route_status("iris")
    assert status["weights"] == {"stable": 100, "candidate": 0}
    last = status["analysis"]["last"]
    assert last["ok"] is False and any("error_rate" in r for r in last["reasons"])
    rollbacks = stack.events("iris", "rollback")
    assert len(rollbacks) == 1 and rollbacks[0]["trigger"] == "analysis"
    assert "error_rate" in rollbacks[0]["reason"]
    assert stack.log_events("iris", "rollback"), "no rollback line in the log"
    verdicts = stack.log_events("iris", "analysis")
    assert {"pass", "fail"} <= {v["outcome"] for v in verdicts}, "every verdict is logged"
    assert metric(admin, "router_rollbacks_total", route="iris", trigger="analysis") == 1
    assert metric(admin, "router_traffic_weight_percent", route="iris", variant="candidate") == 0
    assert metric(admin, "router_traffic_weight_percent", route="iris", variant="stable") == 100
    assert metric(admin, "router_rollout_phase", route="iris", phase="rolled_back") == 1
    assert metric(admin, "router_rollout_phase", route="iris", phase="steady") == 0

    # The candidate heals, but a rollback holds: across an unrelated reload ...
    knobs["candidate"].reset()
    stack.routes["other"] = {"type": "direct", "backend": "candidate"}
    stack.apply()
    assert stack.route_status("iris")["phase"] == "rolled_back"
    assert {o.backend for o in burst(stack.url("iris"), 100)} == {"stable"}
    # ... and across a restart on the same file and state store.
    stack.restart()
    assert stack.route_status("iris")["phase"] == "rolled_back"
    assert {o.backend for o in burst(stack.url("iris"), 100)} == {"stable"}
    time.sleep(1.2)  # a controller tick or a store sync must not revive it either
    assert stack.route_status("iris")["phase"] == "rolled_back"
    # ``resume`` restarts it (the way out README's "Strategies" names).
    assert stack.act("iris", "resume").status_code == 200
    assert stack.route_status("iris")["phase"] == "steady"


def test_a_rollback_racing_a_reload_is_applied_and_kept(own_stack: Stack) -> None:
    """A rollback answered while the file is being reloaded must hold like any other:
    answered ``rolled_back``, and still ``rolled_back`` right after (README.md#strategies)."""
    stack = own_stack
    stack.routes["iris"] = canary(weight=50)
    for i in range(6):
        stack.routes[f"other-{i}"] = {"type": "direct", "backend": "stable"}
    stack.start()
    admin = stack.live.admin_url

    async def reload_and_rollback() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(base_url=admin, timeout=10, trust_env=False) as client:
            reload, rollback = await asyncio.gather(
                client.post("/admin/reload"), client.post("/admin/routes/iris/rollback")
            )
            return reload, rollback

    lost = []
    for attempt in range(16):
        assert stack.act("iris", "resume").status_code == 200
        backend = ("stable", "candidate")[attempt % 2]
        stack.routes["other-0"] = {"type": "direct", "backend": backend}
        stack.write()  # the watcher and the API both reload it, racing the rollback
        reload, rollback = asyncio.run(reload_and_rollback())
        assert reload.status_code == 200 and rollback.status_code == 200, rollback.text
        answered = rollback.json()["status"]["phase"]
        time.sleep(0.25)  # not synchronisation: a window in which a revived ramp would show
        serving = stack.route_status("iris")["phase"]
        if (answered, serving) != ("rolled_back", "rolled_back"):
            lost.append(f"attempt {attempt}: answered {answered}, then serving {serving}")
    assert not lost, lost
