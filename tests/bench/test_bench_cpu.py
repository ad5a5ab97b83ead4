"""``bench/cpu.py``: the CPU a measurement's parts spent, read from real processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

# bench/ scripts import their siblings by bare name, as when run as `python bench/run.py`.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from cpu import CpuSplit, metered, tree_cpu_seconds

from tests.support import wait_until

pytestmark = pytest.mark.e2e  # starts other processes (tests/conftest.py)

SPIN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"


def _spinning_child(pid: int) -> bool:
    """Whether a child of ``pid`` (the test's grandchild) has started using CPU."""
    try:
        return any(c.cpu_times().user > 0 for c in psutil.Process(pid).children())
    except psutil.NoSuchProcess:
        return False


def test_metered_splits_target_and_child_cpu() -> None:
    # The "target" spins in a grandchild, to prove the tree (not just the root) is counted.
    parent = subprocess.Popen([
        sys.executable, "-c",
        "import subprocess, sys; subprocess.run([sys.executable, '-c', sys.argv[1]])",
        SPIN.format(s=5.0),
    ])
    try:
        wait_until(lambda: _spinning_child(parent.pid), timeout=20)
        result, split = metered(
            lambda: subprocess.run([sys.executable, "-c", SPIN.format(s=0.3)], check=True),
            parent.pid, [], time.monotonic,
        )
    finally:
        parent.kill()
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.wait()
    assert result.returncode == 0
    assert split.wrk_s >= 0.25  # the waited-for child's CPU, as wrk's is counted
    assert split.target_s >= 0.1  # the spinning grandchild ran during the measurement
    assert split.stand_ins_s == 0.0
    assert split.wall_s >= 0.3


def test_tree_cpu_of_nothing_or_a_finished_process_is_zero() -> None:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert tree_cpu_seconds(None) == 0.0
    assert tree_cpu_seconds(done.pid) == 0.0


@pytest.mark.parametrize(
    ("split", "requests", "per_request", "cores"),
    [
        (CpuSplit(1.0, 0.5, 0.25, 1.0), 10_000, (100.0, 50.0, 25.0), 1.75),
        (CpuSplit(0.0, 0.0, 0.0, 0.0), 0, (0.0, 0.0, 0.0), 0.0),
    ],
    ids=["busy", "empty"],
)
def test_per_request_and_busy_cores(
    split: CpuSplit, requests: int, per_request: tuple[float, float, float], cores: float
) -> None:
    assert split.per_request_us(requests) == pytest.approx(per_request)
    assert split.busy_cores == pytest.approx(cores)
