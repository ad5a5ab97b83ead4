"""Logging set-up (docs/observability.md): structlog, one JSON object a line, secrets never written.

``configure_logging`` is called once per process. Library loggers (uvicorn,
httpx) are routed through the same renderer; httpx's per-request INFO lines
(which carry URLs) and uvicorn's access log are silenced.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

__all__ = [
    "AccessLog",
    "access_log",
    "configure_logging",
    "get_logger",
    "redact",
    "register_secret",
]

FLUSH_PERIOD_S = 0.2  # how stale a buffered request line may get

_SECRET_KEYS = frozenset({"authorization", "token", "admin_token", "cookie", "password", "secret"})
_BEARER_RE = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_secrets: set[str] = set()


def redact(value: str) -> str:
    """``value`` with registered secrets and bearer tokens masked."""
    for secret in _secrets:
        if secret and secret in value:
            value = value.replace(secret, "[redacted]")
    return _BEARER_RE.sub(r"\1[redacted]", value)


def register_secret(secret: str | None) -> None:
    """Never let this string (e.g. the admin token) reach a log line."""
    if secret:
        _secrets.add(secret)


def _redact_processor(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "[redacted]"
        elif isinstance(value, str) and (_secrets or "earer" in value):
            event_dict[key] = redact(value)
    return event_dict


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def configure_logging(fmt: str | None = None, level: str = "info") -> None:
    """Configure structlog and stdlib logging; ``fmt`` is ``json``, ``console`` or auto (tty)."""
    if fmt is None:
        fmt = "console" if sys.stdout.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_processor,
    ]
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    global _access
    _access = AccessLog(fmt)


def get_logger(name: str = "router") -> Any:
    """A structlog logger."""
    return structlog.get_logger(name)


class _LineBuffer:
    """Byte lines gathered in a buffer and written in batches.

    One write syscall per request costs more than the rest of the log line;
    lines are flushed when 64 KiB have gathered, by the app's periodic
    ``AccessLog.flush_every`` (every 200 ms) and at shutdown.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = getattr(stream, "buffer", stream)
        self._buf = bytearray()

    def line(self, line: bytes) -> None:
        """Buffer ``line``, which ends with its newline."""
        self._buf += line
        if len(self._buf) >= 65536:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            try:
                self._stream.write(self._buf)
                self._stream.flush()
            except (OSError, ValueError):
                pass
            self._buf.clear()


_last_second = -1
_last_prefix = ""


def _now_iso() -> str:
    # datetime formatting per request is measurable: reuse the second's prefix.
    global _last_second, _last_prefix
    now = time.time()
    second = int(now)
    if second != _last_second:
        _last_second = second
        _last_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_last_prefix}.{int((now - second) * 1_000_000):06d}Z"


class AccessLog:
    """The per-request log line (docs/observability.md): the same JSON object structlog renders.

    structlog's bound-logger machinery measured about 10 µs a call against 2 µs
    for building the dict and rendering it with orjson, on a path whose whole
    budget is a few hundred µs; so JSON request lines take this lean path into
    a batched buffer. Console format still goes through structlog.
    """

    def __init__(self, fmt: str, stream: Any = None) -> None:
        self._sink = _LineBuffer(stream or sys.stdout)
        self._buffered = fmt != "console"
        self._console: Any = None if self._buffered else get_logger("router.access")

    def flush(self) -> None:
        """Write out the buffered lines."""
        if self._buffered:
            self._sink.flush()

    async def flush_every(self, period_s: float = FLUSH_PERIOD_S) -> None:
        """Write out the buffered lines every ``period_s`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(period_s)
            self.flush()

    def request(
        self, *, request_id: str, route: str | None, variant: str | None, backend: str | None,
        method: str, path: str, client: str | None, status: int, duration_ms: float,
        bytes_in: int, bytes_out: int, error: str | None = None,
    ) -> None:
        """Write one ``event="request"`` line (``error`` only when there was one)."""
        # Only client-chosen strings can carry a secret into this line; the test is the
        # structlog processor's, so both formats redact the same things.
        if _secrets or "earer" in path:
            path = redact(path)
        if _secrets or "earer" in request_id:
            request_id = redact(request_id)
        # A dict literal with these keys, in this order, is the cheapest way to the line.
        fields: dict[str, Any] = {
            "request_id": request_id, "route": route, "variant": variant, "backend": backend,
            "method": method, "path": path, "client": client, "status": status,
            "duration_ms": duration_ms, "bytes_in": bytes_in, "bytes_out": bytes_out,
        }
        if error:
            fields["error"] = error
        if self._console is not None:
            self._console.info("request", **fields)
            return
        fields["event"] = "request"
        fields["level"] = "info"
        fields["timestamp"] = _now_iso()
        self._sink.line(orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE))


_access: AccessLog | None = None


def access_log() -> AccessLog:
    """The process's access log, set up by ``configure_logging``."""
    global _access
    if _access is None:
        _access = AccessLog("json")
    return _access
