"""The Redis state store against real ``redis-server`` processes: compare-and-set across
clients, key prefixes, a stopped or hung Redis, and a wrong password at start (a router
process exits 1 with one line). The protocol's contract runs in ``test_store.py``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from router.control.redis_store import FencedWriteError, RedisStateStore, describe_url
from router.control.store import StaleWriteError, StateStoreError, StoredState
from tests.redis_support import REDIS_SERVER, RedisServer
from tests.support import ROOT, free_port


async def test_only_one_of_many_concurrent_writers_wins(redis_server: RedisServer) -> None:
    stores = [RedisStateStore(redis_server.url) for _ in range(4)]
    try:
        await stores[0].put("iris", {"step": 0}, None)

        async def attempt(i: int) -> bool:
            try:
                await stores[i % 4].put("iris", {"step": 1, "writer": i}, 1)
            except StaleWriteError:
                return False
            return True

        won = await asyncio.gather(*(attempt(i) for i in range(20)))
        assert sum(won) == 1
        stored = await stores[1].get("iris")
        assert stored is not None and stored.version == 2
        assert stored.data["writer"] == won.index(True)
    finally:
        for store in stores:
            await store.aclose()


async def test_key_prefixes_keep_fleets_apart(redis_server: RedisServer) -> None:
    blue = RedisStateStore(redis_server.url, key_prefix="fleet-blue")
    green = RedisStateStore(redis_server.url, key_prefix="fleet-green")
    try:
        await blue.put("iris", {"phase": "steady"}, None)
        assert await green.get("iris") is None
        assert await green.load_all() == {}
        await green.put("iris", {"phase": "paused"}, None)
        assert (await blue.load_all())["iris"].data == {"phase": "steady"}
        assert await blue.serial() == 1 and await green.serial() == 1
    finally:
        await blue.aclose()
        await green.aclose()


async def test_a_stopped_or_hung_redis_raises_a_store_error_naming_it(
    redis_server: RedisServer,
) -> None:
    store = RedisStateStore(redis_server.url)
    try:
        await store.put("iris", {"step": 0}, None)
        redis_server.pause()
        started = time.monotonic()
        with pytest.raises(StateStoreError, match=f"redis at redis://127.0.0.1:{redis_server.port}"):
            await store.get("iris")
        # Short socket timeouts: a hung Redis holds no caller for long (one retry).
        assert time.monotonic() - started < 10
        redis_server.resume()
        assert (await store.get("iris")) is not None
        redis_server.kill()
        with pytest.raises(StateStoreError, match="redis at"):
            await store.put("iris", {"step": 1}, 1)
        redis_server.start()  # a restart that lost every key
        assert await store.get("iris") is None
    finally:
        await store.aclose()


def test_describe_url_drops_the_password() -> None:
    assert describe_url("rediss://:hunter2@cache.internal:6380/2") == (
        "rediss://cache.internal:6380/2"
    )


@pytest.mark.e2e
async def test_a_wrong_password_is_named(tmp_path: Path) -> None:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (make redis installs it)")
    server = RedisServer(tmp_path, password="right-one").start()
    try:
        for url in (
            f"redis://:wrong-one@127.0.0.1:{server.port}/0",
            f"redis://127.0.0.1:{server.port}/0",
        ):
            store = RedisStateStore(url)
            refused = r"redis at .* (refused the password|needs a password)"
            with pytest.raises(StateStoreError, match=refused):
                await store.check()
            await store.aclose()
        store = RedisStateStore(server.url)
        await store.check()
        await store.aclose()
    finally:
        server.stop()


@pytest.mark.e2e
def test_router_with_a_wrong_password_exits_1_with_one_line(tmp_path: Path) -> None:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (make redis installs it)")
    server = RedisServer(tmp_path, password="right-one").start()
    config = tmp_path / "router.yaml"
    config.write_text(yaml.safe_dump({
        "state": {"store": "redis", "url": f"redis://:${{REDIS_PASSWORD}}@127.0.0.1:{server.port}/0"},
        "backends": {"b": {"url": "http://127.0.0.1:9"}},
        "routes": [{"name": "r", "strategy": {"type": "direct", "backend": "b"}}],
    }))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "router", "serve", "--config", str(config),
             "--listen", f"127.0.0.1:{free_port()}", "--admin-listen", f"127.0.0.1:{free_port()}",
             "--log-format", "json"],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "REDIS_PASSWORD": "wrong-one"},
        )
    finally:
        server.stop()
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"redis at redis://127.0.0.1:{server.port}/0" in lines[0]
    assert "password" in lines[0] and "wrong-one" not in lines[0]
    assert "wrong-one" not in done.stdout


async def test_a_lease_holder_past_its_lease_cannot_overwrite_its_successor(
    redis_server: RedisServer,
) -> None:
    old, new = RedisStateStore(redis_server.url), RedisStateStore(redis_server.url)
    try:
        first = await old.acquire_lease("old", 0.3)
        assert first == 1
        assert await new.acquire_lease("new", 0.3) is None
        assert await new.leader() == "old"
        await old.put("iris", {"step": 1}, None, fence=first)

        # "old" is paused (it renews nothing); once the lease runs out "new" takes it.
        deadline = time.monotonic() + 10
        second = None
        while second is None and time.monotonic() < deadline:
            second = await new.acquire_lease("new", 5)
            await asyncio.sleep(0.05)
        assert second == 2 and await old.leader() == "new"
        await new.put("iris", {"step": 2}, 1, fence=second)

        # "old" wakes up and writes what it decided before the pause: refused.
        with pytest.raises(FencedWriteError):
            await old.put("iris", {"step": 2, "by": "old"}, 2, fence=first)
        assert not await old.renew_lease("old", 0.3, first)
        assert (await old.get("iris")) == StoredState({"step": 2}, 2)
        # An operator's write (no token) is no controller decision: not fenced.
        await old.put("iris", {"step": 2, "paused": True}, 2)
        await old.release_lease("old")  # not its lease: nothing happens
        assert await new.leader() == "new"
        await new.release_lease("new")
        assert await new.leader() is None
    finally:
        await old.aclose()
        await new.aclose()
