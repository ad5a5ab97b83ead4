"""Replicas sharing one rollout through a real Redis (docs/configuration.md), end to end.

Real router processes on one config file, one real ``redis-server``, real backends
and real HTTP: an action through one replica is in effect on the others within a
second (pub/sub), and also when the change message is lost (the serial poll); one
leader takes each step of a ramp once across three replicas, and a leader killed with
SIGKILL is replaced within the lease + 1 s; the leader judges the fleet's requests and
answers (the model-quality gates); and
``--workers 2`` on Redis makes two members of one fleet.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.control.test_canary_e2e import canary
from tests.control.test_judging_e2e import BODY, PATH, labels
from tests.fleet_support import Replica, replicas, use_redis
from tests.redis_support import RedisServer
from tests.rollout_support import Knobs, Stack, burst, failures, metric, running_stack
from tests.support import RouterProcess, ServerThread, wait_until

pytestmark = pytest.mark.usefixtures("healthy")


@pytest.fixture
def stack(
    tmp_path: Path,
    backends: dict[str, ServerThread],
    redis_server: RedisServer,
) -> Iterator[Stack]:
    """The fleet's config file (not started): the module's backends, state in ``redis_server``."""
    with running_stack(tmp_path, backends, "redis", start=False) as own:
        use_redis(own, redis_server)
        yield own


def test_an_action_on_one_replica_is_in_effect_on_the_other_within_a_second(
    stack: Stack, redis_server: RedisServer
) -> None:
    stack.routes["iris"] = canary(weight=50)
    with replicas(stack, 2) as (a, b):
        assert a.status()["state_store"] == {"kind": "redis", "ok": True, "error": None}
        assert {o.backend for o in burst(b.url("iris"), 200)} == {"stable", "candidate"}
        raw = redis.Redis.from_url(redis_server.url)
        steady = raw.hget("traffic-router:state", "iris")
        assert steady is not None

        answer = a.act("iris", "rollback")
        assert answer.status_code == 200 and answer.json()["persisted"] is True
        acted = time.monotonic()
        wait_until(lambda: b.phase("iris") == "rolled_back", timeout=3, interval=0.01)
        seen_after = time.monotonic() - acted
        outcomes = burst(b.url("iris"), 200)
        assert {o.backend for o in outcomes} == {"stable"} and not failures(outcomes)
        print(f"rollback on A in effect on B after {seen_after * 1000:.0f} ms")
        check_fleet_views(a, b)

        # A change whose message is lost (written without PUBLISH) is found by the poll.
        version = int(raw.hget("traffic-router:versions", "iris") or 0)
        with raw.pipeline(transaction=True) as pipe:
            pipe.hset("traffic-router:versions", "iris", version + 1)
            pipe.hset("traffic-router:state", "iris", steady)
            pipe.incr("traffic-router:serial")
            pipe.execute()
        wait_until(lambda: a.phase("iris") == "steady" and b.phase("iris") == "steady", timeout=3)
        raw.close()


def check_fleet_views(a: Replica, b: Replica) -> None:
    """B's events show A's rollback; the status, metrics and CLI of either show the fleet."""
    a_id = a.status()["replica"]["id"]

    def rollback_from_a() -> bool:
        found = b.admin("GET", "/admin/events?limit=50").json()["events"]
        return any(e["event"] == "rollback" and e.get("replica") == a_id for e in found)

    wait_until(rollback_from_a, timeout=5)
    version = a.status()["config"]["version"]
    fleet = wait_until(lambda: len(b.status()["fleet"]["replicas"]) == 2 and b.status()["fleet"])
    assert {m["config_version"] for m in fleet["replicas"]} == {version}
    leaders_seen = [m["id"] for m in fleet["replicas"] if m["leader"]]
    assert leaders_seen == [fleet["leader"]]
    assert sum(metric(r.process.admin_url, "router_leader") or 0 for r in (a, b)) == 1
    assert metric(b.process.admin_url, "router_state_store_up") == 1
    shown = subprocess.run(
        [sys.executable, "-m", "router", "status", "--admin", b.process.admin_url],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    assert "state store redis ok" in shown and "fleet: 2 replicas" in shown, shown
    assert f"  {fleet['leader']}  config {version}" in shown, shown


LEASE_S = 2.0
RAMP = [{"weight": w, "hold": "1s"} for w in (10, 20, 40, 60, 80, 100)]


def leaders(fleet: list[Replica]) -> list[Replica]:
    """The replicas that say they lead."""
    return [r for r in fleet if r.status()["replica"]["leader"]]


def decisions(fleet: list[Replica], route: str, kind: str) -> list[dict[str, Any]]:
    """``kind`` decision lines of ``route`` in every replica's log (the killed one's too)."""
    found = []
    for replica in fleet:
        for line in replica.process.logs().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("event") == kind and record.get("route") == route:
                    found.append(record)
    return found


def test_three_replicas_take_each_step_once_and_a_killed_leader_is_replaced(
    stack: Stack, redis_server: RedisServer
) -> None:
    stack.routes["iris"] = canary(steps=RAMP)
    use_redis(stack, redis_server, lease=f"{LEASE_S}s")
    with replicas(stack, 3) as fleet:
        first = wait_until(lambda: leaders(fleet), timeout=10)
        assert len(first) == 1
        leader = first[0]
        wait_until(lambda: leader.status()["routes"]["iris"]["step"] >= 2, timeout=15)
        leader.process.stop(signal.SIGKILL)
        killed = time.monotonic()
        rest = [r for r in fleet if r is not leader]
        wait_until(lambda: len(leaders(rest)) == 1, timeout=LEASE_S + 1.0, interval=0.05)
        print(f"a new leader {time.monotonic() - killed:.2f}s after SIGKILL (lease {LEASE_S}s)")
        wait_until(lambda: all(r.phase("iris") == "promoted" for r in rest), timeout=30)
        assert {r.status()["routes"]["iris"]["weights"]["candidate"] for r in rest} == {100}

    steps = sorted(record["to_step"] for record in decisions(fleet, "iris", "rollout_step"))
    assert steps == [1, 2, 3, 4, 5], steps
    assert len(decisions(fleet, "iris", "promote")) == 1


def test_the_leader_judges_the_fleets_requests_not_its_own(
    stack: Stack, redis_server: RedisServer, knobs: dict[str, Knobs]
) -> None:
    """20 failing candidate requests on each of two replicas: neither alone reaches
    ``min_requests`` (30), the fleet does, and the leader rolls the candidate back."""
    analysis = {"interval": "1s", "window": "60s", "min_requests": 30, "max_error_rate": 0.1,
                "failures_to_act": 1}
    stack.routes["iris"] = canary(weight=0, force_header="x-router-variant", analysis=analysis)
    forced = {"x-router-variant": "candidate"}
    knobs["candidate"].fail = True
    with replicas(stack, 2) as (a, b):
        assert {o.status for o in burst(a.url("iris"), 20, headers=lambda i: forced)} == {500}

        def verdict() -> dict[str, Any] | None:
            last = a.status()["routes"]["iris"]["analysis"]["last"]
            return last if last and any("20 candidate requests" in r for r in last["reasons"]) \
                else None

        held = wait_until(verdict, timeout=15)
        assert held["outcome"] == "hold" and a.phase("iris") == "steady"

        assert {o.status for o in burst(b.url("iris"), 20, headers=lambda i: forced)} == {500}
        wait_until(lambda: a.phase("iris") == "rolled_back", timeout=15)
        wait_until(lambda: b.phase("iris") == "rolled_back", timeout=5)
        last = b.status()["routes"]["iris"]["analysis"]["last"]
        assert last["ok"] is False and any("40 of 40 requests" in r for r in last["reasons"]), last
        rollbacks = decisions([a, b], "iris", "rollback")
        assert len(rollbacks) == 1 and rollbacks[0]["trigger"] == "analysis"


def test_workers_on_redis_are_a_fleet(stack: Stack) -> None:
    """``--workers 2`` with the Redis store: two members of one fleet, one of them leading."""
    stack.routes["iris"] = canary(weight=50)
    stack.write()
    (stack.dir / "logs").mkdir(exist_ok=True)
    process = RouterProcess(stack.config, "--workers", "2")
    process.log_path = stack.dir / "logs" / process.log_path.name
    with process:
        replica = Replica(process)

        def two_members() -> list[dict[str, Any]] | None:
            members = replica.status()["fleet"]["replicas"]
            return members if len(members) == 2 else None

        members = wait_until(two_members, timeout=15)
        assert sum(m["leader"] for m in members) == 1
        assert len({m["id"] for m in members}) == 2


def test_the_leader_judges_the_fleets_answers_for_the_model_quality_gates(
    stack: Stack, knobs: dict[str, Knobs]
) -> None:
    """60 answers a variant on each of two replicas: below the gates' 100 predictions alone,
    enough together; the candidate's nulls roll it back on the fleet's 120/120."""
    knobs["stable"].answer = labels([0, 1, 2])
    knobs["candidate"].answer = labels([None])
    analysis = {"interval": "1s", "window": "60s", "min_requests": 10, "failures_to_act": 1,
                "max_null_output_rate_increase": 0.05}
    stack.routes["iris"] = canary(weight=0, force_header="x-router-variant", analysis=analysis)

    def send(replica: Replica) -> None:
        for variant in ("stable", "candidate"):
            forced = {"x-router-variant": variant}
            sent = burst(replica.url("iris") + PATH, 60, concurrency=6, body=BODY,
                         headers=lambda i, forced=forced: forced)
            assert {o.status for o in sent} == {200}

    def reasons(replica: Replica) -> list[str]:
        last = replica.status()["routes"]["iris"]["analysis"]["last"]
        return list(last["reasons"]) if last else []

    with replicas(stack, 2) as (a, b):
        send(a)
        wait_until(lambda: any(r.startswith("null_output_rate_increase: ") for r in reasons(a)),
                   timeout=15)
        assert a.phase("iris") == "steady"
        send(b)
        wait_until(lambda: b.phase("iris") == "rolled_back", timeout=15)
        (rollback,) = decisions([a, b], "iris", "rollback")
        assert rollback["reason"].startswith("null_output_rate_increase "), rollback["reason"]
        assert "120/120" in rollback["reason"], rollback["reason"]


def test_a_paused_leader_does_not_take_a_step_again_when_it_wakes(
    stack: Stack, redis_server: RedisServer
) -> None:
    """SIGSTOP the leader past its lease: another leads and the ramp goes on; SIGCONT the
    old one: it sees its lease is gone and writes nothing; each step is logged once."""
    # Holds long enough that the ramp is still under way once three replicas are up.
    stack.routes["iris"] = canary(steps=[{**step, "hold": "3s"} for step in RAMP])
    use_redis(stack, redis_server, lease=f"{LEASE_S}s")
    with replicas(stack, 3) as fleet:
        (leader,) = wait_until(lambda: leaders(fleet), timeout=10)
        wait_until(lambda: leader.status()["routes"]["iris"]["step"] >= 1, timeout=15)
        leader.process.send_signal(signal.SIGSTOP)
        stopped_at = fleet[0 if fleet[0] is not leader else 1].status()["routes"]["iris"]["step"]
        try:
            rest = [r for r in fleet if r is not leader]
            wait_until(lambda: len(leaders(rest)) == 1, timeout=LEASE_S + 3.0, interval=0.05)
            # The ramp goes on without the paused leader, to its end.
            wait_until(lambda: all(r.phase("iris") == "promoted" for r in rest), timeout=30)
        finally:
            leader.process.send_signal(signal.SIGCONT)
        wait_until(lambda: leader.phase("iris") == "promoted", timeout=10)
        assert stopped_at < len(RAMP) - 1, "the ramp ended before the leader was paused"
        assert not leader.status()["replica"]["leader"]
    steps = sorted(record["to_step"] for record in decisions(fleet, "iris", "rollout_step"))
    assert steps == [1, 2, 3, 4, 5], steps
    assert len(decisions(fleet, "iris", "promote")) == 1
