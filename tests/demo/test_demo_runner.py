"""``traffic-router demo``: real child processes, real traffic, a clean stop.

The two end-to-end demos (bad-canary stopped by ``--duration``, canary stopped
by SIGINT once it has moved a step) run side by side to keep the file short.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from router.config.loader import run_validate
from router.demo.runner import SCENARIOS, prepare_config
from router.demo.traffic import VariantNumbers, iris_rows
from router.demo.view import Frame, notable, render, status_line, weight_bar
from tests.support import ROOT, free_port, wait_until

CONFIG_DIR = ROOT / "config"


# -- end to end ---------------------------------------------------------------


@dataclass
class Demo:
    """``traffic-router demo`` in a child process; its stdout lines collected by a thread."""

    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    lines: list[str] = field(default_factory=list)

    def start(self) -> Demo:
        env = {**os.environ, "TRAFFIC_ROUTER_DEMO_FREE_PORTS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "router", "demo", "--headless", *self.args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def wait(self, timeout: float) -> tuple[int, dict[str, Any]]:
        """Exit code and the final JSON summary line."""
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        wait_until(lambda: self.lines and self.lines[-1].startswith("{"), timeout=5)
        return code, orjson.loads(self.lines[-1])

    def run(self, timeout: float) -> tuple[int, dict[str, Any], str]:
        """Start, wait for the end (killing what is left if that fails): code, summary, output."""
        self.start()
        try:
            code, summary = self.wait(timeout=timeout)
        finally:
            self.kill()
        return code, summary, "\n".join(self.lines)

    def kill(self) -> None:
        """After a failed test: the demo and everything under it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                child.kill()
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def demos() -> Iterator[dict[str, Demo]]:
    started = {
        "bad-canary": Demo(["--scenario", "bad-canary", "--duration", "14"]).start(),
        "canary": Demo(["--scenario", "canary"]).start(),
    }
    try:
        yield started
    finally:
        for demo in started.values():
            demo.kill()


def finished(demo: Demo) -> tuple[dict[str, Any], str]:
    """Wait for a demo run with ``--duration`` to end cleanly: its summary and its output."""
    code, summary = demo.wait(timeout=100)
    output = "\n".join(demo.lines)
    assert code == 0, output
    return summary, output


def leftovers(summary: dict[str, Any]) -> list[str]:
    """Processes the demo started that still exist."""
    ports = {f"--port {port}" for port in summary["ports"].values()}
    found = []
    for pid in summary["pids"].values():
        with contextlib.suppress(psutil.NoSuchProcess):
            if "router" in " ".join(psutil.Process(pid).cmdline()):  # not a reused pid
                found.append(f"pid {pid}")
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if summary["config"] in cmdline or (
            ("router.demo.model_server" in cmdline or "router.demo.llm_server" in cmdline)
            and any(p in cmdline for p in ports)
        ):
            found.append(cmdline)
    return found


@pytest.mark.e2e
def test_bad_canary_is_rolled_back_and_everything_stops(demos: dict[str, Demo]) -> None:
    demo = demos["bad-canary"]
    summary, output = finished(demo)
    assert summary["routes"]["iris"]["phase"] == "rolled_back", output
    assert summary["routes"]["iris"]["weights"] == {"stable": 100, "candidate": 0}
    assert summary["requests"]["iris"]["candidate"]["errors"] > 0
    assert any(" rollback " in line for line in demo.lines if line.startswith("event ")), output
    assert set(summary["pids"]) == {"model-v1", "model-v2", "router"}
    assert leftovers(summary) == []
    assert not Path(summary["config"]).exists()  # the temp dir is gone


@pytest.fixture(scope="module")
def judging_demos() -> Iterator[dict[str, Demo]]:
    started = {
        "drift": Demo(["--scenario", "drift", "--duration", "20"]).start(),
        "shadow-first": Demo(["--scenario", "shadow-first", "--duration", "16"]).start(),
    }
    try:
        yield started
    finally:
        for demo in started.values():
            demo.kill()


def _events(demo: Demo, kind: str) -> list[str]:
    return [line for line in demo.lines if line.startswith("event ") and f" {kind} " in line]


@pytest.mark.e2e
def test_drift_demo_rolls_back_a_quietly_wrong_candidate(judging_demos: dict[str, Demo]) -> None:
    demo = judging_demos["drift"]
    summary, output = finished(demo)
    assert summary["routes"]["iris"]["phase"] == "rolled_back", output
    assert summary["requests"]["iris"]["candidate"]["errors"] == 0  # 200s all along
    (rollback,) = _events(demo, "rollback")
    assert "prediction_drift " in rollback and "(psi, " in rollback, output
    assert leftovers(summary) == []


@pytest.mark.e2e
def test_shadow_first_demo_compares_copies_then_ramps(judging_demos: dict[str, Demo]) -> None:
    demo = judging_demos["shadow-first"]
    summary, output = finished(demo)
    assert any(" iris shadowing stable=100 candidate=0" in line for line in demo.lines), output
    (passed,) = _events(demo, "shadow_passed")
    assert "shadow_agreement " in passed, output
    assert summary["routes"]["iris"]["phase"] in ("progressing", "promoted"), output
    assert leftovers(summary) == []


