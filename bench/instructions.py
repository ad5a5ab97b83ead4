"""Instructions per request, counted by callgrind: a cost figure a busy machine cannot blur.

Wall-clock benches on a shared 2-core machine swing by tens of percent; the
instructions one request costs the router do not. This starts two nginx stand-ins
and one router (the bench's canary scenario, or any other with ``--scenario``)
under ``valgrind --tool=callgrind`` with instrumentation off, warms it up, then
for each method: zeroes the counters, sends exactly N requests on one keep-alive
connection, and reads the router's instruction total. The instructions its timers
spend while idle (controller ticks, log flushes) are measured over an idle spell
and subtracted per second of wall time.

    python bench/instructions.py                 # canary route, GET and POST (2 KB JSON), N=400
    python bench/instructions.py --annotate POST # also the top functions of the POST run
    python bench/instructions.py --routes 10000  # the route sweep's file, its last route
    python bench/instructions.py --scenario router-canary-truth --warm 110000  # store full
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from nginx import NginxInstance, render_backend
from procs import Service, free_port, http_status, wait_for
from route_sweep import last_path, render_routes
from scenarios import BACKENDS, SCENARIOS, Scenario
from stack import REQUEST_PATH, render_router_config, router_command
from wrk import post_body

__all__ = ["count", "main", "send", "start_router", "stop_router"]


@dataclass(frozen=True, slots=True)
class Count:
    """Instructions of ``requests`` requests, net of the idle rate over ``wall_s``."""

    method: str
    requests: int
    instructions: int
    idle_per_s: float
    wall_s: float
    dump: Path

    @property
    def per_request(self) -> float:
        """Net instructions per request."""
        net = self.instructions - self.idle_per_s * self.wall_s
        return net / self.requests


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def _dump_total(pid: int, outdir: Path, before: set[Path]) -> tuple[int, Path]:
    """Dump the counters and return the new dump's instruction total and path."""
    _control(pid, "--dump")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = sorted(set(outdir.glob("callgrind.out.*")) - before)
        for path in new:
            match = re.search(r"^(?:summary|totals): (\d+)", path.read_text(), re.M)
            if match:
                return int(match.group(1)), path
        time.sleep(0.2)
    raise RuntimeError("callgrind dump did not appear")


def send(port: int, method: str, n: int, body: bytes, path: str = REQUEST_PATH) -> None:
    """Send ``n`` requests of ``method`` on one keep-alive connection; each must answer 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"} if method == "POST" else {}
    for _ in range(n):
        conn.request(method, path, body=body if method == "POST" else None,
                     headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} answered {response.status}")
    conn.close()


def count(
    pid: int, port: int, outdir: Path, method: str, n: int, idle_s: float,
    path: str = REQUEST_PATH,
) -> Count:
    """Instructions of ``n`` requests of ``method``, net of the idle rate measured first."""
    before = set(outdir.glob("callgrind.out.*"))
    _control(pid, "--zero")
    time.sleep(idle_s)  # an idle spell of known length: the timers' own cost
    idle, idle_dump = _dump_total(pid, outdir, before)
    before.add(idle_dump)
    _control(pid, "--zero")
    started = time.monotonic()
    send(port, method, n, post_body(), path)
    wall = time.monotonic() - started
    total, dump = _dump_total(pid, outdir, before)
    return Count(method, n, total, idle / idle_s, wall, dump)


def start_router(
    scenario: Scenario, workdir: Path, prefix: Sequence[str], routes: int = 0
) -> tuple[Service, int, list[NginxInstance]]:
    """The stand-ins and a router started as ``prefix serve ...`` (a command that runs it).

    ``routes``: instead of the scenario, the route sweep's file of that many canary
    routes (``route_sweep.render_routes``); its last route answers ``last_path``.
    """
    backends = []
    for name, stand_in in BACKENDS.items():
        instance = NginxInstance(name, workdir)
        instance.start(render_backend(instance.prefix, instance.port, stand_in.payload))
        backends.append(instance)
    port, admin_port = free_port(), free_port()
    urls = {i.name: i.url for i in backends}
    config_path = workdir / "router.yaml"
    if routes:
        config_path.write_text(render_routes(routes, urls, port, admin_port))
    else:
        config = render_router_config(scenario, urls, port, admin_port)
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [*prefix, "serve", "--config", str(config_path), "--log-format", "json"]
    service = Service("router", cmd, workdir / "router.log").start()
    path = last_path(routes) if routes else REQUEST_PATH
    wait_for("router", lambda: service.check_alive()
             and http_status(f"http://127.0.0.1:{port}{path}", timeout=5) == 200,
             timeout=600)
    return service, port, backends


def stop_router(service: Service, backends: list[NginxInstance], workdir: Path) -> None:
    """Stop what ``start_router`` started and remove its directory."""
    service.stop()
    for backend in backends:
        backend.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Count and print instructions per request for GET and POST."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="router-canary")
    parser.add_argument("-n", type=int, default=400, help="requests per method (400)")
    parser.add_argument("--idle", type=float, default=3.0, help="idle spell in seconds (3)")
    parser.add_argument("--annotate", choices=["GET", "POST"], help="print top functions")
    parser.add_argument("--routes", type=int, default=0,
                        help="the route sweep's file of this many routes instead of the scenario")
    parser.add_argument("--warm", type=int, default=0,
                        help="POSTs sent before counting, uninstrumented (0); more than a "
                        "route's feedback.keep counts the prediction store full")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    scenario = next((s for s in SCENARIOS if s.name == args.scenario), None)
    if scenario is None or scenario.target != "router" or scenario.workers != 1:
        sys.exit(f"{args.scenario}: not a one-worker router scenario")
    workdir = Path(tempfile.mkdtemp(prefix="router-instr-"))
    # Instrumentation stays off until the warm-up, so start-up costs nothing to count.
    callgrind = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no",
        f"--callgrind-out-file={workdir}/callgrind.out.%p", *router_command(),
    ]
    service, port, backends = start_router(scenario, workdir, callgrind, args.routes)
    path = last_path(args.routes) if args.routes else REQUEST_PATH
    label = f"{args.routes} routes" if args.routes else args.scenario
    try:
        if args.warm:
            send(port, "POST", args.warm, post_body(), path)
        _control(service.pid, "--instr=on")
        send(port, "GET", 50, b"", path)  # warm-up: imports, caches, connections
        send(port, "POST", 50, post_body(), path)
        for method in ("GET", "POST"):
            result = count(service.pid, port, workdir, method, args.n, args.idle, path)
            print(f"{label} {method}: {result.per_request:,.0f} instructions/request "
                  f"({result.requests} requests, idle {result.idle_per_s:,.0f}/s subtracted "
                  f"over {result.wall_s:.1f} s)")
            if args.annotate == method:
                out = subprocess.run(["callgrind_annotate", "--threshold=90", str(result.dump)],
                                     capture_output=True, text=True, check=False).stdout
                print("\n".join(out.splitlines()[:60]))
    finally:
        stop_router(service, backends, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
