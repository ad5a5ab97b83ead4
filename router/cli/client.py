"""The CLI's admin client: ``status``, ``rollback``, ``promote``, ``pause``, ``resume``,
``reload`` and ``feedback`` (true labels from a JSONL file, posted in batches).

Every failure is one line on stderr and a non-zero exit: 2 when the router is
unreachable, 3 when the token is refused, 4 for an unknown route, 5 when the
action does not apply (409) or the reload was rejected (422).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson

from strategies.feedback import FeedbackError, accuracy_line, parse_feedback

__all__ = ["ClientError", "format_status_table", "run_client"]


class ClientError(Exception):
    """A one-line reason and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _client(admin: str, token: str | None) -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(
        base_url=admin.rstrip("/"), headers=headers, timeout=5.0, trust_env=False,
        follow_redirects=False,
    )


def _request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """Send one admin call; raise ``ClientError`` for every refusal (see the module docstring)."""
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise ClientError(f"router unreachable at {client.base_url}: {exc}", 2) from None
    if response.status_code < 400:
        return response
    try:
        payload: dict[str, Any] = response.json()
    except ValueError:
        payload = {"detail": response.text.strip()[:200]}
    if response.status_code == 401:
        raise ClientError("token refused: set ROUTER_ADMIN_TOKEN to the router's admin token", 3)
    if response.status_code == 403:
        raise ClientError(f"forbidden: {payload.get('detail', '')}", 3)
    if response.status_code == 404:
        raise ClientError(payload.get("detail") or f"not found: {path}", 4)
    if response.status_code in (409, 422):
        detail = payload.get("detail") or "; ".join(payload.get("errors", [])) or "refused"
        raise ClientError(detail, 5)
    raise ClientError(f"HTTP {response.status_code}: {payload.get('detail', '')}", 1)


def _call(client: httpx.Client, method: str, path: str, body: Any = None) -> dict[str, Any]:
    response = _request(client, method, path, json=body)
    try:
        payload: dict[str, Any] = response.json()
    except ValueError:
        payload = {"detail": response.text.strip()[:200]}
    return payload


def _weights(weights: dict[str, Any]) -> str:
    return " ".join(f"{name}={value}%" for name, value in weights.items())


def format_status_table(status: dict[str, Any]) -> str:
    """A readable table of routes: name, strategy, phase, weights, since."""
    config = status.get("config", {})
    reload = config.get("last_reload") or {}
    lines = [
        f"config {config.get('path')} version {config.get('version')}"
        + ("" if reload.get("ok", True) else f"  LAST RELOAD FAILED: {reload.get('error')}")
    ]
    rows = [("ROUTE", "STRATEGY", "PHASE", "WEIGHTS", "SINCE")]
    for name, route in status.get("routes", {}).items():
        rows.append(
            (
                name,
                str(route.get("strategy", "")),
                str(route.get("phase", "")),
                _weights(route.get("weights", {})),
                str(route.get("since") or route.get("last_switch") or "-"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    for name, route in status.get("routes", {}).items():
        if route.get("message"):
            lines.append(f"{name}: {route['message']}")
        if accuracy := accuracy_line(route.get("feedback")):
            lines.append(f"{name}: accuracy on true labels {accuracy}")
    lines += fleet_lines(status)
    return "\n".join(lines)


def fleet_lines(status: dict[str, Any]) -> list[str]:
    """The replica answering, its state store's health, and the fleet (when there is one)."""
    lines = []
    store = status.get("state_store") or {}
    replica = status.get("replica") or {}
    if replica:
        health = "ok" if store.get("ok", True) else f"FAILING: {store.get('error')}"
        lines.append(
            f"replica {replica.get('id')}{' (leader)' if replica.get('leader') else ''}"
            f" · state store {store.get('kind', '?')} {health}"
        )
    members = (status.get("fleet") or {}).get("replicas") or []
    if len(members) > 1:
        lines.append(f"fleet: {len(members)} replicas")
        for member in members:
            lead = "  leader" if member.get("leader") else ""
            lines.append(
                f"  {member.get('id')}  config {member.get('config_version')}"
                f"  seen {member.get('last_seen')}{lead}"
            )
    return lines


def _status(client: httpx.Client, args: argparse.Namespace) -> int:
    if not args.watch:
        payload = _call(client, "GET", "/admin/status")
        print(json.dumps(payload, indent=2) if args.json else format_status_table(payload))
        return 0
    try:
        while True:
            payload = _call(client, "GET", "/admin/status")
            text = json.dumps(payload, indent=2) if args.json else format_status_table(payload)
            sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")
            sys.stdout.flush()
            time.sleep(1.0)
    except KeyboardInterrupt:
        return 0


FEEDBACK_BATCH_BYTES = 512 * 1024  # well under the endpoint's 1 MiB


def _feedback_batches(path: str, size: int) -> Iterator[list[bytes]]:
    """Lines of ``path`` checked one by one and grouped ``size`` (or 512 KiB) at a time."""
    batch: list[bytes] = []
    held = 0
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror}", 1) from None
    with handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                parse_feedback(orjson.loads(line))
            except (orjson.JSONDecodeError, FeedbackError) as exc:
                reason = "not JSON" if isinstance(exc, orjson.JSONDecodeError) else str(exc)
                raise ClientError(f"{path} line {number}: {reason}", 1) from None
            if batch and (len(batch) >= size or held + len(line) > FEEDBACK_BATCH_BYTES):
                yield batch
                batch, held = [], 0
            batch.append(line)
            held += len(line) + 1
    if batch:
        yield batch


def _feedback(client: httpx.Client, args: argparse.Namespace) -> int:
    sent = joined = unknown = relayed = batches = 0
    try:
        for batch in _feedback_batches(args.path, args.batch):
            response = _request(
                client, "POST", "/admin/feedback", content=b"[" + b",".join(batch) + b"]",
                headers={"content-type": "application/json"},
            )
            sent += len(batch)
            batches += 1
            joined += int(response.headers.get("x-feedback-joined", 0))
            unknown += int(response.headers.get("x-feedback-unknown", 0))
            relayed += int(response.headers.get("x-feedback-relayed", 0))
    finally:
        if batches:
            others = f", {relayed} relayed to the other replicas" if relayed else ""
            print(f"posted {sent} labels in {batches} batches: {joined} joined, "
                  f"{unknown} unknown or expired request ids{others}")
    return 0


def run_client(args: argparse.Namespace, admin: str, token: str | None) -> int:
    """Run one client subcommand; returns the exit code."""
    try:
        with _client(admin, token) as client:
            if args.command == "status":
                return _status(client, args)
            if args.command == "feedback":
                return _feedback(client, args)
            if args.command == "reload":
                payload = _call(client, "POST", "/admin/reload")
                state = "reloaded" if payload.get("changed") else "unchanged"
                print(f"{state}: version {payload.get('version')}")
                return 0
            body = {"reason": args.reason} if getattr(args, "reason", None) else None
            payload = _call(client, "POST", f"/admin/routes/{args.route}/{args.command}", body)
            route = payload.get("status", {})
            print(
                f"{args.route}: {args.command} ok, phase {route.get('phase')}, "
                f"weights {_weights(route.get('weights', {}))}"
                + ("" if payload.get("persisted", True) else
                   " (in effect here; not yet written to the state store, retrying)")
            )
            return 0
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
