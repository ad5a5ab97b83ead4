"""``make bench``: the router against a direct call, nginx and Traefik as the same proxy.

Starts two nginx model stand-ins, nginx and Traefik as 90/10 proxies, and the router
scenarios of ``scenarios.py``, all on 127.0.0.1, then loads each with wrk in
interleaved rounds and prints medians, the comparisons with the issue's
targets, and (with ``--soak N``) the router's RSS over N requests. Results are
also written to ``bench/results/latest.json``. A route-count sweep follows
(``route_sweep.py``; ``--routes-only`` runs it alone), after the shadow, streaming and
paired (``paired.py``: two routers loaded at the same time) comparisons. Everything
started is stopped at the end, on errors and on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from added_latency import measure_added_latency, render_added_latency
from cpu import metered
from nginx import ECHO_MODULE, nginx_version
from procs import install_sigterm_handler, rss_bytes, tool_path
from pyspy import ensure_py_spy, record, top_frames
from report import (
    Measurement,
    assess,
    render_comparisons,
    render_cpu,
    render_table,
    render_worker_ceiling,
    summarize,
    write_json,
)
from route_sweep import CONNECTIONS, SweepRow, run_route_sweep
from route_sweep import render as render_sweep
from scenarios import BACKENDS, COMPARISONS, LOADS, SCENARIOS, Scenario
from soak import MIB, soak_router
from stack import Endpoint, Stack
from traefik import traefik_version
from wrk import post_body, run_wrk, write_script, wrk_version

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    names = ", ".join(s.name for s in SCENARIOS)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--duration", type=float, default=5.0, help="seconds per measurement (5)")
    add("--rounds", type=int, default=3, help="interleaved rounds; medians are reported (3)")
    add("--quick", action="store_true", help="1 round of 3 s")
    add("--soak", type=int, default=0, metavar="N",
        help="then send N requests through the router and report its RSS")
    add("--only", action="append", default=[], metavar="SCENARIO",
        help=f"run only these (repeatable or comma-separated): {names}")
    add("--profile", action="store_true",
        help="sample the router with py-spy under load (flamegraph in bench/results)")
    add("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    add("--no-routes", dest="routes", action="store_false",
        help="skip the route-count sweep (1 to 10,000 routes); it runs by default unless "
        "--only is given")
    add("--routes-only", action="store_true",
        help="run only the route-count sweep (bench/route_sweep.py)")
    add("--route-store", choices=("memory", "file"), default="memory",
        help="the routers' state store in the route-count sweep (memory)")
    add("--no-shadow", dest="shadow", action="store_false",
        help="skip the shadow comparison (direct vs 100%% mirroring to a 1 s shadow); "
        "it runs by default unless --only is given")
    add("--no-streams", dest="streams", action="store_false",
        help="skip the streaming comparison (event gaps at 100 concurrent SSE streams, direct "
        "vs through the router); it runs by default unless --only is given")
    add("--no-paired", dest="paired", action="store_false",
        help="skip the paired comparison (feedback+drift against none, both routers loaded "
        "at the same time: bench/paired.py); it runs by default unless --only is given")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration = 1, 3.0
    if args.only:
        args.shadow = args.routes = args.streams = args.paired = False
    return args


def ensure_tools() -> None:
    """Install nginx (with the echo module, for slow stand-ins) and wrk from apt when missing."""
    needs_echo = any(b.delay > 0 for b in BACKENDS.values())
    if tool_path("nginx") and tool_path("wrk") and (ECHO_MODULE.exists() or not needs_echo):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("installing nginx-light and wrk with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    install = [*sudo, "apt-get", "install", "-y", "-qq", "nginx-light", "wrk"]
    subprocess.run(install, check=True, env=env)


def select(only: Sequence[str]) -> list[Scenario]:
    """The scenarios named by ``--only`` (all when none), in declaration order."""
    wanted = {name.strip() for item in only for name in item.split(",") if name.strip()}
    unknown = wanted - {s.name for s in SCENARIOS}
    if unknown:
        sys.exit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return [s for s in SCENARIOS if not wanted or s.name in wanted]


def measure(
    scenarios: Sequence[Scenario], endpoints: dict[str, Endpoint], scripts: dict[str, Path],
    rounds: int, duration: float, stand_ins: Sequence[int],
) -> list[Measurement]:
    """Every (scenario, load) once per round, interleaved, the scenario order rotating per round.

    Each run also records the CPU spent by the target, the stand-ins (``stand_ins``: pids)
    and wrk.
    """
    measurements = []
    for rnd in range(rounds):
        for load in LOADS:
            names = [s.name for s in scenarios if s.runs(load) and s.name in endpoints]
            shift = rnd % len(names) if names else 0
            for name in names[shift:] + names[:shift]:
                endpoint = endpoints[name]
                result, cpu = metered(
                    partial(run_wrk, endpoint.url, scripts[load.method], load.connections,
                            duration),
                    endpoint.service.pid if endpoint.service else None,
                    stand_ins, time.monotonic,
                )
                measurements.append(Measurement(name, load, rnd, result, cpu))
                flag = f"  ERRORS: {result.errors}" if result.errors else ""
                print(f"  round {rnd + 1}/{rounds} {load.key:<8} {name:<18} "
                      f"{result.rps:>9,.0f} req/s  p50 {result.p50_ms:.2f} ms{flag}", flush=True)
    return measurements


def canary_share(admin_url: str) -> str:
    """The candidate's share of requests according to the router's own metrics."""
    try:
        text = httpx.get(f"{admin_url}/metrics", timeout=5, trust_env=False).text
    except httpx.HTTPError as exc:
        return f"metrics unreachable ({exc!r})"
    counts: dict[str, float] = {}
    for m in re.finditer(r'^router_requests_total\{([^}]*)\} ([0-9.e+]+)$', text, re.M):
        variant = re.search(r'variant="([^"]*)"', m.group(1))
        key = variant.group(1) if variant else "?"
        counts[key] = counts.get(key, 0.0) + float(m.group(2))
    total = sum(counts.values())
    if not total:
        return "router_requests_total not found in /metrics"
    shares = ", ".join(f"{k} {v / total:.1%}" for k, v in sorted(counts.items()))
    return f"{shares} of {total:,.0f}"


def request_log_lines(path: Path) -> int:
    """Lines of the router's output that are request log records."""
    with path.open("rb") as log:
        return sum(1 for line in log if re.search(rb'"event": ?"request"', line))


