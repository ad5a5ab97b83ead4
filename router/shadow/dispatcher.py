"""Shadow mirroring: bounded, fire-and-forget copies of finished requests, compared and counted.

The proxy hands a ``MirrorJob`` to ``ShadowDispatcher.dispatch`` once the
primary's answer has reached the client. For each shadow backend the
dispatcher either counts the copy (``skipped``: body over ``max_body``;
``dropped``: the route already has ``max_in_flight`` mirrors running, since a
mirror is never queued) or starts a task of its own, so a client that goes
away cancels nothing. The task sends the copy through the dispatcher's own
keep-alive pool for that backend (the primary's pools never carry shadow
traffic), reads the whole answer, compares it with the primary's and records
the outcome: ``match``, ``mismatch`` or ``error`` (connect, timeout, reset,
5xx), or ``skipped`` when the primary's answer was too large to keep.
Nothing a shadow does reaches the client. The counting and the admin's view
of it live in ``router.shadow.stats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from router.routing.backends import Backend
from router.shadow.jobs import MirrorJob
from router.shadow.mismatch_log import MismatchLog
from router.shadow.stats import ShadowBookkeeping, ShadowRouteStats
from router.shadow.turns import OnePerTurn
from router.telemetry.events import EventLog
from router.telemetry.feedback import GroundTruth
from router.telemetry.metrics import Metrics
from router.upstream.errors import UpstreamConnectError, UpstreamError
from router.upstream.pool import UpstreamPool
from strategies import MirrorPlan
from strategies.compare import Comparator, Comparison
from strategies.payloads import parse_body, path_protocol, read_predictions

__all__ = ["MAX_SHADOW_ANSWER", "SHADOW_HEADER", "ShadowDispatcher"]

SHADOW_HEADER = (b"x-router-shadow", b"1")
MAX_SHADOW_ANSWER = 4 * 1024 * 1024
_EVENT_GAP_S = 1.0


class _TooLargeError(Exception):
    """The shadow's answer passed ``MAX_SHADOW_ANSWER``."""


