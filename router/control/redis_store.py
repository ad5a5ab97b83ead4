"""The Redis state store (``state.store: redis``): one rollout shared by many routers.

Keys, under ``key_prefix`` (default ``traffic-router``)::

    {prefix}:versions   hash  route -> version (int, +1 on every write)
    {prefix}:state      hash  route -> the route's data as JSON
    {prefix}:serial     int   +1 on every write or delete of any route (the poll's cheap check)
    {prefix}:changes    pub/sub channel: the name of each route written or deleted

Every write is a compare-and-set in one Lua script (atomic on the server), which
also bumps ``serial`` and publishes the route's name, so other replicas learn of
it at once (pub/sub) or at their next poll of ``serial`` (pub/sub messages are
lost while a subscriber reconnects). A write made by the fleet's controller may
carry a fencing token: the script refuses it unless the token is the current
leader's (``{prefix}:leader:token``), so a leader that was paused past its lease
cannot overwrite what the new leader decided.

Connection failures and timeouts raise ``StateStoreError``, like the file
store's I/O errors; the client retries once (a pooled connection may be stale
after a Redis restart), with short timeouts so a hung Redis never holds a caller
for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.control.file_store import read_state_file, write_state_file
from router.control.store import (
    StaleWriteError,
    StateStoreError,
    StoredState,
    Write,
    WriteOutcome,
    copy_json,
)

__all__ = ["FencedWriteError", "RedisStateStore", "StoreUnreachableError", "describe_url"]

SOCKET_TIMEOUT_S = 1.0
_T = TypeVar("_T")

# KEYS: versions, state, serial, changes, token; ARGV: route, expected ('' = absent), data, fence
_PUT = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[4] ~= '' and redis.call('GET', KEYS[5]) ~= ARGV[4] then
  return {-1, current or ''}
end
if (current or '') ~= ARGV[2] then
  return {0, current or ''}
end
local version = (tonumber(current) or 0) + 1
redis.call('HSET', KEYS[1], ARGV[1], version)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[3])
redis.call('PUBLISH', KEYS[4], ARGV[1])
return {1, version}
"""

# KEYS: versions, state, serial, changes; ARGV: route
_DELETE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('INCR', KEYS[3])
  redis.call('PUBLISH', KEYS[4], ARGV[1])
end
return 1
"""


# The leader lease. KEYS: leader, token; ARGV: replica id, lease ms.
# Taking a free lease issues the next fencing token.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
"""

# KEYS: leader, token; ARGV: replica id, lease ms, token. Renew only our own, current lease.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[3] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: leader; ARGV: replica id. Let go of our own lease (a clean stop hands over at once).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class StoreUnreachableError(StateStoreError):
    """Redis did not answer (down, hung, or not there): not a reason to refuse to start."""


class FencedWriteError(StaleWriteError):
    """A controller write carried a fencing token that is no longer the leader's."""


