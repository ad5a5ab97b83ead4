"""Fixtures of the rollout end-to-end modules: two controllable backends and one router.

``store`` is each state store in turn (redis: a real redis-server), for the contract
tests of the stores.

Module-scoped: the tests of a module share the backends and the router, each adding
its own route. ``knobs``/``backends`` give ``stable`` and ``candidate``; a module
with other backends overrides those two. Modules opt in to ``healthy`` (every knob
reset around each test) with ``pytestmark = pytest.mark.usefixtures("healthy")``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from router.control.file_store import FileStateStore
from router.control.redis_store import RedisStateStore
from router.control.store import MemoryStateStore, StateStore
from tests.rollout_support import (
    Knobs,
    Stack,
    reset_knobs,
    running_backends,
    running_stack,
)
from tests.support import ServerThread


@pytest.fixture(scope="module")
def knobs() -> dict[str, Knobs]:
    """The knobs of the ``stable`` and ``candidate`` backends."""
    return {"stable": Knobs(), "candidate": Knobs()}


@pytest.fixture(scope="module")
def backends(knobs: dict[str, Knobs]) -> Iterator[dict[str, ServerThread]]:
    """Two controllable backends, shared by every test of the module."""
    with running_backends(knobs) as started:
        yield started


@pytest.fixture
def healthy(knobs: dict[str, Knobs]) -> Iterator[None]:
    """Every backend healthy and answering by default before and after the test."""
    yield from reset_knobs(knobs)


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    backends: dict[str, ServerThread],
) -> Iterator[Stack]:
    """One router shared by the tests of a module that only add or edit their own route."""
    name = request.module.__name__.rpartition(".")[2]
    with running_stack(tmp_path_factory.mktemp(name), backends, "memory") as shared:
        yield shared


@pytest.fixture(params=["memory", "file", pytest.param("redis", marks=pytest.mark.e2e)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    """Each contract test runs against every store (redis: a real redis-server)."""
    made: StateStore
    if request.param == "memory":
        made = MemoryStateStore()
    elif request.param == "file":
        made = FileStateStore(tmp_path / "state.json")
    else:
        made = RedisStateStore(request.getfixturevalue("redis_server").url)
    yield made
    await made.aclose()
