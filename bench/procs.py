"""Child processes for the benchmark: start in their own process group, wait, stop, measure RSS."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

import httpx
import psutil

__all__ = [
    "LocalServer",
    "Service",
    "free_port",
    "http_status",
    "install_sigterm_handler",
    "process_tree",
    "rss_bytes",
    "tool_path",
    "wait_for",
]

#: Where Debian puts nginx, which is not on a non-root user's PATH.
_EXTRA_PATH = "/usr/sbin:/usr/local/sbin:/sbin"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tool_path(name: str) -> str | None:
    """The executable ``name`` on PATH or in the sbin directories, or None."""
    path = os.environ.get("PATH", "")
    return shutil.which(name, path=f"{path}:{_EXTRA_PATH}" if path else _EXTRA_PATH)


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The status code of ``GET url``, or None when nothing answers (proxy variables ignored)."""
    try:
        return httpx.get(url, timeout=timeout, trust_env=False).status_code
    except httpx.HTTPError:
        return None


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``predicate`` until it holds; raise RuntimeError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready within {timeout:.0f}s")


def process_tree(pid: int) -> list[psutil.Process]:
    """A process and its living descendants (empty when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total = 0
    for proc in process_tree(pid):
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def install_sigterm_handler() -> None:
    """Turn SIGTERM into KeyboardInterrupt so ``finally`` blocks stop every child."""

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)


class Service:
    """One long-running child (and its descendants) in a process group of its own.

    Output goes to ``log_path``; ``stop()`` signals the whole group, then kills it.
    """

    def __init__(self, name: str, cmd: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The pid of the started process (its process group id too)."""
        assert self.proc is not None, f"{self.name} not started"
        return self.proc.pid

    def start(self) -> Service:
        """Start the child in a new session, output appended to the log file."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def check_alive(self) -> bool:
        """True while running; raise RuntimeError with the log's tail once it has exited."""
        assert self.proc is not None
        if self.proc.poll() is None:
            return True
        tail = self.log_tail()
        raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the child's output."""
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it if it is still there after ``timeout`` s."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout)
        # Workers of a multi-process server may outlive their parent for a moment.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.proc = None


class LocalServer:
    """A server process of the bench's own: a directory for its files, a free port, a Service.

    Subclasses write their config and start ``self.service``; ``stop`` ends it.
    """

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.prefix = workdir / name
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.service: Service | None = None

    @property
    def url(self) -> str:
        """Base URL on loopback."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the process and anything it started."""
        if self.service is not None:
            self.service.stop()