class ShadowDispatcher(ShadowBookkeeping):
    """Carries out ``MirrorPlan``s: the router's ``MirrorSink`` (see ``router.proxy.entry``)."""

    def __init__(
        self,
        metrics: Metrics,
        events: EventLog,
        backends: Callable[[], Mapping[str, Backend]],
        *,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(metrics, clock)
        self._events = events
        self._backends = backends
        self._timeout_s = timeout_s
        self._pools: dict[str, tuple[Any, UpstreamPool]] = {}
        self._logs: dict[str, MismatchLog] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._turns = OnePerTurn()
        self._closed = False
        # Routes with feedback: each shadow's prediction is kept to score it on the labels.
        self.truth: GroundTruth | None = None
        # A shadow that refuses connections is skipped for a growing pause, so a
        # dead shadow costs the primary nothing (a connect attempt per request did).
        self._unreachable: dict[str, tuple[float, float]] = {}  # name -> (until, pause)

    # -- the proxy's side -------------------------------------------------------------------

    def dispatch(self, job: MirrorJob) -> None:
        """Start a mirror per shadow backend, or count it skipped or dropped; never raises."""
        try:
            self._dispatch(job)
        except Exception as exc:  # a bug here must never reach the client's request
            self._log.warning("shadow_dispatch_failed", route=job.route, error=repr(exc))

    def admits(self, route: str, plan: MirrorPlan) -> bool:
        """False while the route already runs ``max_in_flight`` mirrors (or after close).

        The proxy asks before keeping copies of the body and the answer: at 100 % mirroring
        to a slow shadow most requests are dropped, and they should cost next to nothing.
        """
        stats = self._stats.get(route)
        return not self._closed and (stats is None or stats.in_flight < plan.max_in_flight)

    def drop(self, route: str, plan: MirrorPlan) -> None:
        """Count ``dropped`` for each of the plan's shadows."""
        stats = self._route(route)
        for name in plan.backends:
            self._count(stats, route, name, "dropped")

    def _dispatch(self, job: MirrorJob) -> None:
        route, plan = job.route, job.plan
        stats = self._route(route)
        backends = self._backends()
        started = False
        for name in plan.backends:
            if job.body is None:
                self._count(stats, route, name, "skipped", "request_body_too_large")
                continue
            backend = backends.get(name)
            if backend is None:
                self._count(stats, route, name, "skipped", "unknown_backend")
                continue
            if not self.admits(route, plan):
                self._count(stats, route, name, "dropped")
                continue
            pause = self._unreachable.get(name)
            if pause is not None and self._clock() < pause[0]:
                self._count(stats, route, name, "error", "backend_unreachable")
                continue
            stats.in_flight += 1
            stats.mirrored += 1
            started = True
            task = asyncio.get_running_loop().create_task(
                self._mirror(job, backend, stats), name=f"shadow:{route}:{name}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if started:
            stats.primary_ms.append(job.primary_latency_s * 1000.0)

    # -- one mirror -------------------------------------------------------------------------

    async def _mirror(self, job: MirrorJob, backend: Backend, stats: ShadowRouteStats) -> None:
        route, name = job.route, backend.name
        outcome, reason = "error", ""
        try:
            began = time.perf_counter()
            try:
                status, body = await self._send(job, backend)
            except UpstreamConnectError:
                self._mark_unreachable(name)
                raise
            self._unreachable.pop(name, None)
            stats.shadow_ms.append((time.perf_counter() - began) * 1000.0)
            await self._turns.wait()  # answers arrive in bursts: compare one per loop turn
            outcome, reason = self._judge(job, name, stats, status, body)
            if 200 <= status < 300:
                self._remember(job, name, body)
        except asyncio.CancelledError:
            outcome, reason = "dropped", "cancelled"
            raise
        except (UpstreamError, TimeoutError, OSError, ValueError, _TooLargeError) as exc:
            reason = _error_reason(exc)
            self._note_error(stats, route, name, reason, exc)
        except Exception as exc:
            reason = "internal"
            self._note_error(stats, route, name, reason, exc)
        finally:
            stats.in_flight -= 1
            self._count(stats, route, name, outcome, reason)

    async def _send(self, job: MirrorJob, backend: Backend) -> tuple[int, bytes]:
        """The shadow's status and whole answer; raises on any failure."""
        pool = await self._pool(backend)
        host = backend.host
        headers = [(n, host if n == b"host" else v) for n, v in job.headers]
        headers.append(SHADOW_HEADER)
        limit = min(self._timeout_s, backend.spec.timeout.read)
        async with asyncio.timeout(limit):
            response = await pool.request(job.method, job.target, headers, job.body or None)
            try:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response:
                    size += len(chunk)
                    if size > MAX_SHADOW_ANSWER:
                        raise _TooLargeError(f"shadow answer over {MAX_SHADOW_ANSWER} bytes")
                    chunks.append(chunk)
            finally:
                await response.aclose()
        return response.status, b"".join(chunks)

    def _judge(
        self, job: MirrorJob, name: str, stats: ShadowRouteStats, status: int, body: bytes
    ) -> tuple[str, str]:
        """Compare with the primary's answer: (outcome, reason); records the verdict."""
        if status >= 500:
            self._note_error(stats, job.route, name, f"status_{status}", None)
            return "error", f"status_{status}"
        if job.primary_body is None:
            return "skipped", "primary_answer_too_large"
        comparator = job.plan.compare
        if not isinstance(comparator, Comparator):
            return "skipped", "no_comparator"
        comparison = comparator.compare(
            job.primary_body, body, path=job.path,
            primary_status=job.primary_status, shadow_status=status,
        )
        if comparison.outcome == "error":
            self._note_error(stats, job.route, name, "compare", None, comparison.detail)
            return "error", "compare"
        stats.labels(comparison.label_flip)
        if comparison.outcome == "mismatch":
            self._record_mismatch(job, name, stats, comparison, body)
        return comparison.outcome, ""

    def _remember(self, job: MirrorJob, name: str, body: bytes) -> None:
        """Keep the shadow's first prediction, for routes that join true labels."""
        truth = self.truth
        if truth is None or not truth.keeps(job.route):
            return
        parsed = parse_body(body)
        found = None
        if parsed is not None:
            doc, exotic = parsed
            found = read_predictions(path_protocol(job.path), doc, exotic or b"null" in body)
        first = found.first() if found is not None else None
        if first is not None:
            truth.remember_mirrored(
                job.route, job.request_id, job.plan.variant, name, first, self._clock()
            )

    def _record_mismatch(
        self, job: MirrorJob, name: str, stats: ShadowRouteStats, comparison: Comparison,
        body: bytes,
    ) -> None:
        now = self._clock()
        if now - stats.last_event >= _EVENT_GAP_S:
            stats.last_event = now
            self._events.emit(
                "shadow_mismatch", route=job.route,
                reason=comparison.detail or "shadow answer differs",
                request_id=job.request_id, backend=name,
                first_difference=comparison.first_difference,
                max_abs_diff=comparison.max_abs_diff, label_flip=comparison.label_flip,
            )
        path = job.plan.mismatch_log
        if path is None or job.primary_body is None:
            return
        log = self._logs.get(path)
        if log is None:
            log = self._logs[path] = MismatchLog(Path(path))
        log.record(
            route=job.route, request_id=job.request_id, backend=name, comparison=comparison,
            primary_body=job.primary_body, shadow_body=body, at=now,
        )

    # -- the shadows' connections --------------------------------------------------------------

    def _mark_unreachable(self, name: str) -> None:
        """Pause mirrors to ``name``: 0.5 s, doubling to 30 s while it stays unreachable."""
        previous = self._unreachable.get(name)
        pause = min(previous[1] * 2, 30.0) if previous else 0.5
        self._unreachable[name] = (self._clock() + pause, pause)

    async def _pool(self, backend: Backend) -> UpstreamPool:
        """The dispatcher's own pool for ``backend``; a changed or unused one is closed.

        Closing a pool only closes its idle connections: requests in flight on it finish.
        """
        spec = backend.spec
        entry = self._pools.get(backend.url)
        if entry is not None and entry[0] == spec:
            return entry[1]
        pool = UpstreamPool(
            backend.url,
            max_connections=spec.max_connections,
            connect_timeout=spec.timeout.connect,
            read_timeout=spec.timeout.read,
            pool_timeout=min(5.0, spec.timeout.read),
        )
        self._pools[backend.url] = (spec, pool)
        stale = [entry[1]] if entry is not None else []
        urls = {b.url for b in self._backends().values()}
        stale += [self._pools.pop(url)[1] for url in list(self._pools) if url not in urls]
        for old in stale:
            await old.aclose()
        return pool

    # -- shutdown ------------------------------------------------------------------------------

    async def aclose(self, drain_s: float = 5.0) -> None:
        """Stop taking mirrors, wait up to ``drain_s`` for running ones, cancel the rest, close."""
        self._closed = True
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=drain_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(BaseException):
                    await task
        for _, pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()
        self._logs.clear()


def _error_reason(exc: BaseException) -> str:
    """A short label for a failed mirror: connect, timeout, reset, protocol, too_large."""
    if isinstance(exc, UpstreamError):
        return "connect" if exc.kind == "pool" else exc.kind
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, _TooLargeError):
        return "too_large"
    return "connect" if isinstance(exc, OSError) else "invalid"
