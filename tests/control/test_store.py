"""The runtime-state stores: compare-and-set semantics (both stores), and the file store's
atomic writes, restart persistence, corrupt-file recovery and sharing between processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from router.control.file_store import FileStateStore
from router.control.store import (
    MemoryStateStore,
    StaleWriteError,
    StateStore,
    StateStoreError,
    StoredState,
    build_state_store,
)

ROOT = Path(__file__).resolve().parents[2]
STATE = {"phase": "progressing", "step": 1, "since": 1764417600.5, "overrides": {"paused": False}}


# --- the contract, on both stores -------------------------------------------------------------


async def test_put_then_get_and_load_all(store: StateStore) -> None:
    assert await store.get("iris") is None
    assert await store.load_all() == {}
    created = await store.put("iris", STATE, expected_version=None)
    assert created == StoredState(STATE, 1)
    await store.put("fraud", {"phase": "steady"}, expected_version=None)
    assert await store.get("iris") == StoredState(STATE, 1)
    assert await store.load_all() == {
        "iris": StoredState(STATE, 1),
        "fraud": StoredState({"phase": "steady"}, 1),
    }


async def test_each_write_increments_the_version(store: StateStore) -> None:
    state = await store.put("iris", {"step": 0}, None)
    for step in range(1, 4):
        state = await store.put("iris", {"step": step}, state.version)
    assert state == StoredState({"step": 3}, 4)
    assert await store.get("iris") == state


@pytest.mark.parametrize(
    ("existing", "expected", "error"),
    [
        (None, None, None),
        (None, 1, StaleWriteError),
        (2, None, StaleWriteError),
        (2, 1, StaleWriteError),
        (2, 3, StaleWriteError),
        (2, 2, None),
    ],
    ids=[
        "create-absent",
        "update-absent",
        "create-existing",
        "stale-version",
        "future-version",
        "current-version",
    ],
)
async def test_compare_and_set(
    store: StateStore, existing: int | None, expected: int | None, error: type[Exception] | None
) -> None:
    if existing is not None:
        for version in range(existing):
            await store.put("iris", {"n": version}, version or None)
    if error is None:
        result = await store.put("iris", {"n": "new"}, expected)
        assert result.version == (existing or 0) + 1
    else:
        with pytest.raises(error) as info:
            await store.put("iris", {"n": "new"}, expected)
        assert isinstance(info.value, StaleWriteError)
        assert (info.value.expected, info.value.actual) == (expected, existing)
        current = await store.get("iris")
        assert (current.version if current else None) == existing  # nothing was written


async def test_delete(store: StateStore) -> None:
    await store.put("iris", STATE, None)
    await store.put("fraud", STATE, None)
    await store.delete("iris")
    await store.delete("never-stored")
    assert await store.get("iris") is None
    assert set(await store.load_all()) == {"fraud"}
    assert (await store.put("iris", STATE, None)).version == 1


async def test_stored_data_is_isolated_from_callers(store: StateStore) -> None:
    data: dict[str, Any] = {"overrides": {"paused": False}}
    returned = await store.put("iris", data, None)
    data["overrides"]["paused"] = True
    returned.data["overrides"]["paused"] = True
    fetched = await store.get("iris")
    assert fetched is not None
    fetched.data["overrides"]["paused"] = True
    assert await store.get("iris") == StoredState({"overrides": {"paused": False}}, 1)


@pytest.mark.parametrize(
    "data",
    [{"x": object()}, {"x": float("nan")}, {"x": {1, 2}}],
    ids=["object", "nan", "set"],
)
async def test_non_json_state_is_refused(store: StateStore, data: dict[Any, Any]) -> None:
    with pytest.raises(StateStoreError, match="not JSON"):
        await store.put("iris", data, None)
    assert await store.get("iris") is None


async def test_closed_store_refuses_calls(store: StateStore) -> None:
    await store.aclose()
    with pytest.raises(StateStoreError, match="closed"):
        await store.get("iris")


# --- the file store ---------------------------------------------------------------------------


async def test_file_survives_a_restart_and_has_the_documented_format(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "state.json"  # parent directories are created
    first = FileStateStore(path)
    await first.put("iris", STATE, None)
    await first.put("iris", {**STATE, "step": 2}, 1)
    await first.aclose()

    assert json.loads(path.read_text()) == {
        "format": 1,
        "routes": {"iris": {"version": 2, "data": {**STATE, "step": 2}}},
    }
    restarted = FileStateStore(path)
    assert await restarted.load_all() == {"iris": StoredState({**STATE, "step": 2}, 2)}
    assert restarted.recovered_from is None


async def test_file_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    state = await store.put("iris", STATE, None)
    for _ in range(5):
        state = await store.put("iris", STATE, state.version)
    await store.delete("iris")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.lock"]


async def test_missing_file_reads_as_empty(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state.json")
    assert await store.load_all() == {}
    assert store.recovered_from is None
    assert not (tmp_path / "state.json").exists()


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"\xff\xfe garbage",
        b'{"format": 2, "routes": {}}',
        b'["a", "list"]',
        b'{"format": 1, "routes": []}',
        b'{"format": 1, "routes": {"iris": {"version": 0, "data": {}}}}',
        b'{"format": 1, "routes": {"iris": {"version": 1, "data": "text"}}}',
        b'{"format": 1, "routes": {"iris": {"version": true, "data": {}}}}',
    ],
    ids=[
        "truncated-json",
        "empty",
        "not-utf8",
        "other-format",
        "not-an-object",
        "routes-not-object",
        "version-zero",
        "data-not-object",
        "version-bool",
    ],
)
async def test_corrupt_file_is_moved_aside_and_the_store_starts_empty(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    store = FileStateStore(path)

    assert await store.load_all() == {}
    assert store.recovered_from is not None
    assert store.recovered_from.parent == tmp_path
    assert store.recovered_from.name.startswith("state.json.corrupt-")
    assert store.recovered_from.read_bytes() == content
    assert store.recovery_reason
    assert not path.exists()
    assert (await store.put("iris", STATE, None)).version == 1
    assert await FileStateStore(path).load_all() == {"iris": StoredState(STATE, 1)}


async def test_a_directory_in_place_of_the_file_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / "state.json").mkdir()
    store = FileStateStore(tmp_path / "state.json")
    assert await store.load_all() == {}
    assert store.recovered_from is not None and store.recovered_from.is_dir()


async def test_unusable_location_raises_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    store = FileStateStore(tmp_path / "a-file" / "state.json")
    with pytest.raises(StateStoreError, match=r"state\.json"):
        await store.put("iris", STATE, None)


async def test_two_stores_on_one_file_see_each_other(tmp_path: Path) -> None:
    a = FileStateStore(tmp_path / "state.json")
    b = FileStateStore(tmp_path / "state.json")
    await b.load_all()  # b has read (and cached) the empty state
    await a.put("iris", STATE, None)

    seen_by_b = await b.get("iris")
    assert seen_by_b == StoredState(STATE, 1)
    await a.put("iris", {"step": 9}, 1)
    with pytest.raises(StaleWriteError):
        await b.put("iris", {"step": 5}, seen_by_b.version)
    assert await b.put("iris", {"step": 10}, 2) == StoredState({"step": 10}, 3)
    assert await a.get("iris") == StoredState({"step": 10}, 3)


_INCREMENTER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from router.control.file_store import FileStateStore
    from router.control.store import StaleWriteError

    async def main(path: str, count: int) -> None:
        store = FileStateStore(Path(path))
        done = 0
        while done < count:
            current = await store.get("counter")
            value = current.data["n"] if current else 0
            try:
                await store.put("counter", {"n": value + 1}, current.version if current else None)
            except StaleWriteError:
                continue
            done += 1

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


@pytest.mark.e2e
async def test_concurrent_processes_lose_no_increment(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _INCREMENTER, str(path), "40"], env=env)
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    assert await FileStateStore(path).get("counter") == StoredState({"n": 80}, 80)


# --- construction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "with_path", "expected"),
    [
        ("memory", False, MemoryStateStore),
        ("file", True, FileStateStore),
        ("file", False, "needs a path"),
        ("redis", False, "needs state.url"),
        ("etcd", False, "unknown state store 'etcd'"),
    ],
    ids=["memory", "file", "file-without-path", "redis-without-url", "unknown"],
)
def test_build_state_store(
    tmp_path: Path, kind: str, with_path: bool, expected: type[Any] | str
) -> None:
    path = tmp_path / "state.json" if with_path else None
    if isinstance(expected, str):
        with pytest.raises(StateStoreError, match=expected):
            build_state_store(kind, path, None)
    else:
        assert isinstance(build_state_store(kind, path, "redis://127.0.0.1:6379"), expected)
