"""min_accuracy_ratio against a real router: a canary whose answers turn out wrong is rolled
back once enough true labels arrive; one as right as stable ramps on (the control case)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.backends import model_app
from tests.support import RouterProcess, servers, shared_client, wait_until

HTTP = shared_client()
BODY = b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}'
LABELS = 20

CANARY = """
    strategy:
      type: canary
      stable: says-1
      candidate: {candidate}
      force_header: x-router-variant
      steps: [{{weight: 50, hold: 1s}}, {{weight: 100, hold: 1h}}]
      analysis: {{interval: 1s, min_requests: 0, min_accuracy_ratio: 0.9, min_feedback: {labels},
                 failures_to_act: 1}}
      on_failure: rollback
    feedback: {{keep: 1000, window: 10m}}
"""
CONFIG = """
state: {{store: memory}}
backends:
  says-1: {{url: "{one}"}}
  says-2: {{url: "{two}"}}
  also-says-1: {{url: "{other_one}"}}
routes:
  - name: wrong
    match: {{path_prefix: /v2/models/wrong}}
{wrong}
  - name: right
    match: {{path_prefix: /v2/models/right}}
{right}
"""


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    directory = tmp_path_factory.mktemp("accuracy")
    with servers(model_app(1), model_app(2), model_app(1)) as (one, two, other_one):
        config = directory / "router.yaml"
        config.write_text(CONFIG.format(
            one=one.url, two=two.url, other_one=other_one.url,
            wrong=CANARY.format(candidate="says-2", labels=LABELS),
            right=CANARY.format(candidate="also-says-1", labels=LABELS),
        ))
        with RouterProcess(config) as running:
            yield running


def route_status(router: RouterProcess, route: str) -> dict[str, Any]:
    found: dict[str, Any] = HTTP.get(f"{router.admin_url}/admin/status").json()["routes"][route]
    return found


def predictions(router: RouterProcess, route: str, variant: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        request_id = f"{route}-{variant}-{i}"
        response = HTTP.post(
            f"{router.url}/v2/models/{route}/infer", content=BODY,
            headers={"content-type": "application/json", "x-request-id": request_id,
                     "x-router-variant": variant},
        )
        assert response.status_code == 200
        ids.append(request_id)
    return ids


def label_everything(router: RouterProcess, route: str) -> None:
    """Labels (the truth is 1) for as many predictions of each version as the gate needs."""
    ids = predictions(router, route, "stable", LABELS) + predictions(
        router, route, "candidate", LABELS
    )
    wait_until(lambda: route_status(router, route)["feedback"]["remembered"] >= len(ids), 10)
    # The gate holds, and the ramp with it, until both versions have enough labels.
    held = wait_until(lambda: (s := route_status(router, route))["analysis"]["last"] and s, 10)
    assert held["step"] == 0 and held["analysis"]["last"]["outcome"] == "hold"
    assert any("accuracy_ratio" in r for r in held["analysis"]["last"]["reasons"])
    body = orjson.dumps([{"request_id": i, "label": 1} for i in ids])
    response = HTTP.post(f"{router.admin_url}/admin/feedback", content=body,
                         headers={"content-type": "application/json"})
    assert response.headers["x-feedback-joined"] == str(len(ids))


def test_a_less_accurate_canary_is_rolled_back(router: RouterProcess) -> None:
    label_everything(router, "wrong")
    wait_until(lambda: route_status(router, "wrong")["phase"] == "rolled_back", timeout=15)
    events = HTTP.get(f"{router.admin_url}/admin/events?limit=1000").json()["events"]
    rollback = next(e for e in events if e["route"] == "wrong" and e["event"] == "rollback")
    assert "accuracy_ratio 0.00 < 0.9" in rollback["reason"]


def test_an_equally_accurate_canary_ramps_on(router: RouterProcess) -> None:
    label_everything(router, "right")
    found = wait_until(lambda: (s := route_status(router, "right"))["step"] == 1 and s, 15)
    assert found["phase"] == "progressing"
    assert found["feedback"]["variants"]["candidate"]["accuracy"] == 1.0
