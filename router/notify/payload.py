"""What a webhook receives: the JSON and Slack bodies and their HMAC signature (pure).

A JSON delivery is one object::

    {"event": "rollback", "route": "iris", "reason": "...", "at": "2026-...Z",
     "config_version": "3f9c2a1b", "replica": "host-1234",
     "details": {"trigger": "analysis", "error_rate": 0.31, ...}}

``details`` holds the numbers behind the decision (every other field of the event).
A Slack delivery is ``{"text": "..."}`` with the same facts on one line. With a
secret, ``X-Router-Signature: sha256=<hex>`` is the HMAC-SHA256 of the exact body.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["SIGNATURE_HEADER", "build_payload", "render_json", "render_slack", "sign", "verify"]

SIGNATURE_HEADER = "x-router-signature"
_OWN_FIELDS = ("event", "route", "reason", "at")


def build_payload(
    record: Mapping[str, Any], config_version: str | None, replica: str | None
) -> dict[str, Any]:
    """The JSON object for one event record (as ``EventLog.emit`` made it)."""
    details = {key: value for key, value in record.items() if key not in _OWN_FIELDS}
    return {
        "event": record.get("event"),
        "route": record.get("route"),
        "reason": record.get("reason"),
        "at": record.get("at"),
        "config_version": config_version,
        "replica": replica,
        "details": details,
    }


def render_json(payload: Mapping[str, Any]) -> bytes:
    """The ``json`` format's body."""
    return orjson.dumps(payload, default=str)


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())


def render_slack(payload: Mapping[str, Any]) -> bytes:
    """The ``slack`` format's body: ``{"text": ...}``, everything on one line."""
    where = f" on route {payload['route']}" if payload.get("route") else ""
    details = payload.get("details") or {}
    numbers = ", ".join(f"{key}={_one_line(value)}" for key, value in details.items())
    text = f"traffic-router: {payload['event']}{where}: {_one_line(payload.get('reason') or '')}"
    if numbers:
        text += f" ({numbers})"
    text += f" [config {payload.get('config_version')}, replica {payload.get('replica')}]"
    return orjson.dumps({"text": text})


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Router-Signature`` value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` (constant-time comparison)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)
