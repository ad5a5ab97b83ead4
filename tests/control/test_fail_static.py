"""Fail static: replicas keep serving when Redis stops, hangs or loses its data.

Real router processes, a real ``redis-server`` that the tests SIGSTOP, SIGKILL and
start again empty (no persistence), real backends under load: no request fails
because of the store; a rollback taken during the outage holds on its replica,
is written when Redis is back -- also into a Redis that lost everything -- and
the other replicas follow it. A replica starting while Redis is down serves its
cache file and is ready; without one it is not ready until it has read Redis once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.control.test_canary_e2e import canary
from tests.fleet_support import Replica, replicas, use_redis
from tests.redis_support import RedisServer
from tests.rollout_support import Load, Stack, failures, running_stack, share
from tests.support import RouterProcess, ServerThread, wait_until

pytestmark = pytest.mark.usefixtures("healthy")


@pytest.fixture
def stack(
    tmp_path: Path, backends: dict[str, ServerThread], redis_server: RedisServer
) -> Iterator[Stack]:
    """The fleet's config file (not started): a canary at 50 %, state in ``redis_server``."""
    with running_stack(tmp_path, backends, "redis", start=False) as own:
        use_redis(own, redis_server, cache=str(tmp_path / "cache" / "state-cache.json"))
        own.routes["iris"] = canary(weight=50)
        yield own


def stored_phase(server: RedisServer) -> str | None:
    """The phase Redis holds for ``iris`` (None: nothing stored)."""
    client = redis.Redis.from_url(server.url)
    try:
        raw = client.hget("traffic-router:state", "iris")
    finally:
        client.close()
    return json.loads(raw)["state"]["phase"] if raw else None


def store_ok(replica: Replica) -> bool:
    """Whether the replica's status says the store answers."""
    return bool(replica.status()["state_store"]["ok"])


def test_an_outage_under_load_fails_no_request_and_the_rollback_wins_after_it(
    stack: Stack, redis_server: RedisServer
) -> None:
    with replicas(stack, 2) as (a, b), Load(a.url("iris")) as on_a, Load(b.url("iris")) as on_b:
        # Redis hangs: A rolls back (in effect on A at once), B keeps the last state.
        redis_server.pause()
        answer = a.act("iris", "rollback")
        assert answer.status_code == 200 and answer.json()["persisted"] is False
        assert a.act("iris", "pause").status_code == 503
        assert a.phase("iris") == "rolled_back" and b.phase("iris") == "steady"
        wait_until(lambda: not store_ok(b), timeout=15)
        assert b.admin("GET", "/readyz").status_code == 200
        # Redis answers again: the rollback is written and B follows it.
        redis_server.resume()
        wait_until(lambda: stored_phase(redis_server) == "rolled_back", timeout=15)
        wait_until(lambda: b.phase("iris") == "rolled_back", timeout=5)
        assert a.act("iris", "resume").status_code == 200
        wait_until(lambda: b.phase("iris") == "steady", timeout=5)

        # Redis dies and comes back empty; B rolls back meanwhile: its rollback wins.
        redis_server.kill()
        answer = b.act("iris", "rollback")
        assert answer.status_code == 200 and answer.json()["persisted"] is False
        wait_until(lambda: not store_ok(a), timeout=15)
        redis_server.start()
        wait_until(lambda: stored_phase(redis_server) == "rolled_back", timeout=15)
        wait_until(lambda: a.phase("iris") == "rolled_back", timeout=5)
        wait_until(lambda: store_ok(a) and store_ok(b), timeout=10)
        outcomes = on_a.stop() + on_b.stop()
    assert len(outcomes) > 200 and not failures(outcomes), failures(outcomes)[:5]


def test_a_replica_starts_from_its_cache_while_redis_is_down(
    stack: Stack, redis_server: RedisServer
) -> None:
    with replicas(stack, 1) as (first,):
        assert first.act("iris", "rollback").status_code == 200
    cache = stack.dir / "cache" / "state-cache.json"
    wait_until(cache.exists, timeout=5)
    redis_server.kill()
    with replicas(stack, 1) as (second,):  # ready although Redis is down
        assert second.phase("iris") == "rolled_back"
        assert not second.status()["state_store"]["ok"]
        load = Load(second.url("iris")).start()
        wait_until(lambda: len(load.outcomes) >= 100, timeout=10)
        served = load.stop()
        assert share(served, "stable") == 1.0 and not failures(served)
        redis_server.start()  # empty: the replica writes what it serves back
        wait_until(lambda: stored_phase(redis_server) == "rolled_back", timeout=15)


def test_a_replica_without_a_cache_is_not_ready_until_it_has_read_redis(
    stack: Stack, redis_server: RedisServer
) -> None:
    redis_server.kill()
    stack.write()
    process = RouterProcess(stack.config)
    (stack.dir / "logs").mkdir(exist_ok=True)
    process.log_path = stack.dir / "logs" / process.log_path.name
    process.start(wait_ready=False)
    try:
        ready = f"{process.admin_url}/readyz"
        wait_until(lambda: httpx.get(f"{process.admin_url}/healthz", timeout=2).status_code == 200)
        assert httpx.get(ready, timeout=2).status_code == 503
        redis_server.start()
        wait_until(lambda: httpx.get(ready, timeout=2).status_code == 200, timeout=15)
    finally:
        process.stop()
