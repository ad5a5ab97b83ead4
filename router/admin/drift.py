"""``GET /admin/routes/{name}/drift`` and ``POST /admin/routes/{name}/drift/pin``.

The report gives, per feature of the route's model inputs, the PSI of the live
window against the reference, the missing shares and both histograms, the most
drifting first. ``pin`` makes the live window the new reference. An unknown
route is 404; a route without a ``drift`` section is 404 for the report and 409
for ``pin`` (the action does not apply).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from router.admin.feedback import ErrorResponse
from router.admin.view import RouterView

__all__ = ["drift_endpoints"]

Endpoint = Callable[[Request], Awaitable[Response]]


def drift_endpoints(
    router: RouterView, respond: Callable[[object], Response], refuse: ErrorResponse
) -> tuple[Endpoint, Endpoint]:
    """The report and pin handlers; ``respond`` renders JSON, ``refuse`` the admin errors."""

    def unknown(name: str) -> Response | None:
        known = {route.name for route in router.snapshot.routes}
        if name in known:
            return None
        listed = ", ".join(sorted(known))
        return refuse(404, "unknown_route", f"no route {name!r} (known: {listed})")

    async def report(request: Request) -> Response:
        name = request.path_params["name"]
        found = router.drift.report(name, time.time())
        if found is not None:
            return respond(found)
        return unknown(name) or refuse(404, "no_drift", f"route {name!r} has no drift section")

    async def pin(request: Request) -> Response:
        name = request.path_params["name"]
        found = router.drift.pin(name, time.time())
        if found is not None:
            return respond(found)
        return unknown(name) or refuse(
            409, "action_not_applicable", f"route {name!r} has no drift section to pin"
        )

    return report, pin
