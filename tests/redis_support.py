"""Real ``redis-server`` processes for tests (Debian's package; ``make test`` installs it).

Each runs on a free loopback port without persistence (``--save "" --appendonly no``),
optionally with a password, and is stopped by its PID. ``pause``/``resume`` send
SIGSTOP/SIGCONT (a hung Redis), ``kill`` and ``start`` again model a crash and a restart
that lost every key. The ``redis_server`` fixture (``tests/conftest.py``) hands one out.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from tests.support import free_port, wait_until

REDIS_SERVER = shutil.which("redis-server")


class RedisServer:
    """One ``redis-server`` on 127.0.0.1; ``url`` carries the password when one is set."""

    def __init__(self, directory: Path, password: str | None = None) -> None:
        self.directory = directory
        self.password = password
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = directory / f"redis-{self.port}.log"

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start (or start again, empty) on the same port; wait until it accepts connections."""
        assert REDIS_SERVER is not None, "redis-server is not installed (make redis)"
        cmd = [
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.directory),
            "--logfile", str(self.log_path), "--daemonize", "no",
        ]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(self._accepting, timeout=30)
        return self

    def _accepting(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.proc.returncode}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            try:
                sock.connect(("127.0.0.1", self.port))
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
            except OSError:
                return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, and reap it: every key is gone (no persistence)."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM by PID (SIGKILL if it does not exit)."""
        self._end(signal.SIGTERM)

    def _end(self, sig: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
