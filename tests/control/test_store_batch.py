"""``put_many``: many compare-and-sets in one go, each keeping its own outcome, and
``delete_many`` (every store); a start or a reload that writes or removes many routes
rewrites the file store's file once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from router.app import RouterApp
from router.control import file_store
from router.control.file_store import FileStateStore
from router.control.store import (
    StaleWriteError,
    StateStore,
    StateStoreError,
    StoredState,
)

BACKENDS = "backends:\n  a: {url: 'http://127.0.0.1:9'}\n  b: {url: 'http://127.0.0.1:10'}\n"


async def test_a_stale_write_in_a_batch_loses_only_its_own_route(store: StateStore) -> None:
    await store.put("updated", {"n": 0}, None)
    await store.put("stale", {"n": 0}, None)
    await store.put("stale", {"n": 1}, 1)
    await store.put("taken", {"n": 0}, None)

    outcomes = await store.put_many([
        ("created", {"n": "new"}, None),
        ("updated", {"n": "new"}, 1),
        ("stale", {"n": "new"}, 1),  # another writer got there first: version 2
        ("taken", {"n": "new"}, None),  # created by someone else meanwhile
        ("missing", {"n": "new"}, 4),  # expected to exist, but does not
    ])

    assert outcomes[:2] == [StoredState({"n": "new"}, 1), StoredState({"n": "new"}, 2)]
    lost = outcomes[2:]
    assert all(isinstance(outcome, StaleWriteError) for outcome in lost)
    # The same loser, with the same versions, as a single put would raise.
    assert [(e.route, e.expected, e.actual) for e in lost if isinstance(e, StaleWriteError)] == [
        ("stale", 1, 2), ("taken", None, 1), ("missing", 4, None),
    ]
    assert await store.load_all() == {
        "created": StoredState({"n": "new"}, 1),
        "updated": StoredState({"n": "new"}, 2),
        "stale": StoredState({"n": 1}, 2),
        "taken": StoredState({"n": 0}, 1),
    }


async def test_writes_to_one_route_in_a_batch_apply_in_order(store: StateStore) -> None:
    outcomes = await store.put_many([
        ("iris", {"step": 0}, None), ("iris", {"step": 1}, 1), ("iris", {"step": 9}, 1),
    ])
    assert outcomes[:2] == [StoredState({"step": 0}, 1), StoredState({"step": 1}, 2)]
    assert isinstance(outcomes[2], StaleWriteError)
    assert await store.get("iris") == StoredState({"step": 1}, 2)


async def test_a_batch_with_data_that_is_not_json_writes_nothing(store: StateStore) -> None:
    with pytest.raises(StateStoreError, match="JSON"):
        await store.put_many([("iris", {"n": 1}, None), ("fraud", {"n": float("nan")}, None)])
    assert await store.load_all() == {}
    assert await store.put_many([]) == []


async def test_a_closed_store_refuses_a_batch(store: StateStore) -> None:
    await store.aclose()
    with pytest.raises(StateStoreError, match="closed"):
        await store.put_many([("iris", {"n": 1}, None)])


async def test_delete_many_forgets_only_the_routes_named(store: StateStore) -> None:
    await store.put_many([(name, {"n": 1}, None) for name in ("iris", "fraud", "kept")])
    await store.delete_many(["iris", "fraud", "never-stored"])
    assert await store.load_all() == {"kept": StoredState({"n": 1}, 1)}
    await store.delete_many([])
    assert await store.put("iris", {"n": 2}, None) == StoredState({"n": 2}, 1)  # starts again


@pytest.fixture
def rewrites(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """Every state file the file store rewrites (the real write still happens)."""
    written: list[Path] = []
    real = file_store.write_state_file

    def counted(path: Path, routes: Any) -> None:
        written.append(path)
        real(path, routes)

    monkeypatch.setattr(file_store, "write_state_file", counted)
    yield written


async def test_a_batch_rewrites_the_file_once(tmp_path: Path, rewrites: list[Path]) -> None:
    path = tmp_path / "state.json"
    store = FileStateStore(path)
    outcomes = await store.put_many([(f"m{n}", {"n": n}, None) for n in range(50)])
    assert [o.version for o in outcomes if isinstance(o, StoredState)] == [1] * 50
    assert rewrites == [path]
    # Every write lost: nothing to rewrite.
    await store.put_many([(f"m{n}", {"n": n}, None) for n in range(50)])
    assert rewrites == [path]
    assert len(await FileStateStore(path).load_all()) == 50
    await store.delete_many([f"m{n}" for n in range(40)])
    assert rewrites == [path] * 2
    assert len(await FileStateStore(path).load_all()) == 10


def _config(state_file: Path, count: int, steps: bool = False) -> str:
    strategy = "steps: [{weight: 10, hold: 1h}]" if steps else "weight: 10"
    lines = [f"state: {{store: file, path: '{state_file}'}}", BACKENDS, "routes:"]
    lines += [f"- {{name: m{n}, match: {{path_prefix: /m{n}/}}, "
              f"strategy: {{type: canary, stable: a, candidate: b, {strategy}}}}}"
              for n in range(count)]
    return "\n".join(lines) + "\n"


async def test_a_start_and_reloads_of_many_routes_rewrite_the_file_once_each(
    tmp_path: Path, rewrites: list[Path]
) -> None:
    state_file, path = tmp_path / "state.json", tmp_path / "router.yaml"
    path.write_text(_config(state_file, 200))
    router = RouterApp(path, access_log=False)
    await router.start()
    # This test makes each reload itself: the file watcher (and its periodic re-check), on
    # a busy machine, could apply an edit first and leave the reload with nothing changed.
    watcher = next(task for task in router._tasks if task.get_name() == "watcher")
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    try:
        assert rewrites == [state_file]
        assert router.rollouts is not None
        # Another replica sharing the file writes m7 after this one read it.
        other = FileStateStore(state_file)
        stored = await other.get("m7")
        assert stored is not None
        await other.put("m7", stored.data, stored.version)

        rewrites.clear()

        path.write_text(_config(state_file, 200, steps=True))  # every route's state changes
        assert (await router.reload("api")).changed

        assert rewrites == [state_file]
        routes = router.rollouts.routes
        # m7 lost its compare-and-set and took the other replica's state, as a single
        # write does; the batch stored every other route.
        assert (routes["m7"].cell.version, routes["m7"].cell.state.phase) == (2, "steady")
        assert await other.get("m7") == StoredState(stored.data, 2)
        assert (routes["m8"].cell.version, routes["m8"].cell.state.phase) == (2, "progressing")
        assert {state.version for state in (await other.load_all()).values()} == {2}

        rewrites.clear()
        path.write_text(_config(state_file, 20, steps=True))  # 180 routes removed
        assert (await router.reload("api")).changed
        assert rewrites == [state_file]
        assert sorted(await other.load_all()) == sorted(f"m{n}" for n in range(20))
    finally:
        await router.stop()
