"""Ground truth across replicas (docs/replicas.md), end to end: two real router processes on
one real Redis. Labels posted to one replica join the predictions the other made, an id no
replica remembers is counted once, and the accuracy gate judges the fleet's sum: each replica
alone holds the labels of one version only, so only the sum can roll the canary back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.backends import model_app
from tests.control.test_accuracy_gate import BODY, CANARY, LABELS
from tests.fleet_support import Replica, replicas_of
from tests.redis_support import RedisServer
from tests.rollout_support import metric
from tests.support import RouterProcess, servers, shared_client, wait_until

HTTP = shared_client()
CONFIG = """
state: {{store: redis, url: "{redis}", key_prefix: fleet-feedback}}
backends:
  says-1: {{url: "{one}"}}
  says-2: {{url: "{two}"}}
routes:
  - name: wrong
    match: {{path_prefix: /v2/models/wrong}}
{route}
"""


def predict(replica: Replica, variant: str, n: int) -> list[str]:
    """``n`` predictions of ``variant`` answered by ``replica``; their request ids."""
    ids = [f"{variant}-{i}" for i in range(n)]
    for request_id in ids:
        response = HTTP.post(
            f"{replica.process.url}/v2/models/wrong/infer", content=BODY,
            headers={"content-type": "application/json", "x-request-id": request_id,
                     "x-router-variant": variant},
        )
        assert response.status_code == 200
    return ids


def post_labels(replica: Replica, ids: list[str]) -> dict[str, str]:
    """Labels (the truth is 1) for ``ids`` posted to ``replica``; the answer's counts."""
    body = orjson.dumps([{"request_id": i, "label": 1} for i in ids])
    response = replica.admin("POST", "/admin/feedback", content=body,
                             headers={"content-type": "application/json"})
    assert response.status_code == 204
    return {k: response.headers[f"x-feedback-{k}"] for k in ("joined", "unknown", "relayed")}


def feedback(replica: Replica, variant: str, outcome: str) -> float:
    labels = {"route": "wrong", "variant": variant, "outcome": outcome}
    if variant == "none":
        labels["route"] = "none"
    return metric(replica.process.admin_url, "router_feedback_total", **labels) or 0.0


def test_labels_join_on_the_replica_that_answered_and_the_gate_judges_the_fleet(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with servers(model_app(1), model_app(2)) as (one, two):
        config = tmp_path / "router.yaml"
        route = CANARY.format(candidate="says-2", labels=LABELS)
        config.write_text(CONFIG.format(redis=redis_server.url, one=one.url, two=two.url,
                                        route=route))
        with replicas_of(config, 2) as (a, b):
            # Both replicas in the fleet list: a relay needs somewhere to go.
            wait_until(lambda: all(len(r.status()["fleet"]["replicas"]) == 2 for r in (a, b)),
                       timeout=15)
            stable = predict(a, "stable", LABELS)
            candidate = predict(b, "candidate", LABELS)

            # All the labels go to A: the candidate's are B's to join.
            counts = post_labels(a, stable + candidate)
            assert counts == {"joined": str(LABELS), "unknown": "0", "relayed": str(LABELS)}
            wait_until(lambda: feedback(b, "candidate", "wrong") == LABELS, timeout=10)
            assert feedback(a, "stable", "correct") == LABELS
            assert feedback(a, "candidate", "wrong") == 0

            # Ids nobody remembers: relayed by B, tried by A, counted once.
            assert post_labels(b, ["never-1", "never-2", "never-3"])["relayed"] == "3"
            wait_until(lambda: feedback(a, "none", "unknown_request")
                       + feedback(b, "none", "unknown_request") == 3, timeout=10)

            # Each replica holds one version's labels; the leader's sum rolls the canary back.
            wait_until(lambda: a.phase("wrong") == "rolled_back", timeout=20)
            leader = next(r for r in (a, b) if r.status()["replica"]["leader"])
            fleet = leader.status()["routes"]["wrong"]["feedback"]["fleet_variants"]
            assert fleet["candidate"]["labels"] == fleet["stable"]["labels"] == LABELS

            def rollback() -> dict[str, Any] | None:  # shared at the deciding replica's beat
                events = a.admin("GET", "/admin/events?limit=100").json()["events"]
                return next((e for e in events if e["event"] == "rollback"), None)

            event = wait_until(rollback, timeout=10)
            assert "accuracy_ratio 0.00 < 0.9" in event["reason"]
            assert "20 vs 20 labels" in event["reason"], event["reason"]


def test_with_workers_on_redis_every_label_counts_whichever_worker_it_reaches(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """``--workers 2``: requests and labels land on either worker (a new connection each);
    no label is unknown, and the gate judges both workers' labels together."""
    with servers(model_app(1), model_app(2)) as (one, two):
        config = tmp_path / "router.yaml"
        route = CANARY.format(candidate="says-2", labels=LABELS)
        config.write_text(CONFIG.format(redis=redis_server.url, one=one.url, two=two.url,
                                        route=route))
        (tmp_path / "logs").mkdir()
        process = RouterProcess(config, "--workers", "2")
        process.log_path = tmp_path / "logs" / process.log_path.name
        with process:
            worker = Replica(process)
            wait_until(lambda: len(worker.status()["fleet"]["replicas"]) == 2, timeout=15)
            ids = []
            for variant in ("stable", "candidate"):
                for i in range(LABELS):
                    ids.append(f"w-{variant}-{i}")
                    response = httpx.post(  # no shared client: each request a new connection
                        f"{process.url}/v2/models/wrong/infer", content=BODY, timeout=10,
                        headers={"content-type": "application/json", "x-request-id": ids[-1],
                                 "x-router-variant": variant})
                    assert response.status_code == 200
            unknown = relayed = 0
            for request_id in ids:
                body = orjson.dumps({"request_id": request_id, "label": 1})
                response = httpx.post(f"{process.admin_url}/admin/feedback", content=body,
                                      timeout=10, headers={"content-type": "application/json"})
                assert response.status_code == 204
                unknown += int(response.headers["x-feedback-unknown"])
                relayed += int(response.headers["x-feedback-relayed"])
            print(f"{relayed} of {len(ids)} labels relayed to the other worker")
            assert unknown == 0
            wait_until(lambda: worker.phase("wrong") == "rolled_back", timeout=20)
