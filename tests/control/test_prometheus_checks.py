"""Prometheus checks against a real Prometheus scraping the router's own ``/metrics``.

The check queries the router's request counters for the candidate's 5xx rate: with
no such series it holds ("no data", counted in ``router_analysis_errors_total``),
as does a query Prometheus refuses; once the candidate fails, the rate crosses its
``max`` and the canary is rolled back with the check's name and number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from router.control.metric_checks import fill, parse_answer, prometheus_duration
from tests.prometheus_support import PROMETHEUS, running_prometheus
from tests.rollout_support import Knobs, Load, Stack, metric
from tests.support import wait_until

pytestmark = pytest.mark.usefixtures("healthy")

QUERY = 'sum(rate(router_requests_total{backend="{{candidate}}",code=~"5.."}[{{window}}]))'


@pytest.mark.parametrize(
    ("answer", "reading"),
    [
        ({"status": "success", "data": {"resultType": "vector",
                                        "result": [{"metric": {}, "value": [1, "2.5"]}]}}, 2.5),
        ({"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}}, 3.0),
        ({"status": "success", "data": {"resultType": "vector", "result": []}}, "no data"),
        ({"status": "success", "data": {"resultType": "vector", "result": [
            {"value": [1, "1"]}, {"value": [1, "2"]}]}},
         "query returned 2 series, need one number"),
        ({"status": "error", "errorType": "bad_data", "error": "parse error"},
         "error: bad_data: parse error"),
        ({"status": "success", "data": {"resultType": "matrix", "result": []}},
         "query returned a matrix, need one number"),
        ([1, 2], "error: not a Prometheus answer"),
    ],
    ids=["vector", "scalar", "empty", "two_series", "error", "matrix", "garbage"],
)
def test_parse_answer(answer: Any, reading: float | str) -> None:
    assert parse_answer(answer) == reading


def test_placeholders_and_durations() -> None:
    assert prometheus_duration(120) == "2m" and prometheus_duration(90) == "90s"
    assert prometheus_duration(3600) == "1h" and prometheus_duration(0.2) == "1s"
    filled = fill(QUERY, {"candidate": "iris-v2", "window": "2m"})
    assert filled == 'sum(rate(router_requests_total{backend="iris-v2",code=~"5.."}[2m]))'


def _checks(stack: Stack) -> dict[str, dict[str, Any]]:
    last = stack.route_status("prom")["analysis"]["last"]
    return {c["rule"]: c for c in last["checks"]} if last else {}


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (make prometheus)")
def test_a_check_on_the_routers_own_counters_holds_then_rolls_back(
    stack: Stack, knobs: dict[str, Knobs], tmp_path: Path
) -> None:
    with running_prometheus(tmp_path, [f"127.0.0.1:{stack.live.admin_port}"]) as prometheus:
        stack.sections["prometheus"] = {"url": prometheus.url, "timeout": "2s"}
        stack.add_route("prom", {
            "type": "canary", "stable": "stable", "candidate": "candidate", "weight": 50,
            "analysis": {"interval": "1s", "window": "10s", "min_requests": 5,
                         "failures_to_act": 1, "metrics": [
                             {"name": "candidate_5xx_per_s", "query": QUERY, "max": 0.5},
                             {"name": "refused", "query": "sum((", "max": 1},
                         ]},
        })
        with Load(stack.url("prom"), workers=2, gap_s=0.05):
            wait_until(lambda: "candidate_5xx_per_s" in _checks(stack), timeout=20)
            held = _checks(stack)
            assert held["candidate_5xx_per_s"]["outcome"] == "hold"
            assert held["candidate_5xx_per_s"]["explanation"] == "candidate_5xx_per_s: no data"
            assert held["refused"]["outcome"] == "hold"
            assert held["refused"]["explanation"].startswith("refused: error: bad_data")
            admin = stack.live.admin_url
            for check in ("candidate_5xx_per_s", "refused"):
                errors = metric(admin, "router_analysis_errors_total", route="prom", check=check)
                assert errors is not None and errors >= 1
            assert stack.route_status("prom")["phase"] == "steady"

            knobs["candidate"].fail = True
            wait_until(lambda: stack.route_status("prom")["phase"] == "rolled_back", timeout=60)
        (rollback,) = stack.events("prom", "rollback")
        assert rollback["reason"].startswith("candidate_5xx_per_s ")
        assert rollback["reason"].endswith(" > max 0.5 (prometheus)")
        logged = [r for r in stack.log_records("analysis_check_error") if r["route"] == "prom"]
        assert any('backend="candidate"' in r["query"] and "[10s]" in r["query"] for r in logged)
