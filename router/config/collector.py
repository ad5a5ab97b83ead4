"""Pause Python's cyclic garbage collector while a config is parsed and installed, and free
a replaced config without stalling the event loop.

Building a large config allocates hundreds of thousands of objects that all survive
(YAML nodes, models, compiled routes), which is what makes the collector run its
full-heap passes again and again: measured on a 10,000-route reload, 2.4 s of its
3.9 s of CPU were the collector's. Nothing built here needs collecting meanwhile;
the collector runs again as soon as the build is over, on what is allocated after it.

Freeing is the mirror image: dropping the last reference to 10,000 routes frees them in
one chain of C deallocators that holds the GIL throughout (30 to 50 ms, in any thread).
``free_piecewise`` frees them a slice of routes per turn of the event loop instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["collector_paused", "free_piecewise"]

_lock = threading.Lock()
_FREE_SLICE = 200  # routes freed per turn of the event loop: about a millisecond
_freeing: set[asyncio.Task[None]] = set()
_depth = 0  # builds under way (a parse in a worker thread, an install on the loop)
_was_enabled = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection inside the block (nor a decorated function)."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                # Everything built is frozen first: re-enabled with it pending, the collector
                # would at once rescan it all (a 0.4 to 0.9 s stall at 10,000 routes), and
                # again at every later full pass (a tenth of each request's CPU). Reference
                # counting still frees it when a later config replaces it.
                gc.freeze()
                gc.enable()


def free_piecewise(pieces: list[Any]) -> None:
    """Drop ``pieces`` in order, a slice per turn of the event loop (call from the loop).

    Put a container before its elements (``[snapshot, *snapshot.routes]``): the container
    goes first, and each element's own subtree is then freed on its own. The caller must
    hold no other reference, or what it holds is freed where it lets go. (A worker thread
    would not help: it holds the GIL through each chain of deallocators, and the loop's
    own work slows to half while the two take turns.)
    """

    async def drop() -> None:
        for start in range(0, len(pieces), _FREE_SLICE):
            for index in range(start, min(start + _FREE_SLICE, len(pieces))):
                pieces[index] = None
            await asyncio.sleep(0)
        pieces.clear()

    task = asyncio.get_running_loop().create_task(drop(), name="free-replaced-config")
    _freeing.add(task)  # the loop keeps only a weak reference to a task
    task.add_done_callback(_freeing.discard)
