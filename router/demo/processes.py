"""The demo's child processes: started in their own process groups, always stopped together.

A child in its own group does not get the terminal's Ctrl-C directly: the demo
decides the order (traffic first, then the router, then the model servers) and
stops each group with SIGTERM, then SIGKILL after a timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["Children", "free_port", "port_is_free"]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` can be listened on right now."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class Children:
    """Python child processes of the demo, each logging to ``<logdir>/<name>.log``."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Run ``python -m <args...>`` in a new process group."""
        with open(self.log_path(name), "ab") as log:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def log_path(self, name: str) -> Path:
        """Where child ``name`` writes its output."""
        return self.logdir / f"{name}.log"

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The last lines of a child's output."""
        try:
            text = self.log_path(name).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def exited(self) -> str | None:
        """The name of a child that has already exited, if any."""
        return next((name for name, proc in self.procs.items() if proc.poll() is not None), None)

    @property
    def pids(self) -> dict[str, int]:
        """Each child's process id."""
        return {name: proc.pid for name, proc in self.procs.items()}

    def stop(self, names: Sequence[str] | None = None, timeout: float = 10.0) -> None:
        """SIGTERM the groups of ``names`` (default: all), wait, SIGKILL what is left."""
        chosen = [n for n in (names or list(self.procs)) if n in self.procs]
        for name in chosen:
            _signal_group(self.procs[name], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in chosen:
            proc = self.procs[name]
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            # Grandchildren (a supervisor's workers) share the group: make sure they are gone.
            _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
