"""OnePerTurn lets its waiters through one per event-loop iteration, in order."""

from __future__ import annotations

import asyncio
import contextlib

from router.shadow.turns import OnePerTurn


class IterationCounter:
    """Counts loop iterations with a callback that re-schedules itself once per iteration."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.count = 0
        self._loop = loop
        self._handle = loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        self._handle = self._loop.call_soon(self._tick)

    def stop(self) -> None:
        self._handle.cancel()


async def test_a_burst_of_waiters_passes_one_per_iteration_in_order() -> None:
    gate = OnePerTurn()
    counter = IterationCounter(asyncio.get_running_loop())
    passed: list[tuple[int, int]] = []

    async def worker(i: int) -> None:
        await gate.wait()
        passed.append((i, counter.count))

    await asyncio.gather(*(worker(i) for i in range(6)))
    counter.stop()
    assert [i for i, _ in passed] == list(range(6))
    iterations = [n for _, n in passed]
    assert len(set(iterations)) == 6, iterations  # never two in the same iteration
    assert gate.waiting == 0


async def test_a_cancelled_waiter_does_not_hold_up_the_others() -> None:
    gate = OnePerTurn()
    passed: list[int] = []

    async def worker(i: int) -> None:
        await gate.wait()
        passed.append(i)

    tasks = [asyncio.create_task(worker(i)) for i in range(4)]
    await asyncio.sleep(0)  # all four are waiting
    tasks[1].cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert passed == [0, 2, 3]
