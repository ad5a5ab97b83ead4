"""Where one kind of request spends the router's time: cProfile over N requests, top functions.

Starts the nginx stand-ins and one router (the canary scenario, or ``--scenario``) whose
interpreter profiles only between two signals: warms it up, switches cProfile on, sends
exactly N requests of the method on one keep-alive connection, switches it off and prints
the functions that took the most time of their own (``tottime``), with call counts per
request. cProfile slows Python calls down, so read the list for shares and call counts, and
``bench/instructions.py`` for the cost.

    python bench/profile_requests.py POST          # 2 KB JSON POSTs, N=2000, top 15
    python bench/profile_requests.py GET -n 5000 --top 30
    python bench/profile_requests.py POST --scenario router-canary-truth --warm 110000
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from instructions import send, start_router, stop_router
from scenarios import SCENARIOS
from wrk import post_body

__all__ = ["main"]

_OUT_ENV = "ROUTER_PROFILE_OUT"


def _profiled_router() -> None:
    """The router, profiled from SIGUSR1 to SIGUSR2 (stats written to ``$ROUTER_PROFILE_OUT``)."""
    from router.cli.main import main as router_main

    profile = cProfile.Profile()
    out = os.environ[_OUT_ENV]

    def stop(*_: object) -> None:
        profile.disable()
        profile.dump_stats(out + ".part")
        os.replace(out + ".part", out)  # whole, or not there yet

    signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
    signal.signal(signal.SIGUSR2, stop)
    router_main(sys.argv[2:])


def top(stats_path: Path, requests: int, limit: int) -> str:
    """The ``limit`` functions with the most time of their own, calls shown per request."""
    stream = io.StringIO()
    stats = pstats.Stats(str(stats_path), stream=stream)
    entries = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
    total = sum(value[2] for _, value in entries) or 1.0
    calls = sum(value[1] for _, value in entries)
    lines = [
        # Calls are exact; times are wall clock, which a busy machine inflates.
        f"{calls / requests:.0f} function calls per request",
        f"{'own %':>6} {'calls/req':>9}  function",
    ]
    for (filename, line, name), (_, count, own, _cum, _) in entries[:limit]:
        where = f"{Path(filename).name}:{line}" if line else filename
        lines.append(f"{100 * own / total:6.1f} {count / requests:9.2f}  {name} ({where})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Profile N requests of one method and print the top functions."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("method", choices=["GET", "POST"])
    parser.add_argument("--scenario", default="router-canary")
    parser.add_argument("-n", type=int, default=2000, help="requests profiled (2000)")
    parser.add_argument("--top", type=int, default=15, help="functions listed (15)")
    parser.add_argument(
        "--warm", type=int, default=200,
        help="requests sent before profiling (200); more than a route's feedback.keep "
        "profiles the prediction store once it is full and dropping its oldest",
    )
    args = parser.parse_args(argv)
    scenario = next((s for s in SCENARIOS if s.name == args.scenario), None)
    if scenario is None or scenario.target != "router" or scenario.workers != 1:
        sys.exit(f"{args.scenario}: not a one-worker router scenario")
    workdir = Path(tempfile.mkdtemp(prefix="router-profile-"))
    stats_path = workdir / "requests.prof"
    os.environ[_OUT_ENV] = str(stats_path)
    prefix = [sys.executable, __file__, "--router"]
    service, port, backends = start_router(scenario, workdir, prefix)
    try:
        body = post_body() if args.method == "POST" else b""
        send(port, args.method, args.warm, body)  # warm-up: imports, caches, connections
        os.kill(service.pid, signal.SIGUSR1)
        send(port, args.method, args.n, body)
        os.kill(service.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while not stats_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        print(f"{args.scenario} {args.method}, {args.n} requests under cProfile:")
        print(top(stats_path, args.n, args.top))
    finally:
        stop_router(service, backends, workdir)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--router"]:
        _profiled_router()
    else:
        sys.exit(main())
