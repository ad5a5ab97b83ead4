"""``traffic-router demo``: two model versions behind the router, live traffic, a live view.

The canary scenario runs the router on ``config/demo.yaml`` itself when its ports
are free, so editing that file moves traffic while the demo runs. Otherwise, and
for the other scenarios, the effective config is generated into a temp dir from
``config/demo-<scenario>.yaml`` with free ports substituted. Ctrl-C, SIGTERM or
the end of ``--duration`` stops every child process; the last stdout line is a
JSON summary (each route's phase and weights) for scripts and tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import yaml

from router.config.model import parse_listen
from router.demo.processes import Children, free_port, port_is_free
from router.demo.session import LLM_ROUTE, ROUTE, Session

__all__ = ["SCENARIOS", "Scenario", "Setup", "find_config_dir", "prepare_config", "run_demo"]

VERSIONS = ("v1", "v2")
START_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Scenario:
    """One demo story: its config template, and what the demo does along the way."""

    name: str
    template: str
    story: str
    # "fault" (v2 starts failing), "skew" (v2 predicts one class), "promote" or "shift" (inputs)
    action: str | None = None
    action_at: float = 0.0  # seconds after the traffic starts
    llm: bool = False  # stand-in LLM servers and streamed chat traffic instead of iris models

    @property
    def route(self) -> str:
        """The route the demo drives and acts on."""
        return LLM_ROUTE if self.llm else ROUTE

    def backend(self, version: str) -> str:
        """The config's backend name of model ``version``."""
        return f"{'llm' if self.llm else 'iris'}-{version}"


SCENARIOS = {
    s.name: s for s in (
        Scenario("canary", "demo.yaml",
                 "v2 ramps up 10 → 25 → 50 → 100 % in 5 s steps, gated by live analysis, "
                 "then is promoted"),
        Scenario("bad-canary", "demo-bad-canary.yaml",
                 "v2 takes 25 % of traffic, judged by the sequential judge; at 6 s half its "
                 "answers fail and it is rolled back after a few dozen of its requests",
                 action="fault", action_at=6.0),
        Scenario("drift", "demo-drift.yaml",
                 "v2 takes 25 % of traffic; at 3 s it starts predicting class 0 far too often, "
                 "still 200 and fast: the prediction drift gate (PSI) rolls it back",
                 action="skew", action_at=3.0),
        Scenario("shadow-first", "demo-shadow-first.yaml",
                 "v2 first gets only mirrored copies (phase shadowing); once 200 are compared "
                 "and agree, the ramp starts at 10 %"),
        Scenario("shadow", "demo-shadow.yaml",
                 "v1 answers every request; a copy goes to v2 and the answers are compared"),
        Scenario("blue-green", "demo-blue-green.yaml",
                 "v1 (blue) serves everything; after a few seconds the demo calls promote: "
                 "a checked switch to v2 (green)", action="promote", action_at=6.0),
        Scenario("drift-and-truth", "demo-drift-and-truth.yaml",
                 "true labels flow back 3 s after each answer; at 20 s petal width drifts "
                 "(input_drift), v2 turns out wrong far more often than v1 and the accuracy "
                 "gate rolls it back", action="shift", action_at=20.0),
        Scenario("llm", "demo-llm.yaml",
                 "streamed chat completions; v2 is slower to its first token, the canary "
                 "(sticky on the body's user field) is rolled back by max_ttfb_ratio", llm=True),
    )
}


@dataclass(frozen=True, slots=True)
class Setup:
    """The effective config and the ports of everything the demo starts."""

    config: Path
    in_place: bool
    proxy_port: int
    admin_port: int
    model_ports: dict[str, int]

    @property
    def admin_url(self) -> str:
        """The admin API (and dashboard) base URL."""
        return f"http://127.0.0.1:{self.admin_port}"

    llm: bool = False

    @property
    def infer_url(self) -> str:
        """Where the traffic goes."""
        if self.llm:
            return f"http://127.0.0.1:{self.proxy_port}/v1/chat/completions"
        return f"http://127.0.0.1:{self.proxy_port}/v2/models/{ROUTE}/infer"


def find_config_dir() -> Path:
    """The ``config/`` folder: next to the package (a checkout), else under the working dir."""
    for candidate in (Path(__file__).resolve().parents[2] / "config", Path.cwd() / "config"):
        if (candidate / "demo.yaml").is_file():
            return candidate
    raise FileNotFoundError("no config/demo.yaml here or next to the package (run from the repo)")


