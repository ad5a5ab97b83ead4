"""A reload touches only the routes it changes: the rest keep their cells, state and store rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from router.app import RouterApp
from router.control.file_store import FileStateStore
from strategies import Command, get_strategy

BACKENDS = "backends:\n  a: {url: 'http://127.0.0.1:9'}\n  b: {url: 'http://127.0.0.1:10'}\n"


def _config(routes: dict[str, int], state: str = "{store: memory}") -> str:
    """A config of canary routes ``name -> weight``, in that order."""
    lines = [f"state: {state}", BACKENDS, "routes:"]
    lines += [
        f"- {{name: {name}, match: {{path_prefix: /{name}}}, "
        f"strategy: {{type: canary, stable: a, candidate: b, weight: {weight}}}}}"
        for name, weight in routes.items()
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[RouterApp]:
    path = tmp_path / "router.yaml"
    path.write_text(_config({"kept": 10, "edited": 10, "removed": 10}))
    router = RouterApp(path, access_log=False)
    await router.start()
    try:
        yield router
    finally:
        await router.stop()


async def _reload(app: RouterApp, routes: dict[str, int]) -> None:
    app.config_path.write_text(_config(routes))
    result = await app.reload("api")
    assert result.ok and result.changed, result.errors


async def test_an_unchanged_route_keeps_its_cell_and_is_not_rewritten(app: RouterApp) -> None:
    assert app.rollouts is not None
    await app.rollouts.act("kept", Command.PAUSE, "hold it")
    before = {route.name: route for route in app.snapshot.routes}
    store = app.rollouts.store
    kept_version = (await store.get("kept")).version  # type: ignore[union-attr]

    await _reload(app, {"kept": 10, "edited": 30})

    after = {route.name: route for route in app.snapshot.routes}
    assert after["kept"].cell is before["kept"].cell
    assert after["kept"].cell.picker is before["kept"].cell.picker
    assert after["kept"].cell.state.phase == "paused"
    assert (await store.get("kept")).version == kept_version  # type: ignore[union-attr]
    assert after["edited"].cell is not before["edited"].cell
    assert app.status()["routes"]["edited"]["weights"]["candidate"] == 30
    assert app.snapshot.config.routes == ()  # compiled: their models are not kept


async def test_an_edit_that_leaves_the_state_as_it_was_writes_nothing(app: RouterApp) -> None:
    assert app.rollouts is not None
    store = app.rollouts.store
    stored = await store.get("edited")
    assert stored is not None

    await _reload(app, {"kept": 10, "edited": 30, "removed": 10})  # a fixed weight: same state

    assert await store.get("edited") == stored
    assert app.status()["routes"]["edited"]["weights"]["candidate"] == 30
    app.config_path.write_text(_config({"kept": 10, "edited": 30, "removed": 10}).replace(
        "name: edited, match: {path_prefix: /edited}, strategy: {type: canary, stable: a, "
        "candidate: b", "name: edited, match: {path_prefix: /edited}, strategy: {type: canary, "
        "stable: b, candidate: a",
    ))
    assert (await app.reload("api")).changed  # another candidate: a new rollout, written
    rewritten = await store.get("edited")
    assert rewritten is not None and rewritten.data["identity"] != stored.data["identity"]


async def test_a_removed_route_loses_its_stored_state(app: RouterApp) -> None:
    assert app.rollouts is not None
    store = app.rollouts.store
    assert await store.get("removed") is not None
    await _reload(app, {"kept": 10, "edited": 10})
    assert await store.get("removed") is None
    assert await store.get("kept") is not None


async def test_the_first_install_sweeps_routes_removed_while_no_router_ran(
    tmp_path: Path,
) -> None:
    state_file = tmp_path / "state.json"
    previous_run = FileStateStore(state_file)
    await previous_run.put("gone", {"strategy": "canary", "identity": "x", "state": {}}, None)
    await previous_run.aclose()
    path = tmp_path / "router.yaml"
    path.write_text(_config({"kept": 10}, f"{{store: file, path: '{state_file}'}}"))
    router = RouterApp(path, access_log=False)
    await router.start()
    try:
        assert router.rollouts is not None
        assert await router.rollouts.store.get("gone") is None
        assert await router.rollouts.store.get("kept") is not None
    finally:
        await router.stop()


async def test_the_tick_visits_only_routes_under_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settled = {f"settled-{n}": 10 for n in range(500)}
    path = tmp_path / "router.yaml"
    ramp = ("- {name: ramp, match: {path_prefix: /ramp}, strategy: {type: canary, stable: a, "
            "candidate: b, steps: [{weight: 10, hold: 1h}]}}\n")
    path.write_text(_config(settled) + ramp)
    strategy = get_strategy("canary")
    advanced: list[object] = []
    original = type(strategy).advance

    def advance(self: Any, spec: Any, state: Any, observation: Any, now: float) -> Any:
        advanced.append(spec)
        return original(self, spec, state, observation, now)

    monkeypatch.setattr(type(strategy), "advance", advance)
    router = RouterApp(path, access_log=False)
    await router.start()
    try:
        assert router.rollouts is not None
        assert set(router.rollouts.active) == {"ramp"}
        await router.rollouts.tick(router.observe)
        ramp_spec = router.rollouts.routes["ramp"].spec
        assert advanced and all(spec is ramp_spec for spec in advanced)
        await router.rollouts.act("ramp", Command.PAUSE, "hold")
        assert not router.rollouts.active
    finally:
        await router.stop()
