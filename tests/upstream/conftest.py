"""Fixtures: one uvicorn backend per module; every async test runs on asyncio and on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping

import pytest
import uvloop

from router.upstream import UpstreamPool
from tests.backends import backend_app
from tests.support import ServerThread


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The router runs on uvloop; the default loop must work too."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="module")
def backend() -> Iterator[ServerThread]:
    """A real uvicorn (httptools, uvloop) serving ``backend_app``."""
    with ServerThread(backend_app, http="httptools", loop="uvloop") as server:
        yield server


@pytest.fixture
async def pool(backend: ServerThread) -> AsyncIterator[UpstreamPool]:
    """A pool to the module's backend, closed after the test."""
    upstream = UpstreamPool(backend.url, max_connections=10, read_timeout=5.0)
    yield upstream
    await upstream.aclose()

