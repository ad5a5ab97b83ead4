"""The admin listener (docs/http.md): health, readiness, metrics, dashboard, status and actions.

Guard order for every request: the loopback ``Host`` check (403, against DNS
rebinding while the listener is on loopback), then for ``/admin/*`` the bearer
token (401, compared in constant time, refusals counted), then for requests that
may change something the cross-site, media type and body size refusals of
``router.admin.guard`` (403, 415, 413), then routing (404, 405 for a wrong method).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from router.admin.drift import drift_endpoints
from router.admin.feedback import MAX_FEEDBACK_BODY, feedback_endpoint
from router.admin.guard import BodyGuard
from router.admin.view import RouterView
from router.config.model import is_loopback_host
from router.control.rollouts import Rollouts, StoreUnavailableError, UnknownRouteError
from router.routing.selection import RouteQuery
from router.telemetry.logs import get_logger
from strategies import ActionRejectedError, Command

__all__ = ["build_admin_app", "is_loopback_host"]

class _JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _known(rollouts: Rollouts) -> str:
    """The route names for an error message: the first few of a large config."""
    names = sorted(rollouts.routes)
    shown = ", ".join(names[:20])
    return f"known: {shown}" + (f" and {len(names) - 20} more" if len(names) > 20 else "")


def _selected(request: Request, build: Callable[[RouteQuery], dict[str, Any]]) -> Response:
    """``build`` for the routes the query parameters select, or 400 naming the bad one."""
    try:
        query = RouteQuery.parse(request.query_params)
    except ValueError as exc:
        return _error(400, "bad_request", str(exc))
    return _JSON(build(query))


def _error(status: int, code: str, detail: str) -> Response:
    return _JSON({"error": code, "detail": detail}, status_code=status)


class _Guard:
    """Host check for everything, bearer token for ``/admin/*``."""

    def __init__(self, app: ASGIApp, router: RouterView, loopback: bool) -> None:
        self.app = app
        self.router = router
        self.loopback = loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.loopback:
            host = headers.get(b"host", b"").decode("latin-1")
            if host and not is_loopback_host(host):
                await _error(403, "forbidden", "admin API answers loopback host names only")(
                    scope, receive, send
                )
                return
        if scope["path"].startswith("/admin/"):
            token = self.router.snapshot.config.admin.token
            if token is not None:
                scheme, _, sent = headers.get(b"authorization", b"").partition(b" ")
                expected = token.get_secret_value().encode()
                # The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
                if scheme.lower() != b"bearer" or not hmac.compare_digest(sent.strip(), expected):
                    self.router.metrics.admin_auth_failures.inc()
                    response = _error(401, "unauthorized", "missing or wrong bearer token")
                    response.headers["www-authenticate"] = "Bearer"
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


_ASSET_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def _dashboard_file(name: str) -> str | None:
    try:
        return (resources.files("router.admin") / "dashboard" / name).read_text()
    except (FileNotFoundError, OSError):
        return None


class _Endpoints:
    """The admin API's handlers over one router."""

    def __init__(self, router: RouterView) -> None:
        self.router = router
        self.log = get_logger("router.admin.api")
        self.dashboard = _dashboard_file("index.html") or (
            "<!doctype html><title>traffic-router</title><p>See /admin/status."
        )
        self.assets = {
            name: (text, _ASSET_TYPES[suffix])
            for name, suffix in (("app.js", ".js"), ("style.css", ".css"))
            if (text := _dashboard_file(name)) is not None
        }

    async def healthz(self, request: Request) -> Response:
        return _JSON({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        if self.router.ready and self.router.state_read:
            return _JSON({"status": "ready", "version": self.router.snapshot.version})
        return _JSON({"status": "starting"}, status_code=503)

    async def metrics(self, request: Request) -> Response:
        return Response(
            self.router.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def index(self, request: Request) -> Response:
        return HTMLResponse(
            self.dashboard,
            headers={
                "content-security-policy": "default-src 'self'; img-src 'self' data:; "
                "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
                "x-frame-options": "DENY",
                "cache-control": "no-cache",
            },
        )

    async def asset(self, request: Request) -> Response:
        found = self.assets.get(request.path_params["name"])
        if found is None:
            return _error(404, "not_found", "no such file")
        text, media_type = found
        return Response(text, media_type=media_type, headers={"cache-control": "no-cache"})

    async def status(self, request: Request) -> Response:
        return _selected(request, self.router.status)

    async def stats(self, request: Request) -> Response:
        return _selected(request, self.router.stats)

    async def events(self, request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            return _error(400, "bad_request", "limit must be an integer")
        return _JSON({"events": await self.router.recent_events(max(0, min(limit, 1000)))})

    async def action(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            command = Command(request.path_params["action"])
        except ValueError:
            return _error(404, "not_found", f"unknown action {request.path_params['action']!r}")
        reason = "operator request"
        body = await request.body()
        if body:
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                return _error(400, "bad_request", "body must be JSON like {\"reason\": \"...\"}")
            if isinstance(payload, dict) and isinstance(payload.get("reason"), str):
                reason = payload["reason"][:500]
        return await self._act(name, command, reason)

    async def _act(self, name: str, command: Command, reason: str) -> Response:
        rollouts = self.router.rollouts
        assert rollouts is not None
        try:
            route_status = await rollouts.act(name, command, reason)
        except UnknownRouteError:
            return _error(404, "unknown_route", f"no route {name!r} ({_known(rollouts)})")
        except ActionRejectedError as exc:
            self.log.info("action_refused", route=name, action=command.value, reason=exc.reason)
            return _error(409, "action_not_applicable", exc.reason)
        except StoreUnavailableError as exc:
            return _error(
                503, "state_store_unavailable",
                f"the state store cannot be written ({exc}); only rollback works until it can",
            )
        persisted = rollouts.persisted(name)
        self.log.info(
            "action", route=name, action=command.value, reason=reason, persisted=persisted
        )
        return _JSON(
            {"route": name, "action": command.value, "status": route_status,
             "persisted": persisted}
        )

    async def reload(self, request: Request) -> Response:
        result = await self.router.reload("api")
        if not result.ok:
            return _JSON(
                {"ok": False, "version": result.version, "errors": list(result.errors)},
                status_code=422,
            )
        return _JSON({"ok": True, "version": result.version, "changed": result.changed})


def build_admin_app(
    router: RouterView, listen_host: str, body_limits: Mapping[str, int] | None = None
) -> ASGIApp:
    """The admin ASGI app for ``router``, listening on ``listen_host``.

    ``body_limits`` maps a path to the largest body it takes, for the paths that need more
    than ``router.admin.guard.DEFAULT_BODY_LIMIT``.
    """
    api = _Endpoints(router)
    drift_report, drift_pin = drift_endpoints(router, _JSON, _error)
    routes = [
        Route("/healthz", api.healthz, methods=["GET", "HEAD"]),
        Route("/readyz", api.readyz, methods=["GET", "HEAD"]),
        Route("/metrics", api.metrics, methods=["GET"]),
        Route("/", api.index, methods=["GET"]),
        Route("/dashboard/{name}", api.asset, methods=["GET"]),
        Route("/admin/status", api.status, methods=["GET"]),
        Route("/admin/stats", api.stats, methods=["GET"]),
        Route("/admin/events", api.events, methods=["GET"]),
        Route("/admin/routes/{name}/drift", drift_report, methods=["GET"]),
        Route("/admin/routes/{name}/drift/pin", drift_pin, methods=["POST"]),
        Route("/admin/routes/{name}/{action}", api.action, methods=["POST"]),
        Route("/admin/reload", api.reload, methods=["POST"]),
        Route("/admin/feedback", feedback_endpoint(router.truth, _error), methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    limits = {"/admin/feedback": MAX_FEEDBACK_BODY, **(body_limits or {})}
    guarded = BodyGuard(app, lambda: router.snapshot.config.admin.token is None, _error, limits)
    return _Guard(guarded, router, loopback=is_loopback_host(listen_host))
