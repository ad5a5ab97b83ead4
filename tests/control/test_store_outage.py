"""A state store that cannot be written never blocks a rollback (docs/faults.md), end to end.

A real router process on a file store whose directory is replaced by a plain file
while it runs (root ignores permission bits, so ``chmod`` cannot make the directory
read-only in CI): every read and write of the store then fails. A rollback, by an
operator or by analysis, takes effect at once and is written when the directory is
back; other actions answer 503; the status, the metrics and the log say so once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.control.test_canary_e2e import ANALYSIS, canary
from tests.rollout_support import (
    Knobs,
    Load,
    Stack,
    burst,
    failures,
    metric,
    running_stack,
    share,
)
from tests.support import ServerThread, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("healthy")]  # e2e: tests/conftest.py


@pytest.fixture
def stack(
    tmp_path: Path, backends: dict[str, ServerThread]
) -> Iterator[Stack]:
    """A router of the test's own (not started) whose file store lives in ``state/``."""
    with running_stack(tmp_path, backends, "file", start=False) as own:
        own.state_options = {"path": str(tmp_path / "state" / "state.json")}
        yield own


class BrokenStore:
    """Replaces the store's directory by a file (every store call fails) until ``repair``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.away = directory.with_name(directory.name + ".away")

    def __enter__(self) -> BrokenStore:
        self.directory.rename(self.away)
        self.directory.write_text("not a directory\n")
        return self

    def repair(self) -> None:
        """Put the directory back."""
        if self.away.exists():
            self.directory.unlink()
            self.away.rename(self.directory)

    def __exit__(self, *exc: object) -> None:
        self.repair()


def stored_phase(stack: Stack, route: str, directory: str = "state") -> str | None:
    """The phase the state file in ``directory`` holds for ``route``."""
    doc = json.loads((stack.dir / directory / "state.json").read_text())
    entry = doc["routes"].get(route)
    return entry["data"]["state"]["phase"] if entry else None


def store_errors(admin: str) -> float:
    """``router_state_store_errors_total`` summed over its operations."""
    name = "router_state_store_errors_total"
    return sum(metric(admin, name, op=op) or 0 for op in ("read", "write"))


def test_operator_rollback_takes_effect_while_the_store_cannot_be_written(stack: Stack) -> None:
    stack.routes["iris"] = canary(weight=50)
    stack.start()
    admin = stack.live.admin_url
    assert share(burst(stack.url("iris"), 400), "candidate") == pytest.approx(0.5, abs=0.1)
    assert stack.status()["state_store"] == {"kind": "file", "ok": True, "error": None}
    assert metric(admin, "router_state_store_up") == 1

    with BrokenStore(stack.dir / "state") as broken, Load(stack.url("iris")) as load:
        refused = stack.act("iris", "pause")
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "state_store_unavailable"
        assert stack.route_status("iris")["phase"] == "steady"

        answer = stack.act("iris", "rollback", "candidate looks wrong")
        assert answer.status_code == 200, answer.text
        assert answer.json()["persisted"] is False
        assert answer.json()["status"]["phase"] == "rolled_back"
        rolled_back = time.monotonic()
        wait_until(lambda: len(load.since(rolled_back)) >= 100)
        assert {o.backend for o in load.since(rolled_back)} == {"stable"}

        store = stack.status()["state_store"]
        assert store["kind"] == "file" and store["ok"] is False
        assert "state file" in store["error"]
        assert metric(admin, "router_state_store_up") == 0
        # Retried (once a second) and counted every time, logged once.
        failed = store_errors(admin)
        assert failed >= 1
        wait_until(lambda: store_errors(admin) >= failed + 2, timeout=15)
        logged = stack.log_records("state_store_error")
        assert len(logged) == 1, logged
        assert stored_phase(stack, "iris", "state.away") == "steady"  # nothing was written

        broken.repair()
        wait_until(lambda: stack.status()["state_store"]["ok"], timeout=10)
        wait_until(lambda: stored_phase(stack, "iris") == "rolled_back", timeout=10)
        outcomes = load.stop()
    assert not failures(outcomes)
    assert metric(admin, "router_state_store_up") == 1
    assert stack.act("iris", "rollback").json()["persisted"] is True
    stack.restart()
    assert stack.route_status("iris")["phase"] == "rolled_back"


def test_analysis_rolls_back_a_failing_candidate_while_the_store_cannot_be_written(
    stack: Stack, knobs: dict[str, Knobs]
) -> None:
    stack.routes["iris"] = canary(weight=50, analysis=ANALYSIS)
    stack.start()
    with Load(stack.url("iris"), workers=4) as load:

        def passed() -> bool:
            last = stack.route_status("iris")["analysis"]["last"]
            return last is not None and last["outcome"] == "pass"

        wait_until(passed, timeout=10)
        with BrokenStore(stack.dir / "state") as broken:
            knobs["candidate"].fail = True
            wait_until(lambda: stack.route_status("iris")["phase"] == "rolled_back", timeout=15)
            rolled_back = time.monotonic()
            wait_until(lambda: len(load.since(rolled_back)) >= 100)
            after = load.since(rolled_back)
            assert {o.backend for o in after} == {"stable"} and not failures(after)
            rollbacks = stack.events("iris", "rollback")
            assert len(rollbacks) == 1 and rollbacks[0]["trigger"] == "analysis"
            broken.repair()
            wait_until(lambda: stored_phase(stack, "iris") == "rolled_back", timeout=10)
    assert stack.status()["state_store"]["ok"] is True