@pytest.mark.e2e
def test_canary_ramps_and_ctrl_c_stops_everything(demos: dict[str, Demo]) -> None:
    demo = demos["canary"]
    # Step 2 of 4 (25 %) means a hold passed and a live analysis check passed.
    wait_until(lambda: any("step 2/4" in line or " promoted" in line for line in demo.lines),
               timeout=90, interval=0.2)
    assert demo.proc is not None
    demo.proc.send_signal(signal.SIGINT)
    code, summary = demo.wait(timeout=30)
    output = "\n".join(demo.lines)
    assert code == 0, output
    iris = summary["routes"]["iris"]
    assert iris["phase"] in ("progressing", "promoted"), output
    assert iris["weights"]["candidate"] >= 25
    assert leftovers(summary) == []


# -- config preparation -----------------------------------------------------------


def demo_template(directory: Path, ports: dict[int, int]) -> Path:
    """config/demo.yaml copied into ``directory`` with its ports swapped."""
    text = (CONFIG_DIR / "demo.yaml").read_text()
    for old, new in ports.items():
        text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
    directory.mkdir(parents=True)
    (directory / "demo.yaml").write_text(text)
    return directory


def test_canary_runs_on_the_template_itself_when_its_ports_are_free(tmp_path: Path) -> None:
    ports = {p: free_port() for p in (8080, 9901, 8001, 8002)}
    config_dir = demo_template(tmp_path / "config", ports)
    stale = tmp_path / ".traffic-router" / "demo-state.json"
    stale.parent.mkdir()
    stale.write_text("{}")
    setup = prepare_config(SCENARIOS["canary"], tmp_path / "work", config_dir)
    assert setup.in_place and setup.config == config_dir / "demo.yaml"
    assert not stale.exists()  # a fresh ramp, not the last run's outcome


def test_a_busy_port_makes_a_generated_copy_with_free_ports(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        config_dir = demo_template(tmp_path / "config", {8080: taken})
        (tmp_path / "work").mkdir()
        setup = prepare_config(SCENARIOS["canary"], tmp_path / "work", config_dir)
    assert not setup.in_place and setup.config.parent == tmp_path / "work"
    assert setup.proxy_port != taken
    assert len({setup.proxy_port, setup.admin_port, *setup.model_ports.values()}) == 4
    assert run_validate(str(setup.config)) == (0, "ok")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS), ids=sorted(SCENARIOS))
def test_every_scenario_config_generates_a_valid_config(scenario: str, tmp_path: Path) -> None:
    setup = prepare_config(SCENARIOS[scenario], tmp_path, CONFIG_DIR, any_ports=True)
    assert setup.config.parent == tmp_path
    assert run_validate(str(setup.config)) == (0, "ok")
    assert str(tmp_path) in setup.config.read_text()  # state (and logs) stay in the temp dir


def test_iris_rows_come_from_the_shipped_data_set() -> None:
    rows = iris_rows()
    assert len(rows) == 150 and all(len(row) == 4 for row in rows)


# -- the view (pure) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ({"stable": 100, "candidate": 0}, "[" + "█" * 10 + "]"),
        ({"stable": 75, "candidate": 25}, "[" + "█" * 8 + "▒" * 2 + "]"),
        ({"stable": 0, "candidate": 100}, "[" + "▒" * 10 + "]"),
        ({"primary": 100}, "[" + "█" * 10 + "]"),
        ({}, "[" + " " * 10 + "]"),
    ],
    ids=["all-stable", "quarter", "all-candidate", "single", "empty"],
)
def test_weight_bar(weights: dict[str, float], expected: str) -> None:
    assert weight_bar(weights, width=10) == expected


NUMBERS = [VariantNumbers("iris", "stable", "iris-v1", 45.0, 0.0, 12.0, 135)]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, "router not answering"),
        ({"routes": {}}, "sent 60/s"),
        ({"routes": {"iris": {"strategy": "canary"}}}, "iris ?"),
        ({"routes": {"iris": {"strategy": "canary", "phase": "progressing", "step": 1,
                              "steps": 4, "weights": {"stable": 75, "candidate": 25}}}},
         "iris progressing step 2/4 stable=75 candidate=25: stable 45/s err 0.0% p99 12ms"),
        ({"routes": {"iris": {"strategy": "shadow", "phase": "mirroring",
                              "shadow": {"compared": 200, "matched": 190}}}},
         "agreement 95.0%"),
        ({"routes": {"legacy": {"strategy": "direct", "phase": "steady"}}}, "sent 60/s"),
    ],
    ids=["no-status", "no-routes", "bare-route", "canary", "shadow", "idle-direct-hidden"],
)
def test_status_line_tolerates_missing_keys(status: dict[str, Any] | None, expected: str) -> None:
    frame = Frame("canary", 3.0, status, [], NUMBERS, 60.0)
    line = status_line(frame)
    assert expected in line
    assert "legacy" not in line
    assert render(frame, colour=False)  # the live view draws the same frame too


def test_events_shown_are_decisions_and_failed_checks() -> None:
    events = [
        {"event": "analysis", "outcome": "pass"},
        {"event": "analysis", "outcome": "fail"},
        {"event": "rollback"},
        {"event": "analysis", "outcome": "hold"},
    ]
    assert notable(events) == [events[1], events[2]]
