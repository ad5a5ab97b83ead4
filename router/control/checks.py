"""Strategies' pre-transition checks (a blue-green ``switch_check``), run off the tick.

Each check the route's state asks for runs once at a time as its own task;
its outcome goes back to ``on_result`` (the rollouts, which apply it under
their lock).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from router.routing.snapshot import CompiledRoute
from strategies.base import CheckRequest

__all__ = ["CheckRunner", "PendingChecks"]

CheckRunner = Callable[[CheckRequest], Awaitable[tuple[bool, str]]]
"""Runs a strategy's pre-transition HTTP check: (ok, reason)."""

ResultSink = Callable[[str, CheckRequest, bool, str], Awaitable[None]]
"""(route name, request, ok, reason) -> apply the outcome."""


class PendingChecks:
    """The running checks, one task per (route, check key)."""

    def __init__(self, runner: CheckRunner | None, on_result: ResultSink) -> None:
        self.runner = runner
        self.on_result = on_result
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    def start(self, route: CompiledRoute) -> None:
        """Start the checks the route's state asks for that are not running yet."""
        pending = getattr(route.strategy, "pending_checks", None)
        if pending is None or self.runner is None:
            return
        for request in pending(route.spec, route.cell.state):
            key = (route.name, request.key)
            if key not in self._tasks:
                task = asyncio.create_task(self._run(route.name, request))
                self._tasks[key] = task
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        for key, running in list(self._tasks.items()):
            if running is task:
                del self._tasks[key]

    async def _run(self, name: str, request: CheckRequest) -> None:
        assert self.runner is not None
        ok, reason = await self.runner(request)
        await self.on_result(name, request, ok, reason)
