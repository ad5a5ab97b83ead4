"""``bench/tail.py``: per-thread scheduler figures of a real process, the router's own durations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from tail import SchedStat, own_durations

from tests.support import wait_until

pytestmark = pytest.mark.e2e  # starts another process (tests/conftest.py)

SPIN = (
    "import threading\ndef spin():\n    while True: pass\n"
    "threading.Thread(target=spin).start()\nspin()\n"
)


def test_schedstat_counts_every_thread_of_a_spinning_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        start = SchedStat.of(child.pid)
        wait_until(lambda: (SchedStat.of(child.pid) - start).run_ns > 200_000_000, timeout=30)
        delta = SchedStat.of(child.pid) - start
        assert delta.slices > 0
        assert len(list(Path(f"/proc/{child.pid}/task").iterdir())) == 2
    finally:
        child.kill()
        child.wait()


def testown_durations_reads_only_request_lines_after_the_offset(tmp_path: Path) -> None:
    log = tmp_path / "router.log"
    old = json.dumps({"event": "request", "duration_ms": 99.0})
    log.write_text(old + "\n")
    offset = log.stat().st_size
    lines = [
        json.dumps({"event": "request", "duration_ms": 1.5}),
        json.dumps({"event": "started"}),
        json.dumps({"event": "request", "duration_ms": 2.5}),
    ]
    with log.open("a") as out:
        out.write("\n".join(lines) + "\n")
    found, end = own_durations(log, offset)
    assert found == [1.5, 2.5]
    assert end == log.stat().st_size
