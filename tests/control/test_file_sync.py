"""The controller's once-a-second read of a shared state file: done when the file changed
(another process's write, or our own), skipped while it stays as the last read left it."""

from __future__ import annotations

from pathlib import Path

from router.app import RouterApp
from router.control.controller import Controller
from router.control.file_store import FileStateStore
from strategies import Command

BACKENDS = "backends:\n  a: {url: 'http://127.0.0.1:9'}\n  b: {url: 'http://127.0.0.1:10'}\n"


async def test_the_state_file_is_read_again_only_when_it_changed(tmp_path: Path) -> None:
    state_file, path = tmp_path / "state" / "state.json", tmp_path / "router.yaml"
    path.write_text(
        f"state: {{store: file, path: '{state_file}'}}\n{BACKENDS}routes:\n"
        + "".join(f"- {{name: m{n}, match: {{path_prefix: /m{n}/}}, strategy: "
                  "{type: canary, stable: a, candidate: b, weight: 10}}\n" for n in range(3))
    )
    app = RouterApp(path, access_log=False)
    await app.start()
    try:
        assert app.rollouts is not None and app.store is not None
        # A controller of the test's own: the app's runs too, and keeps its own marks.
        controller = Controller(app.rollouts, app.store, app.observe, leading=lambda: True)
        assert controller.store_changed()  # never read
        await controller.sync()
        assert not controller.store_changed()

        other = FileStateStore(state_file)  # another process sharing the file
        stored = await other.get("m1")
        assert stored is not None
        await other.put("m1", stored.data, stored.version)
        assert controller.store_changed()
        await controller.sync()
        assert app.rollouts.routes["m1"].cell.version == stored.version + 1
        assert not controller.store_changed()

        await app.rollouts.act("m0", Command.PAUSE, "hold")  # our own write
        assert controller.store_changed()
        await controller.sync()
        assert not controller.store_changed()

        state_file.unlink()  # the state is gone: read (and written back) at once
        assert controller.store_changed()
    finally:
        await app.stop()
