"""Where the tail at saturation comes from: wrk's p99 beside what each process lived through.

``python bench/tail.py [--hogs 0,1] [--rounds 3] [--duration 5]``

wrk at 64 connections keeps every connection busy, so a request's latency is the
time its bytes wait before the proxy reads them plus the time the proxy spends on
it. The router logs the second part for every request (``duration_ms``, from the
parsed request to the last byte sent); wrk sees both. Between the two, only
waiting is left: in the socket buffer while the event loop serves the other
connections, and in the kernel's run queue while the process is runnable but
another process has the core. Linux counts the latter per thread
(``/proc/PID/task/TID/schedstat``: nanoseconds on a core, nanoseconds runnable
but waiting, slices), so each round prints, for the router and for Traefik in the
same rounds: wrk's percentiles, the router's own, and the run-queue wait of the
proxy's process (ms per second of wall time, and the mean wait each time it was
descheduled). ``--hogs 1`` adds a busy-looping process per round, as other work
on a shared 2-core machine does; the connections are opened once per wrk run, so
the accept queue plays no part here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from procs import process_tree
from scenarios import SCENARIOS
from stack import Endpoint, Stack
from wrk import WrkResult, post_body, run_wrk, write_script

__all__ = ["main"]

TARGETS = ("router-canary", "traefik", "floor")
CONNECTIONS = 64
#: A process that only burns CPU: the kind of neighbour a shared machine has.
HOG = "while True: pass"


@dataclass(frozen=True, slots=True)
class SchedStat:
    """Sums over a process tree's threads: ns on a core, ns runnable but waiting, slices."""

    run_ns: int
    wait_ns: int
    slices: int

    @classmethod
    def of(cls, pid: int) -> SchedStat:
        """Read every thread of ``pid`` and its descendants (threads that ended are lost)."""
        run = wait = slices = 0
        for proc in process_tree(pid):
            for task in Path(f"/proc/{proc.pid}/task").glob("*/schedstat"):
                try:
                    a, b, c = task.read_text().split()
                except (OSError, ValueError):
                    continue
                run, wait, slices = run + int(a), wait + int(b), slices + int(c)
        return cls(run, wait, slices)

    def __sub__(self, other: SchedStat) -> SchedStat:
        return SchedStat(
            self.run_ns - other.run_ns, self.wait_ns - other.wait_ns, self.slices - other.slices
        )


@dataclass(frozen=True, slots=True)
class Round:
    """One wrk run against one target, with what the target's process lived through."""

    target: str
    hogs: int
    wrk: WrkResult
    sched: SchedStat
    own_ms: list[float]  # the router's own durations (empty for other targets)

    def row(self) -> str:
        """One line of the table."""
        seconds = self.wrk.seconds or 1.0
        wait_ms_per_s = self.sched.wait_ns / 1e6 / seconds
        mean_wait_ms = self.sched.wait_ns / 1e6 / max(self.sched.slices, 1)
        own = _percentiles(self.own_ms)
        own_text = (
            f"{own[0]:6.2f} {own[1]:7.2f} {own[2]:7.2f}" if own else f"{'-':>6} {'-':>7} {'-':>7}"
        )
        return (
            f"{self.hogs:>4} {self.target:<14} {self.wrk.rps:>8,.0f} {self.wrk.p50_ms:6.2f} "
            f"{self.wrk.p99_ms:7.2f} {self.wrk.p999_ms:7.2f} {self.wrk.max_ms:7.2f}   {own_text}"
            f"   {self.sched.run_ns / 1e9 / seconds:5.2f} {wait_ms_per_s:7.1f} {mean_wait_ms:6.3f}"
        )


HEADER = (
    "hogs target            req/s    p50     p99   p99.9     max  "
    "  own p50 own p99 own max   cores  wait ms/s  mean wait ms"
)


def _percentiles(values: list[float]) -> tuple[float, float, float] | None:
    if len(values) < 100:
        return None
    ordered = sorted(values)
    return (statistics.median(ordered), ordered[int(len(ordered) * 0.99)], ordered[-1])


def own_durations(log_path: Path | None, offset: int) -> tuple[list[float], int]:
    """``duration_ms`` of the request lines the router logged after ``offset`` bytes."""
    if log_path is None:
        return [], offset
    with log_path.open("rb") as log:
        log.seek(offset)
        data = log.read()
    found = []
    for line in data.splitlines():
        if b'"duration_ms"' in line:
            try:
                found.append(float(json.loads(line)["duration_ms"]))
            except (ValueError, KeyError):
                continue
    return found, offset + len(data)


def measure(name: str, endpoint: Endpoint, script: Path, duration: float, hogs: int) -> Round:
    """One wrk run at 64 connections, bracketed by schedstat and the router's log."""
    assert endpoint.service is not None
    pid = endpoint.service.pid
    log_path = endpoint.log_path
    offset = log_path.stat().st_size if log_path else 0
    before = SchedStat.of(pid)
    result = run_wrk(endpoint.url, script, CONNECTIONS, duration)
    sched = SchedStat.of(pid) - before
    own, _ = own_durations(log_path, offset)
    return Round(name, hogs, result, sched, own)


def start_hogs(count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` busy-looping Python processes."""
    return [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(count)]


def stop_hogs(hogs: Sequence[subprocess.Popen[bytes]]) -> None:
    """Kill and reap them."""
    for hog in hogs:
        hog.kill()
        hog.wait()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--hogs", default="0,1", help="busy neighbours per set of rounds, comma-separated (0,1)")
    add("--rounds", type=int, default=3, help="interleaved rounds per set (3)")
    add("--duration", type=float, default=5.0, help="seconds per wrk run (5)")
    add("--method", choices=("GET", "POST"), default="GET")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Start the router, Traefik and the floor proxy; print one row per round and target."""
    args = parse_args(argv)

    scenarios = [s for s in SCENARIOS if s.name in TARGETS]
    stack = Stack(Path(tempfile.mkdtemp(prefix="router-tail-")))
    try:
        endpoints = stack.start(scenarios, {})
        body = post_body() if args.method == "POST" else b""
        script = write_script(stack.workdir, args.method, body)
        for endpoint in endpoints.values():
            run_wrk(endpoint.url, script, 16, 1.0)
        print(f"wrk {args.method} at {CONNECTIONS} connections, {args.duration:g} s per run; "
              "own = the router's logged duration_ms; cores, wait = the proxy's CPU and its "
              "run-queue wait (schedstat)\n")
        print(HEADER)
        for hogs in (int(h) for h in args.hogs.split(",")):
            running = start_hogs(hogs)
            time.sleep(0.5)
            try:
                for _ in range(args.rounds):
                    for name, endpoint in endpoints.items():
                        found = measure(name, endpoint, script, args.duration, hogs)
                        print(found.row(), flush=True)
            finally:
                stop_hogs(running)
    finally:
        stack.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
