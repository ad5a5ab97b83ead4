"""Webhook notifications (docs/notifications.md) against real receivers: signature, formats,
queue, retries.

The end-to-end tests run a real router process and real uvicorn receivers; the
queue tests drive a ``Notifier`` in this process against a real receiver.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from router.config.loader import ConfigError, parse_config
from router.config.model import NotificationSpec
from router.notify.payload import build_payload, render_slack, sign, verify
from router.notify.sender import Notifier
from router.telemetry.events import EventLog
from tests.backends import Inbox, echo_app, webhook_app
from tests.rollout_support import metric
from tests.support import RouterProcess, ServerThread, free_port, servers, wait_until

SECRET = "whsec-5f1e2d3c4b"

CONFIG = """
state: {{store: memory}}
backends:
  v1: {{url: "{v1}"}}
  v2: {{url: "{v2}"}}
routes:
  - name: chat
    match: {{path_prefix: /}}
    strategy: {{type: canary, stable: v1, candidate: v2, weight: 50}}
notifications:
{hooks}
"""


def _hook(url: str, **fields: str) -> str:
    extra = "".join(f", {key}: {value}" for key, value in fields.items())
    return f'  - {{url: "{url}", events: [rollback, resume]{extra}}}\n'


@pytest.fixture
def backends() -> Iterator[list[ServerThread]]:
    with servers(echo_app(None, "v1"), echo_app(None, "v2")) as started:
        yield started


def _router(tmp_path: Path, backends: list[ServerThread], hooks: str) -> RouterProcess:
    config = tmp_path / "router.yaml"
    v1, v2 = (server.url for server in backends)
    config.write_text(CONFIG.format(v1=v1, v2=v2, hooks=hooks))
    return RouterProcess(config, env={"WEBHOOK_SECRET": SECRET})


def _rollback(router: RouterProcess) -> None:
    answer = httpx.post(
        f"{router.admin_url}/admin/routes/chat/rollback", json={"reason": "ttft too high"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.e2e
def test_json_and_slack_deliveries_are_signed_once_each(
    tmp_path: Path, backends: list[ServerThread]
) -> None:
    signed, slack = Inbox(SECRET.encode()), Inbox()
    with servers(webhook_app(signed), webhook_app(slack)) as (json_hook, slack_hook):
        hooks = _hook(json_hook.url, secret='"${WEBHOOK_SECRET}"')
        hooks += _hook(slack_hook.url, format="slack")
        with _router(tmp_path, backends, hooks) as router:
            _rollback(router)
            wait_until(lambda: signed.bodies and slack.bodies, timeout=20)
            wait_until(lambda: metric(router.admin_url, "router_notifications_total",
                                      outcome="sent") == 2, timeout=20)
            version = httpx.get(f"{router.admin_url}/admin/status", timeout=10).json()
            assert SECRET not in router.logs()
    assert len(signed.bodies) == 1 and len(slack.bodies) == 1
    assert signed.signatures_ok == [True]
    payload = json.loads(signed.bodies[0])
    assert payload["event"] == "rollback" and payload["route"] == "chat"
    assert payload["reason"] == "ttft too high"
    assert payload["details"]["trigger"] == "manual"
    assert payload["config_version"] == version["config"]["version"]
    assert payload["replica"] and payload["at"].endswith("Z")
    text = json.loads(slack.bodies[0])["text"]
    assert "rollback on route chat: ttft too high" in text and "\n" not in text


@pytest.mark.e2e
def test_dead_and_hanging_receivers_change_nothing_for_proxied_requests(
    tmp_path: Path, backends: list[ServerThread]
) -> None:
    hanging = Inbox()
    hanging.release.clear()
    dead_url = f"http://127.0.0.1:{free_port()}/hook"
    with servers(webhook_app(hanging)) as (hang_hook,):
        hooks = _hook(dead_url) + _hook(hang_hook.url, timeout="60s")
        with _router(tmp_path, backends, hooks) as router:
            _rollback(router)
            assert hanging.arrived.wait(20)
            with httpx.Client(timeout=5, trust_env=False) as client:
                answers = [client.get(f"{router.url}/predict?i={i}") for i in range(20)]
            assert [a.status_code for a in answers] == [200] * 20
            wait_until(lambda: metric(router.admin_url, "router_notifications_total",
                                      outcome="failed") == 1, timeout=30)
            assert metric(router.admin_url, "router_notifications_total", outcome="sent") == 0
            hanging.release.set()
            wait_until(lambda: metric(router.admin_url, "router_notifications_total",
                                      outcome="sent") == 1, timeout=20)


def test_a_bad_webhook_is_a_config_error_naming_the_field() -> None:
    base = "backends: {a: {url: 'http://127.0.0.1:1'}}\n"
    base += "routes: [{name: r, strategy: {type: direct, backend: a}}]\n"
    bad = base + "notifications: [{url: 'ftp://x', events: [rollback, lunch]}]\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(bad.encode())
    places = {issue.place for issue in caught.value.issues}
    assert {"notifications[0].url", "notifications[0].events"} <= places


# -- the queue, in this process against a real receiver ----------------------------------


def _notifier(inbox_url: str, **spec: object) -> tuple[Notifier, CollectorRegistry]:
    registry = CollectorRegistry()
    notifier = Notifier(
        registry, config_version=lambda: "abc12345", replica=lambda: "r-1", capacity=2,
        backoff_s=0.01,
    )
    notifier.configure((NotificationSpec(url=inbox_url, events=("rollback",), **spec),))
    return notifier, registry


def _count(registry: CollectorRegistry, outcome: str) -> float:
    value = registry.get_sample_value("router_notifications_total", {"outcome": outcome})
    return value or 0.0


async def _until(predicate: object, timeout: float = 20.0) -> None:
    await asyncio.to_thread(wait_until, predicate, timeout)


async def test_a_full_queue_drops_the_oldest_and_ignores_unlisted_events() -> None:
    inbox = Inbox()
    inbox.release.clear()
    with ServerThread(webhook_app(inbox)) as receiver:
        notifier, registry = _notifier(receiver.url)
        try:
            notifier.offer({"event": "rollback", "route": "r", "reason": "first"})
            await _until(inbox.arrived.is_set)
            for i in range(4):
                notifier.offer({"event": "rollback", "route": "r", "reason": f"queued {i}"})
            notifier.offer({"event": "promote", "route": "r", "reason": "not listed"})
            assert _count(registry, "dropped") == 2
            inbox.release.set()
            await _until(lambda: _count(registry, "sent") == 3)
        finally:
            await notifier.aclose()
    reasons = [json.loads(body)["reason"] for body in inbox.bodies]
    assert reasons == ["first", "queued 2", "queued 3"]


async def test_retries_with_backoff_then_gives_up() -> None:
    flaky, broken = Inbox(statuses=[500, 503]), Inbox(statuses=[500, 500, 500, 500])
    with servers(webhook_app(flaky), webhook_app(broken)) as (flaky_hook, broken_hook):
        recovering, registry = _notifier(flaky_hook.url)
        failing, failed_registry = _notifier(broken_hook.url)
        try:
            for notifier in (recovering, failing):
                notifier.offer({"event": "rollback", "route": "r", "reason": "x"})
            await _until(lambda: _count(registry, "sent") == 1)
            await _until(lambda: _count(failed_registry, "failed") == 1)
        finally:
            await recovering.aclose()
            await failing.aclose()
    assert len(flaky.bodies) == 3 and len(broken.bodies) == 3


def test_payload_and_signature() -> None:
    record = {"at": "2026-12-05T00:00:00Z", "event": "rollback", "route": "chat",
              "reason": "ttfb_p99 2.1s > 1.5s\nsecond line", "trigger": "analysis", "p99": 2.1}
    payload = build_payload(record, "v1", "r-1")
    assert payload["details"] == {"trigger": "analysis", "p99": 2.1}
    text = json.loads(render_slack(payload))["text"]
    assert text == ("traffic-router: rollback on route chat: ttfb_p99 2.1s > 1.5s second line "
                    "(trigger=analysis, p99=2.1) [config v1, replica r-1]")
    body = b'{"a": 1}'
    assert verify(b"k", body, sign(b"k", body))
    assert not verify(b"k", body + b" ", sign(b"k", body))
    assert not verify(b"k", body, None)


def test_a_failing_listener_never_undoes_the_event() -> None:
    events, heard = EventLog(), []

    def broken(record: dict[str, object]) -> None:
        raise RuntimeError("receiver bug")

    events.listeners += [broken, heard.append]
    with capture_logs() as logs:
        record = events.emit("rollback", route="chat", reason="manual")
    assert heard == [record] and events.recent(1) == [record]
    assert any(line["event"] == "event_listener_error" for line in logs)
