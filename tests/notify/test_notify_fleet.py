"""With replicas, the replica that made a decision sends it: one delivery per event
(docs/notifications.md).

Three real routers share one rollout through a real Redis and one webhook. A rollback
taken through one replica and a resume through another reach every replica, and the
receiver gets each once, naming the replica that decided.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.backends import Inbox, echo_app, webhook_app
from tests.fleet_support import replicas, use_redis
from tests.redis_support import RedisServer
from tests.rollout_support import Stack
from tests.support import servers, wait_until


def test_each_decision_is_delivered_once_by_the_replica_that_made_it(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    inbox = Inbox()
    with servers(echo_app(None, "stable"), echo_app(None, "candidate"), webhook_app(inbox)) as (
        stable, candidate, hook,
    ):
        stack = Stack(tmp_path, {"stable": stable.url, "candidate": candidate.url})
        use_redis(stack, redis_server)
        stack.sections = {"notifications": [{"url": hook.url, "events": ["rollback", "resume"]}]}
        stack.routes["chat"] = {"type": "canary", "stable": "stable", "candidate": "candidate",
                                "weight": 50}
        with replicas(stack, 3) as fleet:
            ids = [replica.status()["replica"]["id"] for replica in fleet]
            assert fleet[1].act("chat", "rollback").status_code == 200
            wait_until(lambda: all(r.phase("chat") == "rolled_back" for r in fleet), timeout=15)
            assert fleet[2].act("chat", "resume").status_code == 200
            wait_until(lambda: all(r.phase("chat") != "rolled_back" for r in fleet), timeout=15)
            wait_until(lambda: len(inbox.bodies) >= 2, timeout=15)
            # A duplicate from a replica that only followed would have been queued when it
            # adopted the state, before the resume that came after it everywhere.
            wait_until(lambda: any(json.loads(b)["event"] == "resume" for b in inbox.bodies))
    sent = [(json.loads(b)["event"], json.loads(b)["replica"]) for b in inbox.bodies]
    assert sent == [("rollback", ids[1]), ("resume", ids[2])]