def profile(endpoint: Endpoint, scripts: dict[str, Path], duration: float) -> dict[str, str]:
    """Flamegraph SVG and a top list of the router's CPU under GET@64 load."""
    py_spy = ensure_py_spy()
    if py_spy is None or endpoint.service is None:
        print("py-spy unavailable: no profile")
        return {}
    seconds = max(duration, 5.0)
    svg, raw = RESULTS / "profile.svg", RESULTS / "profile.txt"
    RESULTS.mkdir(parents=True, exist_ok=True)
    for output, fmt in ((svg, "flamegraph"), (raw, "raw")):
        ok = record(py_spy, endpoint.service.pid, output, fmt, seconds,
                    lambda: run_wrk(endpoint.url, scripts["GET"], 64, seconds))
        if not ok:
            return {}
    print(f"\nProfile of the router under GET@64 (flamegraph: {svg}):")
    print(top_frames(raw))
    return {"svg": str(svg), "raw": str(raw)}


def header(
    args: argparse.Namespace, scenarios: Sequence[Scenario], stack: Stack,
    endpoints: dict[str, Endpoint],
) -> None:
    """What is being measured and how."""
    print(f"\nrouter bench: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{nginx_version()}, {wrk_version()}; wrk 2 threads, {args.duration:g} s x "
          f"{args.rounds} round(s), POST body {len(post_body())} B JSON")
    print(f"backends: {', '.join(f'{n} {i.url}' for n, i in stack.backends.items())}")
    for scenario in scenarios:
        endpoint = endpoints.get(scenario.name)
        where = endpoint.url if endpoint else "NOT STARTED"
        print(f"  {scenario.name:<18} {scenario.description}: {where}")
        if endpoint and endpoint.log_path:
            print(f"  {'':<18} request log (JSON lines) goes to the file {endpoint.log_path}")
    if stack.traefik is not None:
        print(f"traefik {traefik_version(stack.traefik.exe)}: GOMAXPROCS=1, access log off")
    print("nginx proxy: access_log off; router: metrics and JSON request log on")
    busy_warning()
    print()


