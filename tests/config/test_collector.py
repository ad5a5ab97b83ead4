"""Building a config never runs the cyclic garbage collector, which it used to keep busy, and
a replaced one is freed a slice at a time."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from typing import Any

import pytest

from router.config import loader
from router.config.collector import collector_paused, free_piecewise
from router.config.loader import parse_config

CONFIG = """
backends: {a: {url: "http://127.0.0.1:8001"}, b: {url: "http://127.0.0.1:8002"}}
routes:
  - {name: m0, match: {path_prefix: /m0/}, strategy: {type: canary, stable: a, candidate: b}}
  - {name: m1, match: {path_prefix: /m1/}, strategy: {type: direct, backend: a}}
"""


def test_validating_a_config_collects_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    inside: list[bool] = [False]
    during: list[int] = []
    validate = loader._validate

    def watched(tree: dict[str, Any], issues: list[Any]) -> Any:
        inside[0] = True
        try:
            return validate(tree, issues)  # thousands of allocations
        finally:
            inside[0] = False

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and inside[0]:
            during.append(info["generation"])

    monkeypatch.setattr(loader, "_validate", watched)
    threshold = gc.get_threshold()
    gc.set_threshold(100)  # a collection due every 100 allocations
    gc.callbacks.append(record)
    try:
        parse_config(CONFIG)
        assert during == []
        assert gc.isenabled()
    finally:
        gc.callbacks.remove(record)
        gc.set_threshold(*threshold)


def test_pauses_nest_and_overlap_across_threads() -> None:
    assert gc.isenabled()
    inside = threading.Event()
    leave = threading.Event()

    def worker() -> None:
        with collector_paused():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=worker)
    with collector_paused():
        thread.start()
        assert inside.wait(10)
        assert not gc.isenabled()
    assert not gc.isenabled()  # the worker's pause is still on
    leave.set()
    thread.join(10)
    assert gc.isenabled()


class _Piece:
    """Notes the thread it is freed in."""

    def __init__(self, freed_in: list[threading.Thread]) -> None:
        self.freed_in = freed_in

    def __del__(self) -> None:
        self.freed_in.append(threading.current_thread())


async def test_a_replaced_config_is_freed_a_slice_per_turn_of_the_loop() -> None:
    freed_in: list[threading.Thread] = []
    pieces: list[Any] = [_Piece(freed_in) for _ in range(450)]
    free_piecewise(pieces)
    assert freed_in == []  # nothing on the caller's turn
    await asyncio.sleep(0)
    assert len(freed_in) == 200  # one slice a turn
    deadline = time.monotonic() + 10
    while len(freed_in) < 450 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert len(freed_in) == 450 and pieces == []
