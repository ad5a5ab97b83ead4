"""Delivers decision events to webhooks, off the request path.

``Notifier.offer`` is the event log's listener: it only appends to a bounded
queue per webhook (the oldest delivery dropped when full) and wakes that
webhook's worker. Each worker POSTs with httpx (no proxies from the
environment, no redirects, the webhook's own timeout), trying 3 times with
exponential backoff before giving up. Every outcome is counted in
``router_notifications_total{outcome=sent|failed|dropped}``. A dead or slow
receiver only delays its own queue.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter

from router.config.model import NotificationSpec
from router.notify.payload import SIGNATURE_HEADER, build_payload, render_json, render_slack, sign
from router.telemetry.logs import get_logger

__all__ = ["ATTEMPTS", "Notifier"]

ATTEMPTS = 3
QUEUE_SIZE = 1000
_log = get_logger("router.notify")


class _Webhook:
    """One webhook's queue and worker."""

    def __init__(self, spec: NotificationSpec, capacity: int) -> None:
        self.spec = spec
        self.events = frozenset(spec.events)
        self.secret = spec.secret.get_secret_value().encode() if spec.secret else None
        self.queue: collections.deque[bytes] = collections.deque()
        self.capacity = capacity
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def render(self, payload: Mapping[str, Any]) -> bytes:
        return render_slack(payload) if self.spec.format == "slack" else render_json(payload)

    def headers(self, body: bytes) -> dict[str, str]:
        headers = {"content-type": "application/json", "user-agent": "traffic-router-notify"}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        return headers


class Notifier:
    """Queues and sends the configured webhooks' events; ``configure`` on every reload."""

    def __init__(
        self,
        registry: Any,
        *,
        config_version: Callable[[], str | None],
        replica: Callable[[], str | None],
        capacity: int = QUEUE_SIZE,
        backoff_s: float = 0.5,
    ) -> None:
        self.outcomes = Counter(
            "router_notifications_total", "Webhook deliveries by outcome.", ["outcome"],
            registry=registry,
        )
        for outcome in ("sent", "failed", "dropped"):
            self.outcomes.labels(outcome)
        self._config_version = config_version
        self._replica = replica
        self._capacity = capacity
        self._backoff_s = backoff_s
        self._webhooks: dict[NotificationSpec, _Webhook] = {}
        self._client: httpx.AsyncClient | None = None

    def configure(self, specs: tuple[NotificationSpec, ...]) -> None:
        """Keep the webhooks still configured (and their queues), start new ones, stop the rest."""
        kept: dict[NotificationSpec, _Webhook] = {}
        for spec in specs:
            hook = self._webhooks.pop(spec, None)
            kept[spec] = hook if hook is not None else self._start(spec)
        for gone in self._webhooks.values():
            if gone.task is not None:
                gone.task.cancel()
        self._webhooks = kept

    def _start(self, spec: NotificationSpec) -> _Webhook:
        if self._client is None:
            self._client = httpx.AsyncClient(
                trust_env=False, follow_redirects=False, cookies=None,
                timeout=httpx.Timeout(spec.timeout),
            )
        hook = _Webhook(spec, self._capacity)
        hook.task = asyncio.create_task(self._run(hook), name="notify")
        return hook

    def offer(self, record: Mapping[str, Any]) -> None:
        """Queue ``record`` for every webhook that listens to its event; never blocks."""
        kind = record.get("event")
        payload: dict[str, Any] | None = None
        for hook in self._webhooks.values():
            if kind not in hook.events:
                continue
            if payload is None:
                payload = build_payload(record, self._config_version(), self._replica())
            if len(hook.queue) >= hook.capacity:
                hook.queue.popleft()
                self.outcomes.labels("dropped").inc()
            hook.queue.append(hook.render(payload))
            hook.wake.set()

    async def _run(self, hook: _Webhook) -> None:
        while True:
            await hook.wake.wait()
            hook.wake.clear()
            while hook.queue:
                body = hook.queue.popleft()
                sent = await self._deliver(hook, body)
                self.outcomes.labels("sent" if sent else "failed").inc()

    async def _deliver(self, hook: _Webhook, body: bytes) -> bool:
        assert self._client is not None
        headers = hook.headers(body)
        problem = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
            try:
                response = await self._client.post(
                    hook.spec.url, content=body, headers=headers, timeout=hook.spec.timeout
                )
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}"
                continue
            finally:
                self._client.cookies.clear()
            if response.is_success:
                return True
            problem = f"answered {response.status_code}"
        # Only the host: webhook URLs (Slack's among them) carry their token in the path.
        _log.warning(
            "notification_failed", host=urlsplit(hook.spec.url).hostname, attempts=ATTEMPTS,
            reason=problem,
        )
        return False

    async def aclose(self) -> None:
        """Stop every worker (undelivered events are lost) and close the client."""
        tasks = [hook.task for hook in self._webhooks.values() if hook.task is not None]
        self._webhooks = {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None
