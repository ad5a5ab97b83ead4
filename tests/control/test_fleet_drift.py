"""Input drift across replicas (docs/drift.md, docs/replicas.md), end to end: two real router
processes on one real Redis. The leader judges the fleet's live window: a shift that only the
follower serves is reported by the leader (PSI, one ``input_drift`` event) and shown by the
follower's ``GET .../drift``; the same traffic unshifted is not reported; a pin sent to the
follower is made by the leader."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from tests.admin.test_drift import LOANS
from tests.backends import model_app
from tests.fleet_support import Replica, replicas_of
from tests.redis_support import RedisServer
from tests.support import servers, shared_client, wait_until

HTTP = shared_client()
CONFIG = """
state: {{store: redis, url: "{redis}", key_prefix: fleet-drift}}
backends:
  model: {{url: "{model}"}}
routes:""" + LOANS


def send(replica: Replica, rng: random.Random, n: int, shift: float = 0.0) -> None:
    """``n`` loans through ``replica``, their ``amount`` moved by ``shift``."""
    for _ in range(n):
        row = {"amount": rng.gauss(100 + shift, 15), "grade": rng.choice("ABC")}
        response = HTTP.post(f"{replica.process.url}/loans/predict", content=orjson.dumps(row),
                             headers={"content-type": "application/json"})
        assert response.status_code == 200


def report(replica: Replica) -> dict[str, Any]:
    response = replica.admin("GET", "/admin/routes/loans/drift")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def psi(replica: Replica, feature: str) -> float | None:
    found = {f["name"]: f for f in report(replica)["features"]}.get(feature)
    return None if found is None else found["psi"]


def events(replica: Replica, kind: str) -> list[dict[str, Any]]:
    found = replica.admin("GET", "/admin/events?limit=1000").json()["events"]
    return [e for e in found if e["event"] == kind]


@contextlib.contextmanager
def leader_and_follower(
    tmp_path: Path, redis: RedisServer, state: str = ""
) -> Iterator[tuple[Replica, Replica]]:
    """Two routers on ``CONFIG`` (``state`` added to its state section), once both are in the
    fleet and one leads: (leader, follower)."""
    with servers(model_app(1)) as (model,):
        config = tmp_path / "router.yaml"
        text = CONFIG.format(redis=redis.url, model=model.url)
        config.write_text(text.replace("fleet-drift", f"fleet-drift{state}"))
        with replicas_of(config, 2) as pair:
            wait_until(lambda: all(len(r.status()["fleet"]["replicas"]) == 2 for r in pair)
                       and any(r.status()["replica"]["leader"] for r in pair), timeout=15)
            leader = next(r for r in pair if r.status()["replica"]["leader"])
            yield leader, next(r for r in pair if r is not leader)


def test_the_leader_judges_the_fleets_window_and_the_follower_shows_it(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    rng = random.Random(7)
    with leader_and_follower(tmp_path, redis_server) as (leader, follower):
        # The leader's reference, then the same traffic through both: nothing drifts.
        send(leader, rng, 200)
        wait_until(lambda: report(leader)["reference"]["ready"], timeout=10)
        send(follower, rng, 300)
        send(leader, rng, 100)
        wait_until(lambda: report(leader)["replicas"] == 2, timeout=10)
        wait_until(lambda: report(leader)["features"][0]["counts"]["live"] >= 600,
                   timeout=10)
        assert (psi(leader, "amount") or 0.0) < 0.1
        assert events(leader, "input_drift") == []

        # A shift that only the follower serves: the leader sees it in the fleet's sum.
        send(follower, rng, 1200, shift=40)
        wait_until(lambda: (psi(leader, "amount") or 0.0) > 0.25, timeout=15)
        assert (psi(leader, "grade") or 0.0) < 0.1
        wait_until(lambda: len(events(leader, "input_drift")) == 1, timeout=10)
        # The fleet's events (shared at the next beat): once, by the leader.
        wait_until(lambda: len(events(follower, "input_drift")) == 1, timeout=10)
        (event,) = events(follower, "input_drift")
        assert event["feature"] == "amount"
        assert event["replica"] == leader.status()["replica"]["id"]
        # The follower shows the leader's report, not its own window alone.
        wait_until(lambda: report(follower)["replicas"] == 2
                   and report(follower)["drifting"] == ["amount"], timeout=10)

        # A pin sent to the follower is made by the leader.
        pinned = follower.admin("POST", "/admin/routes/loans/drift/pin")
        assert pinned.status_code == 200 and pinned.json()["pin"] == "requested from the leader"
        wait_until(lambda: report(leader)["reference"]["source"] == "pinned", timeout=10)
        leader_id = leader.status()["replica"]["id"]
        wait_until(lambda: [e["replica"] for e in events(follower, "drift_pinned")]
                   == [leader_id], timeout=10)
        wait_until(lambda: report(leader)["drifting"] == [], timeout=10)


def test_a_new_leader_keeps_the_fleets_bins_and_judges_on(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    rng = random.Random(8)
    with leader_and_follower(tmp_path, redis_server, "-failover, lease: 2s") as (
        leader, follower
    ):
        send(leader, rng, 200)
        send(follower, rng, 1)
        wait_until(lambda: report(leader)["replicas"] == 2, timeout=10)  # bins taken
        send(follower, rng, 199)  # the follower's own reference fills after that
        # The numeric feature's bins are the fleet's (a category's are its reference's).
        bins = {f["name"]: f["bins"] for f in report(leader)["features"]}["amount"]

        leader.process.stop()
        wait_until(lambda: follower.status()["replica"]["leader"], timeout=15)
        send(follower, rng, 400, shift=40)
        wait_until(lambda: (psi(follower, "amount") or 0.0) > 0.25, timeout=15)
        assert {f["name"]: f["bins"] for f in report(follower)["features"]}["amount"] == bins
        assert report(follower)["replicas"] == 1
