"""Spread bursts of background work over event-loop turns, one piece per turn.

Mirrors sent together come back together: a shadow that takes 1 s answers the
``max_in_flight`` copies sent in the same few milliseconds in the same few
milliseconds, and comparing 64 answers back to back (~30 µs each) holds the
loop for ~2 ms while primary requests wait. A task that calls
:meth:`OnePerTurn.wait` before such work proceeds in its own loop turn, so the
loop polls sockets between two pieces and a burst costs the primary no more
than one piece at a time.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["OnePerTurn"]


class OnePerTurn:
    """A gate that lets its waiters through one per event-loop iteration, in arrival order."""

    def __init__(self) -> None:
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._drainer: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """How many tasks are waiting for their turn."""
        return len(self._waiters)

    async def wait(self) -> None:
        """Return in a loop turn of this task's own (cancellable while waiting)."""
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        self._waiters.append(turn)
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        await turn

    async def _drain(self) -> None:
        try:
            while self._waiters:
                turn = self._waiters.popleft()
                if turn.done():  # its waiter was cancelled
                    continue
                turn.set_result(None)
                await asyncio.sleep(0)  # the woken task runs in the next iteration, alone
        finally:
            self._drainer = None