def busy_warning() -> None:
    """Say so when other work competes for the CPU: the numbers are then noise."""
    load1 = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    if load1 > cores / 2:
        print(f"!! load average {load1:.1f} on {cores} cores before this run's own load: "
              "something else is busy, expect noisy numbers", file=sys.stderr)


def report_routers(endpoints: dict[str, Endpoint], rss_before: dict[str, int]) -> None:
    """Per router: RSS before/after the rounds, the split its metrics saw, its request log."""
    for name, endpoint in endpoints.items():
        if endpoint.service and endpoint.admin_url and endpoint.log_path:
            rss = rss_bytes(endpoint.service.pid)
            seen = "metrics" if endpoint.workers == 1 else "metrics of the worker that answered"
            print(f"  {name}: RSS {rss_before[name] / MIB:.1f} -> {rss / MIB:.1f} MiB; "
                  f"{seen}: {canary_share(endpoint.admin_url)}; "
                  f"request log: {request_log_lines(endpoint.log_path):,} lines")


def bench(args: argparse.Namespace, scenarios: Sequence[Scenario], stack: Stack) -> int:
    """Start, warm up, measure, report; the caller stops the stack."""
    failed: dict[str, str] = {}
    endpoints = stack.start(scenarios, failed)
    header(args, scenarios, stack, endpoints)
    scripts = {
        "GET": write_script(stack.workdir, "GET"),
        "POST": write_script(stack.workdir, "POST", post_body()),
    }
    for endpoint in endpoints.values():  # warm-up: connections, lazy imports, caches
        run_wrk(endpoint.url, scripts["GET"], 16, 1.0)
    rss_before = {n: rss_bytes(e.service.pid) for n, e in endpoints.items() if e.service}
    stand_ins = [i.service.pid for i in stack.backends.values() if i.service is not None]
    measurements = measure(
        scenarios, endpoints, scripts, args.rounds, args.duration, stand_ins
    )
    summaries = summarize(measurements)
    verdicts = assess(COMPARISONS, summaries)
    print(f"\nMedians over {args.rounds} round(s) of {args.duration:g} s:\n")
    print(render_table(summaries))
    print("\nComparisons (requests/s ratios at 64 connections, p50 difference at 16):")
    print(render_comparisons(verdicts) or "  (none: a side is missing)")
    print(render_worker_ceiling(
        summaries, "router-canary", "router-canary-w2", os.cpu_count() or 1
    ))
    print("\nCPU per request during the rounds (medians; 'target' is the router's workers or "
          "nginx as the proxy):\n")
    print(render_cpu(summaries))
    report_routers(endpoints, rss_before)
    added = None
    if "nginx" in endpoints and "router-canary" in endpoints:
        saturation = {s.method: s.rps for s in summaries
                      if s.scenario == "router-canary" and s.connections == 64}
        print("\nLatency at half the router's saturation rate, open loop (latency from the "
              "scheduled send; medians):")
        added = measure_added_latency(
            endpoints["router-canary"].url, endpoints["nginx"].url, saturation,
            args.duration, args.rounds,
        )
        print(render_added_latency(added))
    payload: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": vars(args),
        "cores": os.cpu_count(),
        "loadavg_at_end": os.getloadavg()[0],
        "failed": failed,
        "summaries": summaries,
        "added_latency": added,
        "comparisons": [
            {"label": v.comparison.label, "value": v.value,
             "target": v.comparison.target, "ok": v.ok}
            for v in verdicts
        ],
        "measurements": [
            {"scenario": m.scenario, "load": m.load.key, "round": m.round, "rps": m.result.rps,
             "p50_ms": m.result.p50_ms, "p99_ms": m.result.p99_ms, "errors": m.result.errors}
            for m in measurements
        ],
    }
    routers = [s.name for s in scenarios if s.target == "router" and s.name in endpoints]
    main_router = "router-canary" if "router-canary" in routers else next(iter(routers), None)
    if (args.soak or args.profile) and main_router is None:
        print("\n!! --soak/--profile need a router scenario: skipped", file=sys.stderr)
    if args.soak and main_router:
        endpoint = endpoints[main_router]
        assert endpoint.service is not None
        rps = next((s.rps for s in summaries if s.scenario == main_router), 1000.0)
        assert endpoint.admin_url is not None
        print(f"\nSoak: {args.soak:,} requests through {main_router} (GET and POST chunks in turn, "
              "64 connections, labels for 2,000 of each POST chunk's requests; warm-up: until "
              "every feedback store holds its keep)")
        soak = soak_router(main_router, endpoint.url, endpoint.admin_url, endpoint.service.pid,
                           stack.workdir, args.soak, rps)
        print(soak.render())
        payload["soak"] = soak
    if args.profile and main_router:
        payload["profile"] = profile(endpoints[main_router], scripts, args.duration)
    if args.shadow:
        # The shadow comparison starts its own backends and routers: stop this run's first,
        # so that their idle timers (health checks, analysis ticks, log flushes) add no noise.
        stack.close()
        from shadow_bench import render as render_shadow
        from shadow_bench import run_shadow_bench

        print("\nShadow: the primary with and without 100 % mirroring to a shadow that sleeps 1 s")
        shadow = run_shadow_bench(args.duration, 64, args.rounds)
        print(render_shadow(shadow))
        payload["shadow"] = shadow
    if args.streams:
        stack.close()
        from stream_gaps import render as render_gaps
        from stream_gaps import run_stream_gaps

        print("\nStreaming: gaps between server-sent events at 100 concurrent streams")
        gaps = run_stream_gaps(rounds=args.rounds)
        print(render_gaps(gaps))
        payload["streams"] = gaps
    if args.paired:
        stack.close()
        from paired import run_paired

        # The sequential comparison above swings by 10-40 % with the machine; this one
        # loads both routers at once, so both see the same machine, round after round.
        print("\nAt the same time: CPU/request with feedback (100,000 kept) and drift at 0.1, "
              "against none")
        payload["paired"] = run_paired(
            "router-canary", "router-canary-truth", rounds=4 * args.rounds,
            seconds=args.duration, target=1.05,
        )
    if args.routes:
        payload["routes"] = route_sweep(stack.workdir / "routes", args)
    write_json(RESULTS / "latest.json", payload)
    print(f"\nresults: {RESULTS / 'latest.json'}")
    for name, reason in failed.items():
        print(f"\n!! {name} DID NOT START, not measured: {reason}", file=sys.stderr)
    errored = any(s.socket_errors or s.non_2xx for s in summaries)
    if errored:
        print("\n!! SOME REQUESTS FAILED: the numbers above are not a clean measurement",
              file=sys.stderr)
    return 1 if failed or errored else 0


