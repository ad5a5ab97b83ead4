"""The ``traffic-router`` command line (README.md#cli)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

DEFAULT_ADMIN_URL = "http://127.0.0.1:9901"
# What the demo's model servers import beyond the router's own dependencies (the demo extra).
DEMO_MODULES = ("numpy", "sklearn")


def missing_demo_modules() -> list[str]:
    """The demo extra's modules this interpreter cannot import."""
    missing = []
    for name in DEMO_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def _add_admin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--admin",
        metavar="URL",
        default=None,
        help=f"admin API URL (default: $ROUTER_ADMIN_URL or {DEFAULT_ADMIN_URL})",
    )


def _positive(text: str) -> int:
    """An integer of at least 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more (got {value})")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="traffic-router",
        description="A gateway for shipping new ML model versions safely.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(sub)

    validate = sub.add_parser("validate", help="check a config file")
    validate.add_argument("path")

    sub.add_parser("schema", help="print the config file's JSON Schema")
    _add_admin_commands(sub)

    demo = sub.add_parser("demo", help="run the live demo")
    demo.add_argument(
        "--scenario", default="canary",
        choices=["canary", "bad-canary", "shadow", "blue-green", "drift-and-truth", "llm",
                 "drift", "shadow-first"],
    )
    demo.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    demo.add_argument("--headless", action="store_true", help="no live view, plain log lines")
    return parser


Subparsers = argparse._SubParsersAction  # argparse names no public type for it


def _add_serve(sub: Subparsers[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the router")
    serve.add_argument("--config", required=True, metavar="PATH", help="the YAML config file")
    serve.add_argument("--listen", metavar="HOST:PORT", help="proxy listener (overrides config)")
    serve.add_argument(
        "--admin-listen", metavar="HOST:PORT", help="admin listener (overrides config)"
    )
    serve.add_argument("--workers", type=int, default=1, metavar="N", help="processes (default 1)")
    serve.add_argument("--log-format", choices=["json", "console"], default=None)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--no-access-log", action="store_true", help="no per-request log line")
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)


def _add_admin_commands(sub: Subparsers[argparse.ArgumentParser]) -> None:
    """The subcommands that call a running router's admin API."""
    status = sub.add_parser("status", help="show routes, phases and weights")
    status.add_argument("--json", action="store_true", help="raw status JSON")
    status.add_argument("--watch", action="store_true", help="redraw every second")
    _add_admin_option(status)

    for action, text in (
        ("rollback", "send all traffic of a route back to stable"),
        ("promote", "complete a manual hold, jump a ramp to its end, or switch colours"),
        ("pause", "freeze a route's ramp"),
        ("resume", "continue a paused ramp, or restart a rolled-back one"),
    ):
        cmd = sub.add_parser(action, help=text)
        cmd.add_argument("route")
        if action == "rollback":
            cmd.add_argument("--reason", default=None, help="why (logged and shown)")
        _add_admin_option(cmd)

    feedback = sub.add_parser("feedback", help="post true labels (JSONL) for past predictions")
    feedback.add_argument(
        "path", metavar="FILE.jsonl", help='one {"request_id": ..., "label": ...} a line'
    )
    feedback.add_argument(
        "--batch", type=_positive, default=1000, metavar="N",
        help="labels per request (default 1000)",
    )
    _add_admin_option(feedback)

    reload = sub.add_parser("reload", help="re-read the config file now")
    _add_admin_option(reload)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``traffic-router`` and ``python -m router``."""
    args = build_parser().parse_args(argv)
    command = args.command
    if command == "serve":
        from router.serve import run_serve

        sys.exit(run_serve(args))
    if command == "validate":
        from router.config.loader import run_validate

        code, output = run_validate(args.path)
        print(output, file=sys.stdout if code == 0 else sys.stderr)
        sys.exit(code)
    if command == "schema":
        from router.config.schema import config_json_schema

        print(json.dumps(config_json_schema(), indent=2))
        sys.exit(0)
    if command == "demo":
        missing = missing_demo_modules()
        if missing:
            print(
                f"traffic-router demo needs {' and '.join(missing)}, which are not installed: "
                "pip install 'traffic-router[demo]'",
                file=sys.stderr,
            )
            sys.exit(1)
        from router.demo.runner import run_demo

        sys.exit(run_demo(args))
    from router.cli.client import run_client

    admin = args.admin or os.environ.get("ROUTER_ADMIN_URL") or DEFAULT_ADMIN_URL
    sys.exit(run_client(args, admin, os.environ.get("ROUTER_ADMIN_TOKEN")))
