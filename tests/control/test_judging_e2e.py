"""The judges end to end: real router processes, real backends, real HTTP.

The sequential judge rolls back a candidate that fails every request after a few
dozen of its requests and holds on a quiet route; the model-quality gates roll back
a candidate that answers 200 in time but predicts one class far too often, or
answers nulls. Each verdict names its rule and numbers in the status, the event
and the log.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.rollout_support import (
    Knobs,
    Load,
    Stack,
    burst,
)
from tests.support import wait_until

PATH = "/v2/models/iris/infer"
BODY = json.dumps(
    {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
).encode()


def labels(cycle: list[int | None]) -> Any:
    """An OIP V2 answer predicting ``cycle[n % len(cycle)]`` for the n-th request."""

    def answer(n: int) -> dict[str, Any]:
        return {"outputs": [{"name": "label", "datatype": "INT64", "shape": [1],
                             "data": [cycle[n % len(cycle)]]}]}

    return answer


pytestmark = pytest.mark.usefixtures("healthy")


def canary(analysis: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A fixed-weight canary on the shared backends with ``analysis``."""
    return {"type": "canary", "stable": "stable", "candidate": "candidate", "weight": 50,
            "analysis": {"interval": "1s", **analysis}, **fields}


def test_sequential_judge_holds_on_a_quiet_route_then_fails_fast(
    stack: Stack, knobs: dict[str, Knobs]
) -> None:
    stack.add_route("seq", canary({"judge": "sequential", "max_error_rate_increase": 0.01,
                                   "min_requests": 500}))

    def last() -> dict[str, Any] | None:
        found: dict[str, Any] | None = stack.route_status("seq")["analysis"]["last"]
        return found

    wait_until(lambda: last() is not None, timeout=10)
    quiet = last()
    assert quiet is not None and quiet["outcome"] == "hold"
    assert stack.route_status("seq")["phase"] == "steady"

    knobs["candidate"].fail = True
    served_before = knobs["candidate"].served
    with Load(stack.url("seq"), workers=2, gap_s=0.05):
        wait_until(lambda: stack.route_status("seq")["phase"] == "rolled_back", timeout=20)
    failed_requests = knobs["candidate"].served - served_before
    # A few dozen candidate requests, whatever min_requests (500) says: one 1 s interval
    # of ~20 candidate requests a second, and the evidence is sure after a handful.
    assert failed_requests <= 60, failed_requests
    (rollback,) = stack.events("seq", "rollback")
    assert rollback["reason"].startswith("error rate: candidate worse by >= ")
    assert "at 95% confidence after" in rollback["reason"]
    checks = stack.route_status("seq")["analysis"]["last"]["checks"]
    (check,) = [c for c in checks if c["rule"] == "error_rate_increase"]
    assert check["outcome"] == "fail" and check["decisive"] and check["boundary"] == 0.01
    assert [r for r in stack.log_events("seq", "rollback") if r["trigger"] == "analysis"]


def test_drift_gate_rolls_back_a_candidate_predicting_one_class(
    stack: Stack, knobs: dict[str, Knobs]
) -> None:
    knobs["stable"].answer = labels([0, 1, 2])
    knobs["candidate"].answer = labels([0, 0, 0, 0, 0, 0, 0, 0, 1, 2])
    stack.add_route("drift", canary({"window": "60s", "max_prediction_drift": 0.2,
                                     "min_requests": 10, "failures_to_act": 1}))
    url = stack.url("drift") + PATH
    for _ in range(40):
        burst(url, 50, concurrency=8, body=BODY)
        if stack.route_status("drift")["phase"] == "rolled_back":
            break
    assert stack.route_status("drift")["phase"] == "rolled_back"
    (rollback,) = stack.events("drift", "rollback")
    reason = rollback["reason"]
    assert reason.startswith("prediction_drift ") and " > 0.2 (psi, " in reason, reason
    assert reason.endswith(" predictions)")
    assert [r for r in stack.log_events("drift", "analysis") if r["outcome"] == "fail"]


def test_null_output_gate_and_its_minimum_sample(stack: Stack, knobs: dict[str, Knobs]) -> None:
    knobs["stable"].answer = labels([0, 1, 2])
    knobs["candidate"].answer = labels([0, 1, None, 2])
    stack.add_route("nulls", canary({"window": "60s", "max_null_output_rate_increase": 0.05,
                                     "min_requests": 10, "failures_to_act": 1}))
    url = stack.url("nulls") + PATH
    burst(url, 20, concurrency=4, body=BODY)  # too few predictions: the gate holds

    def last_reasons() -> list[str]:
        found = stack.route_status("nulls")["analysis"]["last"]
        return list(found["reasons"]) if found else []

    wait_until(lambda: any(r.startswith("null_output_rate_increase: ") for r in last_reasons()),
               timeout=10)
    assert stack.route_status("nulls")["phase"] == "steady"
    for _ in range(40):
        burst(url, 50, concurrency=8, body=BODY)
        if stack.route_status("nulls")["phase"] == "rolled_back":
            break
    (rollback,) = stack.events("nulls", "rollback")
    assert rollback["reason"].startswith("null_output_rate_increase "), rollback["reason"]
    assert " null outputs)" in rollback["reason"]


@pytest.mark.parametrize(("candidate_label", "after"), [(1, "waiting"), (2, "rolled_back")],
                         ids=["agrees", "disagrees"])
def test_shadow_first_stage(
    stack: Stack, knobs: dict[str, Knobs], candidate_label: int, after: str
) -> None:
    knobs["stable"].answer = labels([1])
    knobs["candidate"].answer = labels([candidate_label])
    name = f"sf{candidate_label}"
    stack.add_route(name, {
        "type": "canary", "stable": "stable", "candidate": "candidate",
        "steps": [{"weight": 50, "hold": "manual"}],
        "shadow_first": {"min_compared": 50, "min_agreement": 0.95},
    })
    status = stack.route_status(name)
    assert status["phase"] == "shadowing"
    assert status["weights"] == {"stable": 100, "candidate": 0}
    url = stack.url(name) + PATH
    copies_before = knobs["candidate"].served
    # Fewer requests than min_compared: the stage cannot end during this burst.
    during = burst(url, 40, concurrency=4, body=BODY)
    assert {o.backend for o in during} == {"stable"}, "the candidate answered a client"
    for _ in range(40):
        if stack.route_status(name)["phase"] != "shadowing":
            break
        burst(url, 20, concurrency=4, body=BODY)
    assert knobs["candidate"].served - copies_before >= 50  # it got the copies
    assert stack.route_status(name)["phase"] == after
    if after == "waiting":
        (event,) = stack.events(name, "shadow_passed")
        assert event["reason"].startswith("shadow_agreement 100.0% >= 95.0% (")
        assert event["shadow_compared"] >= 50 and event["to_weight"] == 50
        assert {o.backend for o in burst(url, 60, concurrency=4, body=BODY)} == {
            "stable", "candidate"}
    else:
        (event,) = stack.events(name, "rollback")
        assert event["reason"].startswith("shadow_agreement 0.0% (min 95.0%")
        assert event["trigger"] == "analysis"