def route_sweep(workdir: Path, args: argparse.Namespace) -> list[SweepRow]:
    """The route-count sweep, printed; its rows for the JSON results."""
    print(f"\nRoute-count sweep: canary routes /m0/, /m1/ ... one line each, wrk GET@"
          f"{CONNECTIONS} on the last route in the file; medians over {args.rounds} round(s) "
          f"of {args.duration:g} s; {args.route_store} state store; load average before it "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count() or 1} cores")
    busy_warning()
    workdir.mkdir(parents=True, exist_ok=True)
    rows = run_route_sweep(workdir, args.duration, args.rounds, store=args.route_store)
    print(render_sweep(rows))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit status 1 when a scenario failed or any request errored."""
    args = parse_args(argv)
    install_sigterm_handler()
    ensure_tools()
    scenarios = select(args.only)
    stack = Stack(Path(tempfile.mkdtemp(prefix="router-bench-")))
    try:
        if args.routes_only:
            rows = route_sweep(stack.workdir / "routes", args)
            write_json(RESULTS / "routes.json", {"args": vars(args), "routes": rows})
            return 1 if any(row.errors for row in rows) else 0
        return bench(args, scenarios, stack)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        stack.close()
        if args.keep:
            print(f"kept {stack.workdir}")
        else:
            shutil.rmtree(stack.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
