"""``traffic-router serve``: the proxy and admin listeners under uvicorn, in one or N processes.

One process runs both listeners on one uvloop event loop. SIGTERM/SIGINT stop
accepting, let in-flight requests finish (bounded), then close pools and the
store; SIGHUP reloads the config. With ``--workers N`` a supervisor starts N
such processes on the same ports (SO_REUSEPORT) and forwards signals to them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import uvicorn

from router.admin.api import build_admin_app
from router.app import RouterApp
from router.config.loader import ConfigError, read_config
from router.config.model import Config, ProxySpec, admin_exposure, parse_listen
from router.control.store import StateStoreError
from router.server.listener import build_uvicorn_config, update_limits
from router.telemetry.logs import configure_logging, get_logger

__all__ = ["bind_socket", "run_serve"]

DRAIN_S = 30.0
_MAX_OPEN_FILES = 1 << 20


def bind_socket(listen: str, *, reuse_port: bool) -> socket.socket:
    """A listening TCP socket for ``HOST:PORT``."""
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """A uvicorn server whose signals are handled by ``run_serve`` (two share a loop)."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


def _check_admin_security(config: Config, admin_listen: str) -> str | None:
    refusal = admin_exposure(config, admin_listen)
    return None if refusal is None else f"refusing to start: {refusal}"


def _listener_configs(
    router: RouterApp, config: Config, listen: str, admin_listen: str,
    socks: tuple[socket.socket, socket.socket],
) -> tuple[uvicorn.Config, uvicorn.Config]:
    """The proxy's and the admin's uvicorn configs on their bound sockets."""
    proxy_config = build_uvicorn_config(
        router.proxy,
        host=parse_listen(listen)[0],
        sock=socks[0],
        header_timeout=config.proxy.header_timeout,
        max_header_bytes=config.proxy.max_header_bytes,
        body_timeout=config.proxy.body_timeout,
        send_timeout=config.proxy.send_timeout,
        lifespan="off",
        timeout_graceful_shutdown=DRAIN_S,
        date_header=False,  # the backend's Date passes through; two would be wrong
    )
    admin_host = parse_listen(admin_listen)[0]
    # The admin listener gets the proxy's header deadline and header cap.
    admin_config = build_uvicorn_config(
        build_admin_app(router, admin_host),
        host=admin_host,
        sock=socks[1],
        header_timeout=config.proxy.header_timeout,
        max_header_bytes=config.proxy.max_header_bytes,
        body_timeout=config.proxy.body_timeout,
        send_timeout=config.proxy.send_timeout,
        loop="none",
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    return proxy_config, admin_config


def _handle_signals(router: RouterApp, servers: list[_Server]) -> set[asyncio.Task[object]]:
    """SIGTERM/SIGINT stop the servers, SIGHUP reloads; the reload tasks in flight."""
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[object]] = set()

    def stop() -> None:
        router.ready = False
        for server in servers:
            server.should_exit = True

    def reload_on_sighup() -> None:
        task = loop.create_task(router.reload("sighup"))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    loop.add_signal_handler(signal.SIGHUP, reload_on_sighup)
    return reloads


async def _serve_one(args: argparse.Namespace, config: Config, raw: bytes) -> int:
    log = get_logger("router.serve")
    listen = args.listen or config.listen
    admin_listen = args.admin_listen or config.admin.listen
    router = RouterApp(Path(args.config), access_log=not args.no_access_log)
    router.reloader.admin_listen = admin_listen  # a reload may not leave it open without a token
    await router.start(config, raw)
    # From here the settings without the routes (compiled into the router): at thousands
    # of routes their config models are megabytes that nothing reads again.
    config = router.snapshot.config
    socks = (
        bind_socket(listen, reuse_port=args.reuse_port),
        bind_socket(admin_listen, reuse_port=args.reuse_port),
    )
    configs = _listener_configs(router, config, listen, admin_listen, socks)

    def apply_head_limits(spec: ProxySpec) -> None:
        # A reload's limits reach each listener's next connections.
        for listener in configs:
            update_limits(
                listener,
                header_timeout=spec.header_timeout,
                max_header_bytes=spec.max_header_bytes,
                body_timeout=spec.body_timeout,
                send_timeout=spec.send_timeout,
            )

    router.on_proxy_spec.append(apply_head_limits)
    servers = [_Server(c) for c in configs]
    for server, sock in zip(servers, socks, strict=True):
        server.config.load()
        server.lifespan = server.config.lifespan_class(server.config)
        await server.startup(sockets=[sock])
    # Everything allocated so far (modules, config models, schemas) lives for the process:
    # frozen, it is no longer traversed by full collections, which took ~30 ms here, a pause
    # every request in flight would wait for.
    gc.collect()
    gc.freeze()
    router.ready = True
    log.info("started", listen=listen, admin_listen=admin_listen, version=router.snapshot.version)
    reloads = _handle_signals(router, servers)
    await asyncio.gather(*(server.main_loop() for server in servers))
    log.info("stopping", reason="signal", drain_s=DRAIN_S, reloads_in_flight=len(reloads))
    await asyncio.gather(*(s.shutdown(sockets=[k]) for s, k in zip(servers, socks, strict=True)))
    await router.stop()
    log.info("stopped")
    return 0


def _supervise(args: argparse.Namespace) -> int:
    """Run ``--workers`` child processes on the same ports; forward signals."""
    argv = [a for a in sys.argv[1:] if not a.startswith("--workers")]
    if "--workers" in sys.argv:
        index = sys.argv.index("--workers")
        argv = sys.argv[1:index] + sys.argv[index + 2:]
    children = [
        subprocess.Popen([sys.executable, "-m", "router", *argv, "--reuse-port"])  # noqa: S603
        for _ in range(args.workers)
    ]

    def forward(sig: int, frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    codes = [child.wait() for child in children]
    return max(codes, default=0)


def _raise_open_file_limit() -> None:
    """Lift the soft limit on open files to the hard one, as Go programs do at start.

    Every client and backend connection is a file; the usual soft limit of 1,024 would let a
    thousand idle clients make every new one get a reset (hostile or not, docs/faults.md).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, _MAX_OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run_serve(args: argparse.Namespace) -> int:
    """``traffic-router serve``: exit code 0 after a clean stop, 1 for a bad config, 2 refused."""
    configure_logging(args.log_format, args.log_level)
    _raise_open_file_limit()
    log = get_logger("router.serve")
    path = Path(args.config)
    try:
        raw = path.read_bytes()
        config = read_config(path, raw)
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    admin_listen = args.admin_listen or config.admin.listen
    refusal = _check_admin_security(config, admin_listen)
    if refusal is not None:
        log.error("refused", reason=refusal)
        print(refusal, file=sys.stderr)
        return 2
    if args.workers > 1:
        return _supervise(args)
    runner: Callable[[Coroutine[Any, Any, int]], int]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    serving = _serve_one(args, config, raw)
    del config  # only the coroutine holds the routes' config models, until it lets them go
    try:
        return runner(serving)
    except (StateStoreError, OSError) as exc:
        # A store that cannot be opened or a port that cannot be bound: one clear line.
        log.error("start_failed", reason=str(exc))
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
