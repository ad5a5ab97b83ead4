"""What mirroring costs the primary: a direct route against a shadow route, side by side.

Starts a fast primary (uvicorn answering a small Open Inference Protocol V2
JSON) and a shadow that sleeps 1 s before answering, then two routers on
127.0.0.1: one with a direct route to the primary, one with a shadow route
(percent 100, max_in_flight 64) mirroring every request to the slow shadow.
Two measurements, each in rounds interleaved between the routers, same POST:

* saturation: wrk, closed loop at 64 connections. Its requests/s ratio is the
  throughput target (within 15 %). Its p99 is printed but not judged: at
  saturation it is queueing noise (ratios of 0.65 to 4.2 between runs).
* open loop: ``openloop.py`` (wrk2-style, in its own process) sends at a fixed
  rate below saturation (40 % of the direct route's median saturation req/s,
  or ``--rate``), latency counted from each request's scheduled send time.
  Its p99 ratio is the latency target (within 5 %).

Medians over the rounds are printed with their ratios, plus the shadow route's
own counters (mirrors beyond the 64 in flight are dropped and counted, never
queued).

Run ``python bench/shadow_bench.py [--duration S] [--connections N] [--rounds R]
[--open-rounds N] [--rate R]``; ``bench/run.py`` may call ``run_shadow_bench``.
Every process started is stopped at the end, on errors and on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import yaml
from openloop import OpenLoopResult, run_openloop
from procs import Service, free_port, http_status, install_sigterm_handler, tool_path, wait_for
from stack import router_command
from wrk import WrkResult, post_body, run_wrk, write_script, wrk_version

__all__ = ["main", "run_shadow_bench"]

REQUEST_PATH = "/v2/models/bench/infer"
SHADOW_DELAY_S = 1.0
MAX_IN_FLIGHT = 64
ANSWER = (
    b'{"model_name":"bench","id":"1","outputs":[{"name":"probabilities","shape":[1,3],'
    b'"datatype":"FP32","data":[0.1,0.7,0.2]}]}'
)
TARGETS = {"p99_ratio_max": 1.05, "rps_ratio_min": 0.85}
#: Open-loop rate as a fraction of the direct route's saturation throughput.
OPEN_RATE_FRACTION = 0.4
OPEN_WARMUP_S = 1.0


def model_app(delay_s: float) -> Callable[..., Any]:
    """A raw ASGI model stand-in: reads the body, waits ``delay_s``, answers ``ANSWER``."""
    import asyncio

    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        if delay_s:
            await asyncio.sleep(delay_s)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": ANSWER})

    return app


def serve_backend(port: int, delay_s: float) -> None:
    """Serve ``model_app`` with uvicorn (httptools, uvloop) until terminated."""
    import uvicorn

    uvicorn.run(
        model_app(delay_s), host="127.0.0.1", port=port, log_level="warning",
        access_log=False, lifespan="off", http="httptools", loop="uvloop",
        backlog=4096, timeout_keep_alive=30,
    )


def start_backend(name: str, delay_s: float, workdir: Path) -> tuple[Service, str]:
    """This script as a backend process; returns it and its URL once it answers."""
    port = free_port()
    cmd = [sys.executable, __file__, "--serve-backend", str(delay_s), "--port", str(port)]
    service = Service(name, cmd, workdir / f"{name}.log").start()
    url = f"http://127.0.0.1:{port}"
    wait_for(name, lambda: service.check_alive() and http_status(url, 3.0) == 200)
    return service, url


def start_router(
    name: str, strategy: dict[str, Any], urls: dict[str, str], workdir: Path
) -> tuple[Service, str, str]:
    """A router with one route ``bench`` using ``strategy``; returns it, its URL and admin URL."""
    port, admin_port = free_port(), free_port()
    config = {
        "admin": {"listen": f"127.0.0.1:{admin_port}"},
        "state": {"store": "memory"},
        "backends": {
            backend: {"url": url, "max_connections": 256, "timeout": {"read": "10s"}}
            for backend, url in urls.items()
        },
        "routes": [{"name": "bench", "match": {"path_prefix": "/"}, "strategy": strategy}],
    }
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [
        *router_command(), "serve", "--config", str(path), "--log-format", "json",
        "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin_port}",
    ]
    service = Service(name, cmd, workdir / f"{name}.log").start()
    admin = f"http://127.0.0.1:{admin_port}"
    url = f"http://127.0.0.1:{port}{REQUEST_PATH}"
    wait_for(name, lambda: service.check_alive() and http_status(f"{admin}/readyz") == 200, 30)
    return service, url, admin


def _summary(results: list[WrkResult]) -> dict[str, float]:
    """Medians over rounds of requests/s, p50 and p99 (ms), and the total errors."""
    return {
        "rps": round(statistics.median(r.rps for r in results), 1),
        "p50_ms": round(statistics.median(r.p50_ms for r in results), 3),
        "p99_ms": round(statistics.median(r.p99_ms for r in results), 3),
        "errors": sum(r.errors for r in results),
    }


def _open_summary(results: list[OpenLoopResult]) -> dict[str, Any]:
    """Medians over open-loop rounds of the latency percentiles (ms), plus totals and flags."""
    keys = ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "achieved_rps", "lag_mean_ms")
    return {
        **{k: round(statistics.median(float(getattr(r, k)) for r in results), 3) for k in keys},
        "max_ms": max(r.max_ms for r in results),
        "non_2xx": sum(r.non_2xx for r in results),
        "socket_errors": sum(r.socket_errors + r.timeouts for r in results),
        "stalled": sum(r.stalled for r in results),
        "kept_up": all(r.kept_up for r in results),
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


def _open_loop(
    targets: dict[str, tuple[str, str]], rate: float, duration_s: float, rounds: int
) -> dict[str, Any]:
    """Interleaved fixed-rate rounds against each router, with medians and ratios."""
    runs: dict[str, list[OpenLoopResult]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, (url, _) in targets.items():
            runs[name].append(run_openloop(
                url, rate, duration_s, "POST", post_body(512),
                {"Content-Type": "application/json"}, warmup_s=OPEN_WARMUP_S,
            ))
    direct, mirrored = _open_summary(runs["direct"]), _open_summary(runs["shadow"])
    again = _open_summary(runs["direct-again"])
    keys = ("p50_ms", "p99_ms", "p999_ms")
    return {
        "rate": rate, "duration_s": duration_s, "warmup_s": OPEN_WARMUP_S, "rounds": rounds,
        "direct": direct, "shadow": mirrored, "direct_again": again,
        "ratios": {k: _ratio(mirrored[k], direct[k]) for k in keys},
        "noise_ratios": {k: _ratio(again[k], direct[k]) for k in keys},
        "runs": {name: [asdict(r) for r in results] for name, results in runs.items()},
    }


def run_shadow_bench(
    duration_s: float, connections: int, rounds: int = 3, *,
    open_rounds: int = 3, rate: float | None = None,
) -> dict[str, Any]:
    """Measure the direct and shadow routers in interleaved rounds; return medians.

    ``rounds`` of wrk at saturation, then ``open_rounds`` open-loop rounds at
    ``rate`` req/s (default: 40 % of the direct route's saturation median).
    """
    if tool_path("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    services: list[Service] = []
    try:
        with tempfile.TemporaryDirectory(prefix="shadow-bench-") as tmp:
            workdir = Path(tmp)
            primary, primary_url = start_backend("primary", 0.0, workdir)
            services.append(primary)
            shadow, shadow_url = start_backend("shadow", SHADOW_DELAY_S, workdir)
            services.append(shadow)
            urls = {"primary": primary_url, "slow-shadow": shadow_url}
            strategies: dict[str, dict[str, Any]] = {
                "direct": {"type": "direct", "backend": "primary"},
                # The same direct route in a second router, open loop only: the A/A
                # difference says how large a ratio this machine's noise makes by itself.
                "direct-again": {"type": "direct", "backend": "primary"},
                "shadow": {
                    "type": "shadow", "primary": "primary", "shadows": ["slow-shadow"],
                    "percent": 100, "max_in_flight": MAX_IN_FLIGHT,
                },
            }
            targets: dict[str, tuple[str, str]] = {}
            for name, strategy in strategies.items():
                service, url, admin = start_router(f"router-{name}", strategy, urls, workdir)
                services.append(service)
                targets[name] = (url, admin)
            script = write_script(workdir, "POST", post_body(512))
            for url, _ in targets.values():  # warm-up: connections, pools, first-call paths
                run_wrk(url, script, connections, 1.0)
            measured: dict[str, list[WrkResult]] = {"direct": [], "shadow": []}
            for _ in range(rounds):
                for name, results in measured.items():
                    results.append(run_wrk(targets[name][0], script, connections, duration_s))
            open_rate = rate or max(10.0, round(
                OPEN_RATE_FRACTION * _summary(measured["direct"])["rps"], -1))
            open_loop = (
                _open_loop(targets, open_rate, duration_s, open_rounds) if open_rounds else None
            )
            status = httpx.get(f"{targets['shadow'][1]}/admin/status", timeout=5, trust_env=False)
            shadow_stats = status.json()["routes"]["bench"].get("shadow", {})
    finally:
        for service in reversed(services):
            service.stop()
    direct, mirrored = _summary(measured["direct"]), _summary(measured["shadow"])
    ratios = {key: _ratio(mirrored[key], direct[key]) for key in ("rps", "p50_ms", "p99_ms")}
    # The p99 target is judged open loop; saturation's p99 only when no open rounds ran.
    p99_ratio = open_loop["ratios"]["p99_ms"] if open_loop else ratios["p99_ms"]
    return {
        "wrk": wrk_version(),
        "duration_s": duration_s,
        "connections": connections,
        "rounds": rounds,
        "direct": direct,
        "shadow": mirrored,
        "ratios": ratios,
        "targets_met": {
            "p99_within_5pct": p99_ratio is not None and p99_ratio <= TARGETS["p99_ratio_max"],
            "rps_within_15pct": ratios["rps"] is not None
            and ratios["rps"] >= TARGETS["rps_ratio_min"],
        },
        "shadow_stats": shadow_stats,
        "open_loop": open_loop,
    }


def _render_open(loop: dict[str, Any]) -> list[str]:
    """The open-loop table: latency medians per route, their ratios, the generator's health."""
    d, s, r = loop["direct"], loop["shadow"], loop["ratios"]
    lines = [
        f"open loop at {loop['rate']:.0f} req/s (latency from the scheduled send), "
        f"{loop['rounds']} x {loop['duration_s']:g}s per route after {loop['warmup_s']:g}s "
        "warm-up (medians)",
        f"{'':10}{'direct':>12}{'shadow':>12}{'ratio':>9}",
    ]
    for key, label in (("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("p999_ms", "p99.9 ms")):
        ratio = f"{r[key]:>9.3f}" if r[key] is not None else f"{'-':>9}"
        lines.append(f"{label:10}{d[key]:>12.3f}{s[key]:>12.3f}{ratio}")
    lines.append(f"{'req/s':10}{d['achieved_rps']:>12.0f}{s['achieved_rps']:>12.0f}")
    for key in ("non_2xx", "socket_errors"):
        lines.append(f"{key:14}{d[key]:>8}{s[key]:>12}")
    noise = loop["noise_ratios"]
    lines.append(
        f"A/A noise (a second router, same direct route, same rounds): p50 ratio "
        f"{noise['p50_ms']:.3f}, p99 ratio {noise['p99_ms']:.3f}"
    )
    lines.append(
        f"generator: send lag {d['lag_mean_ms']:.2f} / {s['lag_mean_ms']:.2f} ms mean "
        f"(in every latency), stalls {d['stalled']} / {s['stalled']}"
    )
    if not (d["kept_up"] and s["kept_up"]):
        lines.append("!! the generator did NOT keep up with the rate in some round: "
                     "open-loop latencies are not trustworthy")
    return lines


def render(result: dict[str, Any]) -> str:
    """The result as two small tables with ratios and the shadow route's counters."""
    d, s, r = result["direct"], result["shadow"], result["ratios"]
    loop = result.get("open_loop")
    lines = [
        f"saturation: {result['wrk']}, {result['connections']} connections, "
        f"{result['rounds']} x {result['duration_s']:g}s per route (medians)",
        f"{'':10}{'direct':>12}{'shadow':>12}{'ratio':>9}",
        f"{'req/s':10}{d['rps']:>12.0f}{s['rps']:>12.0f}{r['rps']:>9.3f}",
        f"{'p50 ms':10}{d['p50_ms']:>12.3f}{s['p50_ms']:>12.3f}{r['p50_ms']:>9.3f}",
        f"{'p99 ms':10}{d['p99_ms']:>12.3f}{s['p99_ms']:>12.3f}{r['p99_ms']:>9.3f}"
        + ("  (noise at saturation: not judged)" if loop else ""),
        f"{'errors':10}{d['errors']:>12}{s['errors']:>12}",
    ]
    if loop:
        lines += ["", *_render_open(loop)]
    met = result["targets_met"]
    lines.append(
        f"targets: p99 within 5 % ({'open-loop' if loop else 'saturation'} p99) "
        f"{'ok' if met['p99_within_5pct'] else 'MISSED'}, "
        f"throughput within 15 % (saturation req/s) "
        f"{'ok' if met['rps_within_15pct'] else 'MISSED'}"
    )
    stats = result["shadow_stats"]
    keys = ("mirrored", "matched", "mismatched", "errors", "dropped", "skipped")
    lines.append("shadow route: " + ", ".join(f"{k} {stats.get(k)}" for k in keys))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the benchmark (or serve a backend), print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (5)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--open-rounds", type=int, default=3,
                        help="open-loop rounds below saturation, 0 to skip (3)")
    parser.add_argument("--rate", type=float,
                        help="open-loop req/s (default: 40 %% of direct's saturation req/s)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    parser.add_argument("--serve-backend", type=float, metavar="DELAY_S", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_backend is not None:
        serve_backend(args.port, args.serve_backend)
        return 0
    install_sigterm_handler()
    result = run_shadow_bench(
        args.duration, args.connections, args.rounds, open_rounds=args.open_rounds, rate=args.rate,
    )
    print(render(result))
    if args.json:
        import json

        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