def _reset_state(config: Path, doc: dict[str, Any]) -> None:
    """Forget the demo's earlier run: a fresh ramp, not last time's promoted or rolled-back one."""
    state = doc.get("state") or {}
    if state.get("store", "file") == "file" and state.get("path"):
        path = config.parent / str(state["path"])
        for stale in (path, path.with_name(path.name + ".lock")):
            stale.unlink(missing_ok=True)


def prepare_config(
    scenario: Scenario, workdir: Path, config_dir: Path | None = None, *, any_ports: bool = False
) -> Setup:
    """The config the router runs on: the template itself, or a copy with free ports.

    ``any_ports`` (env ``TRAFFIC_ROUTER_DEMO_FREE_PORTS=1``, for tests) never takes the
    template's ports, so demos started side by side cannot race for them.
    """
    template = (config_dir or find_config_dir()) / scenario.template
    doc: dict[str, Any] = yaml.safe_load(template.read_text())
    wanted = {
        "proxy": parse_listen(doc["listen"])[1],
        "admin": parse_listen(doc["admin"]["listen"])[1],
        **{v: urlsplit(doc["backends"][scenario.backend(v)]["url"]).port or 80 for v in VERSIONS},
    }
    ports: dict[str, int] = {}
    for role, port in wanted.items():
        if any_ports or port in ports.values() or not port_is_free(port):
            port = free_port()
            while port in ports.values():
                port = free_port()
        ports[role] = port
    models = {v: ports[v] for v in VERSIONS}
    if scenario.name == "canary" and ports == wanted:
        _reset_state(template, doc)
        return Setup(template, True, ports["proxy"], ports["admin"], models, scenario.llm)
    doc["listen"] = f"127.0.0.1:{ports['proxy']}"
    doc["admin"]["listen"] = f"127.0.0.1:{ports['admin']}"
    for version in VERSIONS:
        doc["backends"][scenario.backend(version)]["url"] = f"http://127.0.0.1:{models[version]}"
    doc["state"] = {"store": "file", "path": str(workdir / "state.json")}
    for route in doc["routes"]:
        if route["strategy"].get("mismatch_log"):
            route["strategy"]["mismatch_log"] = str(workdir / f"{route['name']}-mismatches.jsonl")
    path = workdir / template.name
    header = f"# Generated by `traffic-router demo` from {template}: edit it to move traffic.\n"
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    return Setup(path, False, ports["proxy"], ports["admin"], models, scenario.llm)


async def _wait_ready(url: str, children: Children, stop: asyncio.Event) -> str | None:
    """None once ``url`` answers 200; else why not (a child exited, timeout, stopped)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
        while time.monotonic() < deadline and not stop.is_set():
            if (gone := children.exited()) is not None:
                return f"{gone} exited:\n{children.log_tail(gone)}"
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return None
            await asyncio.sleep(0.1)
    return "stopped" if stop.is_set() else f"{url} not ready after {START_TIMEOUT_S:.0f}s"


async def _start(
    setup: Setup, children: Children, token: str, stop: asyncio.Event
) -> str | None:
    """Start the model servers and the router; None when all are ready, else why not."""
    ready_urls = []
    for version in VERSIONS:
        port = setup.model_ports[version]
        if setup.llm:  # v2 takes 300 ms to its first token, v1 40 ms
            first_ms = "300" if version == "v2" else "40"
            args = ["router.demo.llm_server", "--model", f"llama-demo-{version}",
                    "--first-token-ms", first_ms, "--port", str(port)]
            ready_urls.append(f"http://127.0.0.1:{port}/health")
        else:
            args = ["router.demo.model_server", "--version", version, "--port", str(port)]
            ready_urls.append(f"http://127.0.0.1:{port}/v2/health/ready")
        children.start(f"model-{version}", args)
    # Started together: the three start-ups (imports, training) overlap.
    children.start("router", ["router", "serve", "--config", str(setup.config),
                              "--log-format", "json"], env={"ROUTER_ADMIN_TOKEN": token})
    for url in [*ready_urls, f"{setup.admin_url}/readyz"]:
        if (problem := await _wait_ready(url, children, stop)) is not None:
            return problem
    return None


def _traffic(scenario: Scenario) -> str:
    if scenario.llm:
        return "streamed chat completions, sticky on the body's user field"
    return "sticky x-user-id, iris inputs, ~3 % missing"


def _intro(scenario: Scenario, setup: Setup, token: str, workdir: Path) -> list[str]:
    admin = setup.admin_url
    lines = [
        f"traffic-router demo · scenario {scenario.name}: {scenario.story}",
        f"  dashboard    {admin}/",
        f"  admin token  {token}",
        f"  traffic      POST {setup.infer_url} ({_traffic(scenario)})",
        f"  logs         {workdir} (removed when the demo ends)",
        "Try the levers by hand:",
        *(f"  {lever}" for lever in _levers(scenario, setup, token)),
        f"  ROUTER_ADMIN_TOKEN={token} traffic-router status --admin {admin}",
    ]
    return lines


def _levers(scenario: Scenario, setup: Setup, token: str) -> list[str]:
    admin = f"--admin {setup.admin_url}"
    levers = [
        f"edit {setup.config} and save: the router reloads it and traffic moves within a second",
        f"ROUTER_ADMIN_TOKEN={token} traffic-router rollback {scenario.route} {admin}",
    ]
    if scenario.name == "blue-green":
        levers.append(f"ROUTER_ADMIN_TOKEN={token} traffic-router promote {scenario.route} {admin}")
    return levers


def _hints(scenario: Scenario, setup: Setup, token: str) -> list[str]:
    """The live view's footer: short enough for a 24-line terminal."""
    return [f"dashboard {setup.admin_url}/ · admin token {token}",
            *_levers(scenario, setup, token)]


