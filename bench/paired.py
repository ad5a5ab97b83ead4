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

__all__ = ["main", "paired_round", "run_paired"]

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


def run_paired(
    a: str, b: str, rounds: int, seconds: float, fill: float = 25.0,
    target: float | None = None,
) -> dict[str, object]:
    """Start ``a`` and ``b``, fill them, then ``rounds`` paired rounds, printed as they go;
    the per-round figures and the median ratio B / A (for the JSON results)."""
    # Renamed, so the same scenario can be compared with itself.
    scenarios = [_scenario(a, "a"), _scenario(b, "b")]
    stack = Stack(Path(tempfile.mkdtemp(prefix="router-paired-")))
    try:
        endpoints = stack.start(scenarios, {})
        pair = [endpoints["a"], endpoints["b"]]
        script = write_script(stack.workdir, "POST", post_body())
        paired_round(pair, script, fill)
        costs = []
        for n in range(rounds):
            cost_a, cost_b = paired_round(pair, script, seconds)
            costs.append((cost_a, cost_b))
            print(f"  round {n + 1:2}: {a} {cost_a:6.1f} us  {b} {cost_b:6.1f} us  "
                  f"ratio {cost_b / cost_a:.3f}", flush=True)
    finally:
        stack.close()
    ratios = [cost_b / cost_a for cost_a, cost_b in costs]
    median = statistics.median(ratios)
    low, _, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (median,) * 3
    verdict = "" if target is None else (
        f"  (target <= {target:g}: {'met' if median <= target else 'NOT met'})"
    )
    print(f"  CPU/request {b} / {a}, POST@{CONNECTIONS} each, at the same time: median "
          f"{median:.3f} (quartiles {low:.3f}-{high:.3f}, {len(ratios)} rounds of "
          f"{seconds:g} s){verdict}")
    return {"a": a, "b": b, "costs_us": costs, "median_ratio": median, "target": target}


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
    run_paired(args.a, args.b, args.rounds, args.seconds, args.fill)
    return 0


if __name__ == "__main__":
    sys.exit(main())
