"""A backend that misbehaves on request: a raw asyncio TCP server in a thread of its own.

The router under test is a separate process, so this server runs its own event loop. What it
does with a request depends on a word in the request path (``/x/hang``, ``/x/reset``...), so one
server, one backend in the config and one pool serve every fault of the matrix, and a request
to any other path (``/x/ok``) shows whether that pool still works afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Awaitable, Callable

from tests.support import wait_until

__all__ = ["BEHAVIOURS", "FaultServer"]

Writer = asyncio.StreamWriter
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


async def _reset(reader: asyncio.StreamReader, writer: Writer) -> bool:
    """Abort with a TCP reset before answering."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    return False


async def _hang(reader: asyncio.StreamReader, writer: Writer) -> bool:
    """Never answer; wait for the router to give up and close."""
    await reader.read()
    return False


async def _midbody(reader: asyncio.StreamReader, writer: Writer) -> bool:
    """Promise 1,000 bytes, send 10, and close."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"0123456789")
    await writer.drain()
    return False


async def _malformed(reader: asyncio.StreamReader, writer: Writer) -> bool:
    writer.write(b"HTTP/1.1 2x0 NOPE\r\nContent-Length: 2\r\n\r\nok")
    await writer.drain()
    return False


async def _bighead(reader: asyncio.StreamReader, writer: Writer) -> bool:
    """A 1 MiB response head."""
    big = b"X-Big: " + b"a" * (1 << 20)
    writer.write(b"HTTP/1.1 200 OK\r\n" + big + b"\r\nContent-Length: 2\r\n\r\nok")
    await writer.drain()
    return False


async def _dribble(reader: asyncio.StreamReader, writer: Writer) -> bool:
    """``abc``, one byte a second."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n")
    for byte in b"abc":
        await asyncio.sleep(1)
        writer.write(bytes([byte]))
        await writer.drain()
    return True


Behaviour = Callable[[asyncio.StreamReader, Writer], Awaitable[bool]]
BEHAVIOURS: dict[bytes, Behaviour] = {
    b"reset": _reset,
    b"hang": _hang,
    b"midbody": _midbody,
    b"malformed": _malformed,
    b"bighead": _bighead,
    b"dribble": _dribble,
}


async def _serve(reader: asyncio.StreamReader, writer: Writer) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        keep = True
        while keep:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    await reader.readexactly(int(value))
            path = head.split(b" ", 2)[1]
            behaviour = next((b for word, b in BEHAVIOURS.items() if word in path), None)
            if behaviour is None:
                writer.write(OK)
                await writer.drain()
            else:
                keep = await behaviour(reader, writer)
    writer.close()


class FaultServer:
    """The misbehaving backend, serving from a thread until ``stop``."""

    def __init__(self) -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(_serve, "127.0.0.1", 0), self._loop
        )
        self._server = future.result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        wait_until(lambda: not self._thread.is_alive(), timeout=5)
        self._loop.close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

