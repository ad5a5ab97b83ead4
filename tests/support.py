"""Real servers for tests: uvicorn on 127.0.0.1 with a free port, in a thread or a process."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent


def shared_client() -> httpx.Client:
    """A module's one sync client (no connection set-up per call), closed when tests end.

    Closed at exit, so its pooled keep-alive sockets do not outlive the run unclosed.
    """
    client = httpx.Client(timeout=5, trust_env=False)
    atexit.register(client.close)
    return client


def _port_block() -> range:
    """The ports this process hands out: its pytest-xdist worker's share of those below
    the kernel's ephemeral range, where no outgoing connection takes a port by itself."""
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    low = min(10_000, ephemeral // 2)
    workers = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), 1)
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    size = (ephemeral - low) // workers
    return range(low + worker * size, low + (worker + 1) * size)


_PORTS = _port_block()
# From a random place (another run on the machine starts elsewhere), one port after the
# other: a port handed out is not handed out again before the block has gone round.
_next_port = itertools.count(random.randrange(len(_PORTS)))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now and that no other test of the run is
    handed: bound with ``0``, two workers could get the same port before either listens."""
    for _ in range(len(_PORTS)):
        port = _PORTS[next(_next_port) % len(_PORTS)]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {_PORTS}")


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except Exception as exc:
            last_exc = exc
        else:
            if result:
                return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last error: {last_exc!r})")


class ServerThread:
    """An ASGI app served by a real uvicorn in a background thread.

    Use as a context manager: ``with ServerThread(app) as server: server.url``.
    """

    def __init__(self, app: Any, port: int | None = None, **uvicorn_kwargs: Any) -> None:
        self.port = port or free_port()
        kwargs: dict[str, Any] = {"log_level": "warning", "lifespan": "auto", "access_log": False}
        kwargs.update(uvicorn_kwargs)
        self.config = uvicorn.Config(app, host="127.0.0.1", port=self.port, **kwargs)
        self.server = uvicorn.Server(self.config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=30)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        # A test that goes on while the server still answers would test something else.
        assert not self.thread.is_alive(), f"uvicorn on {self.url} did not stop within 30 s"

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def answers_200(
    proc: subprocess.Popen[bytes] | None, url: str, name: str, logs: Callable[[], str] = str
) -> bool:
    """A readiness poll: whether ``url`` answers 200; fails the test if ``proc`` exited."""
    assert proc is not None
    if proc.poll() is not None:
        raise AssertionError(f"{name} exited with {proc.returncode}:\n{logs()}")
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class RouterProcess:
    """``traffic-router serve`` as a real child process on free ports."""

    def __init__(self, config_path: Path, *extra_args: str, env: dict[str, str] | None = None):
        self.config_path = config_path
        self.port = free_port()
        self.admin_port = free_port()
        self.extra_args = extra_args
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = config_path.parent / f"router-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, wait_ready: bool = True) -> RouterProcess:
        cmd = [
            sys.executable, "-m", "router", "serve",
            "--config", str(self.config_path),
            "--listen", f"127.0.0.1:{self.port}",
            "--admin-listen", f"127.0.0.1:{self.admin_port}",
            "--log-format", "json",
            *self.extra_args,
        ]
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        if wait_ready:
            wait_until(self._ready, timeout=60)
        return self

    def _ready(self) -> bool:
        return answers_200(self.proc, f"{self.admin_url}/readyz", "router", self.logs)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc is None:
            return 0
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code

    def __enter__(self) -> RouterProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def servers(*apps: Any) -> Iterator[list[ServerThread]]:
    """Start several ASGI apps on free ports; stop them all afterwards."""
    started: list[ServerThread] = []
    try:
        for app in apps:
            started.append(ServerThread(app).start())
        yield started
    finally:
        for server in started:
            server.stop()


@contextlib.contextmanager
def router_on_echo_backends(
    directory: Path, config_template: str, names: tuple[str, str], env: dict[str, str]
) -> Iterator[RouterProcess]:
    """Two echo backends (``names``), ``config_template`` formatted with their URLs as
    ``{v1}``/``{v2}`` into ``directory/router.yaml``, and a started router on it whose log
    lies outside the watched directory; all stopped on exit."""
    from tests.backends import echo_app

    with servers(*(echo_app(None, name) for name in names)) as (v1, v2):
        config = directory / "router.yaml"
        config.write_text(config_template.format(v1=v1.url, v2=v2.url))
        router = RouterProcess(config, env=env)
        (directory / "logs").mkdir()
        router.log_path = directory / "logs" / router.log_path.name
        with router:  # starts it, and stops it on exit
            yield router
