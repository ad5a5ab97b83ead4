"""CPU per request of two router scenarios, loaded at the same time: a small difference, measured.

The bench's comparisons run one scenario after another, and on a shared machine the
speed of the whole machine moves by 10 to 40 % from one minute to the next, so a 5 %
budget drowns. Here both routers are started, each gets its own wrk (POST, 32
connections, one thread) at the same time, for short rounds, so both see the same
machine; the figure is the median of the per-round ratios of CPU per request (B / A).
A first long round fills whatever the scenarios keep (a full prediction store, say).

Run it against the same scenario twice to see the method's own spread (an A/A run):

    python bench/paired.py router-canary router-canary-truth           # the issue-20 budget
    python bench/paired.py router-canary router-canary --rounds 12     # A/A: ~1.00 expected
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from cpu import tree_cpu_seconds
from scenarios import SCENARIOS, Scenario
from stack import Endpoint, Stack
from wrk import WrkResult, post_body, run_wrk, write_script

__all__ = ["main", "paired_round"]

CONNECTIONS = 32


def paired_round(
    endpoints: Sequence[Endpoint], script: Path, seconds: float
) -> list[float]:
    """Load every endpoint at once for ``seconds``; CPU microseconds per request of each."""
    results: list[WrkResult | None] = [None] * len(endpoints)

    def load(i: int) -> None:
        results[i] = run_wrk(endpoints[i].url, script, CONNECTIONS, seconds, threads=1)

    pids = [e.service.pid if e.service else None for e in endpoints]
    before = [tree_cpu_seconds(pid) for pid in pids]
    threads = [threading.Thread(target=load, args=(i,)) for i in range(len(endpoints))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = [tree_cpu_seconds(pid) for pid in pids]
    costs = []
    for result, start, end in zip(results, before, after, strict=True):
        if result is None or not result.requests:
            raise RuntimeError("wrk sent no request")
        costs.append((end - start) / result.requests * 1e6)
    return costs


def _scenario(name: str, rename: str) -> Scenario:
    found = next((s for s in SCENARIOS if s.name == name), None)
    if found is None or found.target != "router" or found.workers != 1:
        sys.exit(f"{name}: not a one-worker router scenario")
    return dataclasses.replace(found, name=rename)


def main(argv: Sequence[str] | None = None) -> int:
    """Print each round's CPU per request and the median ratio B / A."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="the baseline scenario (router-canary)")
    parser.add_argument("b", help="the scenario compared with it")
    parser.add_argument("--rounds", type=int, default=16, help="rounds (16)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per round (5)")
    parser.add_argument("--fill", type=float, default=25.0,
                        help="seconds of load before the rounds (25: fills a 100,000 store)")
    args = parser.parse_args(argv)
    # Renamed, so the same scenario can be compared with itself.
    scenarios = [_scenario(args.a, "a"), _scenario(args.b, "b")]
    stack = Stack(Path(tempfile.mkdtemp(prefix="router-paired-")))
    try:
        endpoints = stack.start(scenarios, {})
        pair = [endpoints["a"], endpoints["b"]]
        script = write_script(stack.workdir, "POST", post_body())
        paired_round(pair, script, args.fill)
        ratios = []
        for n in range(args.rounds):
            a, b = paired_round(pair, script, args.seconds)
            ratios.append(b / a)
            print(f"round {n + 1:2}: {args.a} {a:6.1f} us  {args.b} {b:6.1f} us  "
                  f"ratio {b / a:.3f}", flush=True)
        low, _, high = statistics.quantiles(ratios, n=4)
        print(f"CPU/request {args.b} / {args.a}, POST@{CONNECTIONS} each, at the same time: "
              f"median {statistics.median(ratios):.3f} (quartiles {low:.3f}-{high:.3f}, "
              f"{len(ratios)} rounds of {args.seconds:g} s)")
    finally:
        stack.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