def _summary(
    scenario: Scenario, setup: Setup, status: dict[str, Any] | None, session: Session | None,
    children: Children, code: int,
) -> dict[str, Any]:
    routes = (status or {}).get("routes") or {}
    return {
        "event": "demo_summary",
        "scenario": scenario.name,
        "exit": code,
        "config": str(setup.config),
        "in_place": setup.in_place,
        "routes": {
            name: {k: route.get(k) for k in ("strategy", "phase", "weights", "step", "active")
                   if k in route}
            for name, route in routes.items()
        },
        "requests": session.stats.summary() if session else {},
        "pids": children.pids,
        "ports": {"proxy": setup.proxy_port, "admin": setup.admin_port, **setup.model_ports},
    }


async def _main(args: argparse.Namespace, scenario: Scenario, workdir: Path) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        any_ports = os.environ.get("TRAFFIC_ROUTER_DEMO_FREE_PORTS", "") not in ("", "0")
        setup = prepare_config(scenario, workdir, any_ports=any_ports)
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        print(f"demo: cannot prepare the config: {exc}", file=sys.stderr)
        return 1
    token = secrets.token_urlsafe(24)
    children = Children(workdir)
    session: Session | None = None
    status: dict[str, Any] | None = None
    code = 0
    try:
        print(f"demo: starting the model servers and the router ({setup.config}) ...", flush=True)
        problem = await _start(setup, children, token, stop)
        if problem is not None and not stop.is_set():
            print(f"demo: could not start: {problem}", file=sys.stderr, flush=True)
            code = 1
        elif problem is None:
            intro = _intro(scenario, setup, token, workdir)
            print("\n".join(intro), flush=True)
            headless = bool(args.headless) or not sys.stdout.isatty()
            session = Session(scenario.name, setup.admin_url, token, setup.infer_url,
                              setup.model_ports["v2"], headless=headless,
                              hints=_hints(scenario, setup, token),
                              labels=scenario.action == "shift", llm=scenario.llm)
            status = await session.run(stop, args.duration, scenario.action, scenario.action_at)
    finally:
        children.stop()
    summary = _summary(scenario, setup, status, session, children, code)
    for name, route in summary["routes"].items():
        print(f"demo: {name}: {route.get('phase')} {route.get('weights')}", flush=True)
    print(orjson.dumps(summary).decode(), flush=True)
    return code


def run_demo(args: argparse.Namespace) -> int:
    """``traffic-router demo``: exit 0 after Ctrl-C, SIGTERM or ``--duration``; 1 if it failed."""
    scenario = SCENARIOS[args.scenario]
    workdir = Path(tempfile.mkdtemp(prefix="traffic-router-demo-"))
    code = 1
    try:
        code = asyncio.run(_main(args, scenario, workdir))
    finally:
        if code == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"demo: logs kept in {workdir}", file=sys.stderr)
    return code
