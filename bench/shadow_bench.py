"""What mirroring costs the primary: a direct route against a shadow route, side by side.

Starts a fast primary (uvicorn answering a small Open Inference Protocol V2
JSON) and a shadow that sleeps 1 s before answering, then two routers on
127.0.0.1: one with a direct route to the primary, one with a shadow route
(percent 100, max_in_flight 64) mirroring every request to the slow shadow.
wrk loads each in interleaved rounds with the same POST; the medians of the
primary's p50/p99 and requests/s are printed with their ratios (targets: p99
within 5 %, throughput within 15 %), plus the shadow route's own counters
(mirrors beyond the 64 in flight are dropped and counted, never queued).

Run ``python bench/shadow_bench.py [--duration S] [--connections N] [--rounds R]``;
``bench/run.py`` may call ``run_shadow_bench``. Every process started is
stopped at the end, on errors and on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml
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


def run_shadow_bench(duration_s: float, connections: int, rounds: int = 3) -> dict[str, Any]:
    """Measure the direct and shadow routers in ``rounds`` interleaved rounds; return medians."""
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
            measured: dict[str, list[WrkResult]] = {name: [] for name in targets}
            for _ in range(rounds):
                for name, (url, _) in targets.items():
                    measured[name].append(run_wrk(url, script, connections, duration_s))
            status = httpx.get(f"{targets['shadow'][1]}/admin/status", timeout=5, trust_env=False)
            shadow_stats = status.json()["routes"]["bench"].get("shadow", {})
    finally:
        for service in reversed(services):
            service.stop()
    direct, mirrored = _summary(measured["direct"]), _summary(measured["shadow"])
    ratios = {
        key: round(mirrored[key] / direct[key], 3) if direct[key] else None
        for key in ("rps", "p50_ms", "p99_ms")
    }
    return {
        "wrk": wrk_version(),
        "duration_s": duration_s,
        "connections": connections,
        "rounds": rounds,
        "direct": direct,
        "shadow": mirrored,
        "ratios": ratios,
        "targets_met": {
            "p99_within_5pct": ratios["p99_ms"] is not None
            and ratios["p99_ms"] <= TARGETS["p99_ratio_max"],
            "rps_within_15pct": ratios["rps"] is not None
            and ratios["rps"] >= TARGETS["rps_ratio_min"],
        },
        "shadow_stats": shadow_stats,
    }


def render(result: dict[str, Any]) -> str:
    """The result as a small table with ratios and the shadow route's counters."""
    d, s, r = result["direct"], result["shadow"], result["ratios"]
    lines = [
        f"{result['wrk']}, {result['connections']} connections, "
        f"{result['rounds']} x {result['duration_s']:g}s per route (medians)",
        f"{'':10}{'direct':>12}{'shadow':>12}{'ratio':>9}",
        f"{'req/s':10}{d['rps']:>12.0f}{s['rps']:>12.0f}{r['rps']:>9.3f}",
        f"{'p50 ms':10}{d['p50_ms']:>12.3f}{s['p50_ms']:>12.3f}{r['p50_ms']:>9.3f}",
        f"{'p99 ms':10}{d['p99_ms']:>12.3f}{s['p99_ms']:>12.3f}{r['p99_ms']:>9.3f}",
        f"{'errors':10}{d['errors']:>12}{s['errors']:>12}",
    ]
    met = result["targets_met"]
    lines.append(
        f"targets: p99 within 5 % {'ok' if met['p99_within_5pct'] else 'MISSED'}, "
        f"throughput within 15 % {'ok' if met['rps_within_15pct'] else 'MISSED'}"
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
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    parser.add_argument("--serve-backend", type=float, metavar="DELAY_S", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_backend is not None:
        serve_backend(args.port, args.serve_backend)
        return 0
    install_sigterm_handler()
    result = run_shadow_bench(args.duration, args.connections, args.rounds)
    print(render(result))
    if args.json:
        import json

        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
