"""``/admin/status`` and ``/admin/stats`` at thousands of routes: filter by name and phase, page.

A real router process on 2,000 routes: 1,996 settled canaries (a fixed weight),
two ramps (progressing), one ramp waiting at a manual step, and a catch-all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import RouterProcess, router_on_echo_backends, shared_client

HTTP = shared_client()
SETTLED = 1996


def _route(name: str, strategy: str, prefix: str = "") -> str:
    path = prefix or f"/{name}"
    return f"  - {{name: {name}, match: {{path_prefix: {path}}}, strategy: {strategy}}}"


def scale_config() -> str:
    """The config, a template for ``router_on_echo_backends`` (``{v1}``, ``{v2}``)."""
    canary = "{{type: canary, stable: v1, candidate: v2, {}}}"
    routes = [_route(f"model-{n:04d}", canary.format("weight: 10")) for n in range(SETTLED)]
    routes += [_route(name, canary.format("steps: [{weight: 10, hold: 1h}]"))
               for name in ("ramp-a", "ramp-b")]
    routes.append(_route("gate", canary.format("steps: [{weight: 10, hold: manual}]")))
    routes.append(_route("rest", "{type: direct, backend: v1}", prefix="/"))
    # Doubled braces: the text is formatted with the backends' URLs.
    body = "\n".join(routes).replace("{", "{{").replace("}", "}}")
    head = 'state: {{store: memory}}\nbackends:\n  v1: {{url: "{v1}"}}\n  v2: {{url: "{v2}"}}\n'
    return head + "routes:\n" + body + "\n"


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    with router_on_echo_backends(
        tmp_path_factory.mktemp("scale"), scale_config(), ("v1", "v2"), {}
    ) as running:
        yield running


def _get(router: RouterProcess, path: str, status: int = 200) -> Any:
    response = HTTP.get(router.admin_url + path, timeout=30)
    assert response.status_code == status, response.text
    return response.json()


def test_without_parameters_every_route_is_listed(router: RouterProcess) -> None:
    body = _get(router, "/admin/status")
    assert len(body["routes"]) == SETTLED + 4
    assert "page" not in body


def test_filter_by_name_and_page(router: RouterProcess) -> None:
    body = _get(router, "/admin/status?route=MODEL-01&limit=5&offset=10")
    assert list(body["routes"]) == [f"model-01{n}" for n in range(10, 15)]
    assert body["page"] == {"matched": 100, "total": SETTLED + 4, "active": 3,
                            "offset": 10, "limit": 5}


def test_filter_by_phase(router: RouterProcess) -> None:
    body = _get(router, "/admin/status?phase=progressing,waiting")
    assert set(body["routes"]) == {"ramp-a", "ramp-b", "gate"}
    assert body["routes"]["gate"]["phase"] == "waiting"


def test_active_first_then_the_rest_in_file_order(router: RouterProcess) -> None:
    body = _get(router, "/admin/status?order=active&limit=5")
    assert list(body["routes"]) == ["ramp-a", "ramp-b", "gate", "model-0000", "model-0001"]
    only = _get(router, "/admin/status?active=1")
    assert list(only["routes"]) == ["ramp-a", "ramp-b", "gate"]


def test_stats_take_the_same_selection(router: RouterProcess) -> None:
    body = _get(router, "/admin/stats?route=ramp")
    assert set(body["routes"]) == {"ramp-a", "ramp-b"}
    assert body["page"]["matched"] == 2


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit must be between 1 and 1000 (got 0)"),
        ("offset=x", "offset must be an integer (got 'x')"),
        ("order=name", "order must be file or active (got 'name')"),
        ("active=yes", "active must be 1 or 0 (got 'yes')"),
    ],
)
def test_a_bad_parameter_is_a_json_400_naming_it(
    router: RouterProcess, query: str, message: str
) -> None:
    body = _get(router, f"/admin/status?{query}", status=400)
    assert body == {"error": "bad_request", "detail": message}


def test_an_unknown_route_error_names_a_few_routes_not_all(router: RouterProcess) -> None:
    response = HTTP.post(router.admin_url + "/admin/routes/nope/pause", timeout=30)
    assert response.status_code == 404
    assert response.json()["detail"].endswith(f"and {SETTLED + 4 - 20} more)")