def describe_url(url: str) -> str:
    """``redis://host:port/db`` without user or password, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisStateStore:
    """Rollout state in Redis, shared by every replica with the same ``key_prefix``."""

    def __init__(
        self, url: str, key_prefix: str = "traffic-router", *, cache: Path | None = None
    ) -> None:
        self.url = url
        self.where = describe_url(url)
        self.prefix = key_prefix
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            # Once, at once, for a pooled connection that broke (Redis restarted); a
            # timeout is not retried: a hung Redis must not hold a caller twice as long.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            health_check_interval=10,
        )
        self.keys = {
            name: f"{key_prefix}:{name}"
            for name in ("versions", "state", "serial", "changes", "leader", "leader:token")
        }
        self._put = self.client.register_script(_PUT)
        self._delete = self.client.register_script(_DELETE)
        self._acquire = self.client.register_script(_ACQUIRE)
        self._renew = self.client.register_script(_RENEW)
        self._release = self.client.register_script(_RELEASE)
        self._closed = False
        self.cache = cache
        self._cached: dict[str, StoredState] | None = None

    def key(self, name: str) -> str:
        """``{prefix}:{name}``."""
        return f"{self.prefix}:{name}"

    def error(self, exc: BaseException) -> StateStoreError:
        """One line naming the Redis and what went wrong."""
        if "NOAUTH" in str(exc) or "authenticated" in str(exc):
            return StateStoreError(
                f"redis at {self.where} needs a password (redis://:PASSWORD@host:port in state.url)"
            )
        if isinstance(exc, AuthenticationError):
            return StateStoreError(f"redis at {self.where} refused the password: {exc}")
        reason = str(exc) or type(exc).__name__
        return StateStoreError(f"redis at {self.where}: {reason}")

    async def check(self) -> None:
        """Reach Redis once (PING); StateStoreError naming the problem if it cannot be used."""
        try:
            await self.client.ping()
        except AuthenticationError as exc:  # a ConnectionError in redis-py, but fatal here
            raise self.error(exc) from exc
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnreachableError(str(self.error(exc))) from exc
        except RedisError as exc:  # NOAUTH, WRONGPASS, a database out of range
            raise self.error(exc) from exc

    def _open(self) -> None:
        if self._closed:
            raise StateStoreError("state store is closed")

    async def load_all(self) -> dict[str, StoredState]:
        """Every stored route, read in one transaction."""
        self._open()
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hgetall(self.keys["versions"])
                pipe.hgetall(self.keys["state"])
                versions, states = await pipe.execute()
        except RedisError as exc:
            raise self.error(exc) from exc
        routes: dict[str, StoredState] = {}
        for raw_name, raw_version in versions.items():
            raw = states.get(raw_name)
            if raw is not None:
                routes[raw_name.decode()] = _stored(raw, raw_version)
        await self._save_cache(routes)
        return routes

    async def _save_cache(self, routes: dict[str, StoredState]) -> None:
        """Keep the last state read in the cache file (when it changed)."""
        if self.cache is None or routes == self._cached:
            return
        self._cached = routes
        with contextlib.suppress(OSError):  # a cache is a convenience: serving goes on
            await asyncio.to_thread(self._write_cache, routes)

    def _write_cache(self, routes: dict[str, StoredState]) -> None:
        assert self.cache is not None
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        write_state_file(self.cache, routes)

    def cached(self) -> dict[str, StoredState] | None:
        """The last state read, from the cache file (for a start while Redis is down)."""
        return read_state_file(self.cache) if self.cache is not None else None

    async def get(self, route: str) -> StoredState | None:
        """The route's state, or None."""
        self._open()
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hget(self.keys["versions"], route)
                pipe.hget(self.keys["state"], route)
                version, raw = await pipe.execute()
        except RedisError as exc:
            raise self.error(exc) from exc
        return None if version is None or raw is None else _stored(raw, version)

    async def put(
        self,
        route: str,
        data: Mapping[str, Any],
        expected_version: int | None,
        *,
        fence: int | None = None,
    ) -> StoredState:
        """Compare-and-set the route's state; with ``fence``, only while that token leads."""
        payload = copy_json(data)
        keys = [self.keys[k] for k in ("versions", "state", "serial", "changes", "leader:token")]
        expected = "" if expected_version is None else str(expected_version)
        args = [route, expected, json.dumps(payload), "" if fence is None else str(fence)]
        outcome, found = await self._run(self._put(keys=keys, args=args))
        actual = int(found) if found not in (b"", "", None) else None
        if outcome == -1:
            raise FencedWriteError(route, expected_version, actual)
        if outcome == 0:
            raise StaleWriteError(route, expected_version, actual)
        return StoredState(payload, int(found))

    async def put_many(self, writes: Sequence[Write]) -> list[WriteOutcome]:
        """Every write's compare-and-set script, sent in one pipeline (one round trip)."""
        payloads = [(route, copy_json(data), expected) for route, data, expected in writes]
        keys = [self.keys[k] for k in ("versions", "state", "serial", "changes", "leader:token")]
        self._open()
        if not payloads:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for route, payload, expected in payloads:
                wanted = "" if expected is None else str(expected)
                await self._put(keys=keys, args=[route, wanted, json.dumps(payload), ""],
                                client=pipe)
            replies = await self.run_pipeline(pipe)
        outcomes: list[WriteOutcome] = []
        for (route, payload, expected), (done, found) in zip(payloads, replies, strict=True):
            if done == 1:
                outcomes.append(StoredState(payload, int(found)))
            else:
                actual = int(found) if found not in (b"", "", None) else None
                outcomes.append(StaleWriteError(route, expected, actual))
        return outcomes

    async def delete(self, route: str) -> None:
        """Forget the route's state."""
        keys = [self.keys[k] for k in ("versions", "state", "serial", "changes")]
        await self._run(self._delete(keys=keys, args=[route]))

    async def delete_many(self, routes: Sequence[str]) -> None:
        """Every route's delete script, sent in one pipeline."""
        self._open()
        if not routes:
            return
        keys = [self.keys[k] for k in ("versions", "state", "serial", "changes")]
        async with self.client.pipeline(transaction=False) as pipe:
            for route in routes:
                await self._delete(keys=keys, args=[route], client=pipe)
            await self.run_pipeline(pipe)

    async def serial(self) -> int:
        """The fleet-wide write counter: a change since the last read means re-read the state."""
        return int(await self._run(self.client.get(self.keys["serial"])) or 0)

    async def acquire_lease(self, replica: str, lease_s: float) -> int | None:
        """Take the leader lease if it is free: the new fencing token, else None."""
        keys = [self.keys["leader"], self.keys["leader:token"]]
        token = await self._run(self._acquire(keys=keys, args=[replica, int(lease_s * 1000)]))
        return int(token) or None

    async def renew_lease(self, replica: str, lease_s: float, token: int) -> bool:
        """Extend our lease; False if it is no longer ours (expired and taken, or a newer token)."""
        keys = [self.keys["leader"], self.keys["leader:token"]]
        args: list[str | int] = [replica, int(lease_s * 1000), token]
        return bool(await self._run(self._renew(keys=keys, args=args)))

    async def release_lease(self, replica: str) -> None:
        """Give up our lease, if we hold it."""
        await self._run(self._release(keys=[self.keys["leader"]], args=[replica]))

    async def leader(self) -> str | None:
        """The id of the replica holding the lease, or None."""
        value = await self._run(self.client.get(self.keys["leader"]))
        return value.decode() if isinstance(value, bytes) else None

    async def run_pipeline(self, pipe: Pipeline) -> list[Any]:
        """Send a pipeline built on ``client`` in one round trip; its replies."""
        return await self._run(pipe.execute())

    async def _run(self, call: Awaitable[_T]) -> _T:
        self._open()
        try:
            return await call
        except RedisError as exc:
            raise self.error(exc) from exc

    async def aclose(self) -> None:
        """Close the connections; later calls raise StateStoreError."""
        self._closed = True
        await self.client.aclose()


def _stored(raw: bytes, version: bytes) -> StoredState:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise StateStoreError(f"stored state is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise StateStoreError("stored state is not a JSON object")
    return StoredState(data, int(version))
