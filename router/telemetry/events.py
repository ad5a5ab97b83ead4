"""Decision events: logged as structured lines and kept in a bounded ring for ``/admin/events``."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from router.telemetry.logs import get_logger

__all__ = ["EventLog", "iso_time"]


def iso_time(epoch: float) -> str:
    """``2026-11-29T12:00:00Z`` (UTC, seconds; milliseconds when not whole)."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


class EventLog:
    """The most recent decision events, newest last; each is also logged.

    ``listeners`` are called with each record this process emits (the notifier's
    queue): they must return at once.
    """

    def __init__(self, capacity: int = 1000) -> None:
        self._ring: collections.deque[dict[str, Any]] = collections.deque(maxlen=capacity)
        self._log = get_logger("router.telemetry.events")
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def emit(self, kind: str, *, route: str | None, reason: str, **fields: Any) -> dict[str, Any]:
        """Record and log one event; ``kind`` is the log event name (``rollback``...)."""
        record: dict[str, Any] = {
            "at": iso_time(time.time()),
            "event": kind,
            "route": route,
            "reason": reason,
            **fields,
        }
        self._ring.append(record)
        warn = kind in ("rollback", "config_reload_failed", "switch_refused")
        level = "warning" if warn else "info"
        getattr(self._log, level)(kind, **{k: v for k, v in record.items() if k != "event"})
        for listener in self.listeners:
            try:
                listener(record)
            except Exception as exc:  # a listener must never undo the decision it hears of
                self._log.exception("event_listener_error", event_kind=kind, reason=repr(exc))
        return record

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """Up to ``limit`` events, newest first."""
        items = list(self._ring)[-limit:] if limit > 0 else []
        items.reverse()
        return items
