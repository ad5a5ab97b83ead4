"""Shadow mirroring: the dispatcher on its own, then through a real router process.

Backends are real uvicorn servers on loopback. The dispatcher tests build
``MirrorJob``s by hand, as the proxy does after the primary's answer was sent;
the end-to-end tests drive a router with shadow routes and read its admin API.
"""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.config.model import BackendSpec, TimeoutSpec
from router.routing.backends import Backend
from router.shadow.dispatcher import ShadowDispatcher
from router.shadow.jobs import MirrorJob
from router.telemetry.events import EventLog
from router.telemetry.metrics import Metrics
from strategies.base import MirrorPlan
from strategies.compare import Comparator
from strategies.shadow.strategy import CompareSpec
from tests.support import RouterProcess, ServerThread, free_port, wait_until

PROBS = [0.1, 0.7, 0.2]
OFF = [0.1, 0.6, 0.3]  # beyond tolerance, and the argmax stays: no label flip
INFER = "/v2/models/m/infer"
REQUEST = b'{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1.0,2.0]}]}'


def v2_answer(data: list[float], model: str = "m") -> bytes:
    """An Open Inference Protocol V2 answer with one probabilities tensor."""
    doc = {
        "model_name": model,
        "id": os.urandom(4).hex(),
        "outputs": [
            {"name": "probabilities", "shape": [1, len(data)], "datatype": "FP32", "data": data}
        ],
    }
    return json.dumps(doc).encode()


class Seen:
    """Requests a backend received (path, headers, body), readable from the test thread."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answered: list[str] = []

    def on(self, path: str) -> list[dict[str, Any]]:
        """The requests whose path starts with ``path``."""
        return [r for r in self.requests if r["path"].startswith(path)]


def model_app(
    seen: Seen, data: list[float], *, delay_s: float = 0.0, status: int = 200
) -> Callable[..., Any]:
    """A model server: records the request, waits ``delay_s``, answers V2 JSON with ``data``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        seen.requests.append({"path": scope["path"], "headers": headers, "body": b"".join(chunks)})
        if delay_s:
            await asyncio.sleep(delay_s)
        body = v2_answer(data) if status < 500 else b'{"error":"boom"}'
        seen.answered.append(scope["path"])
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.fixture(scope="module")
def models() -> Iterator[dict[str, tuple[ServerThread, Seen]]]:
    """primary, agree (same answer), differ (beyond tolerance), slow (2 s), failing (500)."""
    made: dict[str, tuple[ServerThread, Seen]] = {}
    apps: dict[str, Callable[[Seen], Callable[..., Any]]] = {
        "primary": lambda s: model_app(s, PROBS),
        "agree": lambda s: model_app(s, PROBS),
        "differ": lambda s: model_app(s, OFF),
        "slow": lambda s: model_app(s, PROBS, delay_s=2.0),
        "failing": lambda s: model_app(s, PROBS, status=500),
    }
    try:
        for name, build in apps.items():
            seen = Seen()
            made[name] = (ServerThread(build(seen)).start(), seen)
        yield made
    finally:
        for server, _ in made.values():
            server.stop()


# -- the dispatcher on its own ----------------------------------------------------------------


def backends_of(models: dict[str, tuple[ServerThread, Seen]], **extra: str) -> dict[str, Backend]:
    """Backends for every model, ``short`` (the slow one with a 300 ms read timeout), ``extra``."""
    specs = {name: BackendSpec(url=server.url) for name, (server, _) in models.items()}
    specs["short"] = BackendSpec(url=models["slow"][0].url, timeout=TimeoutSpec(read=0.3))
    specs.update({name: BackendSpec(url=url) for name, url in extra.items()})
    return {name: Backend(name, spec) for name, spec in specs.items()}


def plan(*shadows: str, **kwargs: Any) -> MirrorPlan:
    """A mirror plan to ``shadows`` with the default comparison."""
    return MirrorPlan(backends=shadows, compare=Comparator(CompareSpec()), **kwargs)


def job(route: str, mirror: MirrorPlan, request_id: str = "req-1", **kwargs: Any) -> MirrorJob:
    """A finished V2 inference exchange, as the proxy hands it over (fields overridable)."""
    fields: dict[str, Any] = {
        "route": route,
        "plan": mirror,
        "method": b"POST",
        "target": (INFER + "?q=1").encode(),
        "headers": [
            (b"host", b"primary.invalid:1"),
            (b"content-type", b"application/json"),
            (b"x-request-id", request_id.encode()),
        ],
        "body": REQUEST,
        "path": INFER,
        "request_id": request_id,
        "primary_status": 200,
        "primary_body": v2_answer(PROBS),
        "primary_latency_s": 0.004,
    }
    fields.update(kwargs)
    return MirrorJob(**fields)


async def eventually(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``predicate`` on the running loop until truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout}s")


def shadow_count(metrics: Metrics, route: str, backend: str, outcome: str) -> float:
    """``router_shadow_requests_total`` for the labels, 0 when never counted."""
    value = metrics.registry.get_sample_value(
        "router_shadow_requests_total", {"route": route, "backend": backend, "outcome": outcome}
    )
    return value or 0.0


@pytest.fixture
async def dispatcher(
    models: dict[str, tuple[ServerThread, Seen]],
) -> AsyncIterator[ShadowDispatcher]:
    """A dispatcher over the models plus ``dead`` (a port nothing listens on)."""
    dead = f"http://127.0.0.1:{free_port()}"
    table = backends_of(models, dead=dead)
    made = ShadowDispatcher(Metrics(), EventLog(), lambda: table, timeout_s=5.0)
    yield made
    await made.aclose(drain_s=0.1)


async def test_agreeing_and_differing_shadows_are_compared(
    dispatcher: ShadowDispatcher, models: dict[str, tuple[ServerThread, Seen]], tmp_path: Path
) -> None:
    log_path = tmp_path / "mismatches.jsonl"
    dispatcher.dispatch(job("unit-cmp", plan("agree", "differ", mismatch_log=str(log_path))))
    stats = await eventually(
        lambda: (s := dispatcher.route_stats("unit-cmp"))["compared"] == 2 and s
    )
    assert (stats["mirrored"], stats["matched"], stats["mismatched"]) == (2, 1, 1)
    assert stats["agreement_rate"] == 0.5
    assert stats["label_flip_rate"] == 0.0
    assert stats["in_flight"] == 0
    assert stats["latency_ms"]["primary"]["p50"] == 4.0
    assert stats["latency_ms"]["shadow"]["p99"] is not None
    metrics = dispatcher._metrics
    assert shadow_count(metrics, "unit-cmp", "agree", "match") == 1
    assert shadow_count(metrics, "unit-cmp", "differ", "mismatch") == 1
    # The copy: same method, target and body, the shadow's Host, x-router-shadow: 1.
    sent = models["agree"][1].requests[-1]
    assert sent["body"] == REQUEST
    assert sent["headers"]["x-router-shadow"] == "1"
    assert sent["headers"]["host"] == models["agree"][0].url.removeprefix("http://")
    assert sent["headers"]["x-request-id"] == "req-1"
    [line] = log_path.read_text().splitlines()
    record = json.loads(line)
    assert record["backend"] == "differ" and record["request_id"] == "req-1"
    assert record["first_difference"].startswith("outputs[name=probabilities].data[1]")
    [event] = [e for e in dispatcher._events.recent() if e["event"] == "shadow_mismatch"]
    assert event["route"] == "unit-cmp" and event["backend"] == "differ"


@pytest.mark.parametrize(
    ("shadow", "reason"),
    [("failing", "status_500"), ("dead", "connect"), ("short", "timeout")],
    ids=["5xx", "connect-refused", "read-timeout"],
)
async def test_shadow_failures_count_as_errors(
    dispatcher: ShadowDispatcher, shadow: str, reason: str
) -> None:
    route = f"unit-err-{shadow}"
    dispatcher.dispatch(job(route, plan(shadow)))
    stats = await eventually(lambda: (s := dispatcher.route_stats(route))["errors"] == 1 and s)
    assert stats["compared"] == 0 and stats["in_flight"] == 0
    assert shadow_count(dispatcher._metrics, route, shadow, "error") == 1


async def test_an_unreachable_shadow_is_paused_not_retried_per_request(
    dispatcher: ShadowDispatcher,
) -> None:
    """After a refused connect, copies to that shadow are counted errors without a connect."""
    route = "unit-err-paused"
    dispatcher.dispatch(job(route, plan("dead")))
    await eventually(lambda: dispatcher.route_stats(route)["errors"] == 1)
    for i in range(20):
        dispatcher.dispatch(job(route, plan("dead"), request_id=f"r{i}"))
    stats = dispatcher.route_stats(route)
    assert stats["errors"] == 21 and stats["in_flight"] == 0 and stats["mirrored"] == 1
    assert shadow_count(dispatcher._metrics, route, "dead", "error") == 21


@pytest.mark.parametrize(
    ("fields", "sent", "reason"),
    [
        ({"body": None}, False, "request_body_too_large"),
        ({"primary_body": None}, True, "primary_answer_too_large"),
    ],
    ids=["request-over-max-body", "primary-answer-not-captured"],
)
async def test_skips_are_counted_with_a_reason(
    dispatcher: ShadowDispatcher,
    models: dict[str, tuple[ServerThread, Seen]],
    fields: dict[str, Any],
    sent: bool,
    reason: str,
) -> None:
    route = f"unit-skip-{reason}"
    before = len(models["agree"][1].requests)
    dispatcher.dispatch(job(route, plan("agree"), **fields))
    stats = await eventually(lambda: (s := dispatcher.route_stats(route))["skipped"] == 1 and s)
    assert stats["skipped_reasons"] == {reason: 1}
    assert stats["mirrored"] == (1 if sent else 0)
    assert (len(models["agree"][1].requests) > before) == sent
    assert shadow_count(dispatcher._metrics, route, "agree", "skipped") == 1


async def test_full_max_in_flight_drops_and_close_cancels(
    models: dict[str, tuple[ServerThread, Seen]],
) -> None:
    metrics = Metrics()
    table = backends_of(models)
    shadows = ShadowDispatcher(metrics, EventLog(), lambda: table)
    for i in range(5):
        shadows.dispatch(job("unit-full", plan("slow", max_in_flight=2), request_id=f"r{i}"))
    stats = shadows.route_stats("unit-full")
    assert (stats["mirrored"], stats["dropped"], stats["in_flight"]) == (2, 3, 2)
    assert shadow_count(metrics, "unit-full", "slow", "dropped") == 3
    # The proxy asks first and keeps no copies when the answer is no.
    assert not shadows.admits("unit-full", plan("slow", max_in_flight=2))
    assert shadows.admits("unit-full", plan("slow", max_in_flight=3))
    assert shadows.admits("unit-other", plan("slow", max_in_flight=1))
    shadows.drop("unit-full", plan("slow", max_in_flight=2))
    assert shadow_count(metrics, "unit-full", "slow", "dropped") == 4
    started = time.monotonic()
    await shadows.aclose(drain_s=0.1)
    assert time.monotonic() - started < 1.5  # cancelled, not waited for (the shadow takes 2 s)
    stats = shadows.route_stats("unit-full")
    assert (stats["in_flight"], stats["dropped"]) == (0, 6)
    assert not shadows.admits("unit-full", plan("agree"))  # closed
    shadows.dispatch(job("unit-full", plan("agree")))  # closed: dropped, never raises
    assert shadows.route_stats("unit-full")["dropped"] == 7


async def test_mirror_outlives_the_request_task_that_dispatched_it(
    dispatcher: ShadowDispatcher,
) -> None:
    dispatched = asyncio.Event()

    async def request_task() -> None:
        dispatcher.dispatch(job("unit-cancel", plan("agree")))
        dispatched.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(request_task())
    await dispatched.wait()
    task.cancel()  # the client went away just after the primary's answer
    stats = await eventually(
        lambda: (s := dispatcher.route_stats("unit-cancel"))["matched"] == 1 and s
    )
    assert stats["dropped"] == 0
    dispatcher.forget("unit-cancel")
    assert dispatcher.route_stats("unit-cancel")["mirrored"] == 0


# -- through a real router --------------------------------------------------------------------


@pytest.fixture(scope="module")
def router(
    models: dict[str, tuple[ServerThread, Seen]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RouterProcess]:
    tmp = tmp_path_factory.mktemp("shadow")
    urls = {name: server.url for name, (server, _) in models.items()}

    def route(name: str, shadows: str, extra: str = "") -> str:
        return (
            f"  - name: {name}\n"
            f"    match: {{path_prefix: /v2/models/{name}}}\n"
            f"    strategy: {{type: shadow, primary: primary, shadows: [{shadows}]{extra}}}\n"
        )

    config = tmp / "router.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            state: {{store: memory}}
            backends:
              primary: {{url: "{urls['primary']}"}}
              agree: {{url: "{urls['agree']}"}}
              differ: {{url: "{urls['differ']}"}}
              slow: {{url: "{urls['slow']}"}}
              failing: {{url: "{urls['failing']}"}}
            routes:
            """
        )
        + route("cmp", "agree, differ", ", mismatch_log: mismatches.jsonl")
        + route("quiet", "slow, failing")
        + route("flood", "slow", ", max_in_flight: 2")
        + route("small", "agree", ", max_body: 100")
        + route("toggle", "agree")
    )
    process = RouterProcess(config).start()
    try:
        yield process
    finally:
        process.stop()


def shadow_status(router: RouterProcess, route: str) -> dict[str, Any]:
    """The ``shadow`` part of the route's ``/admin/status``."""
    status = httpx.get(f"{router.admin_url}/admin/status", timeout=5).json()
    shadow: dict[str, Any] = status["routes"][route]["shadow"]
    return shadow


def metric(router: RouterProcess, route: str, backend: str, outcome: str) -> float:
    """``router_shadow_requests_total`` as the admin ``/metrics`` shows it (0 when absent)."""
    text = httpx.get(f"{router.admin_url}/metrics", timeout=5).text
    wanted = {"route": route, "backend": backend, "outcome": outcome}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "router_shadow_requests_total" and sample.labels == wanted:
                return float(sample.value)
    return 0.0


def infer(router: RouterProcess, route: str, body: bytes = REQUEST) -> httpx.Response:
    """POST a V2 inference request to the route through the router."""
    return httpx.post(f"{router.url}/v2/models/{route}/infer", content=body, timeout=10)


@pytest.mark.e2e
def test_router_mirrors_to_several_shadows_and_compares(
    router: RouterProcess, models: dict[str, tuple[ServerThread, Seen]]
) -> None:
    for _ in range(3):
        response = infer(router, "cmp")
        assert response.status_code == 200
        assert response.headers["x-router-variant"] == "primary"
    stats = wait_until(lambda: (s := shadow_status(router, "cmp"))["compared"] == 6 and s)
    assert (stats["mirrored"], stats["matched"], stats["mismatched"]) == (6, 3, 3)
    assert metric(router, "cmp", "agree", "match") == 3
    assert metric(router, "cmp", "differ", "mismatch") == 3
    for name in ("agree", "differ"):
        copies = models[name][1].on("/v2/models/cmp")
        assert len(copies) == 3
        assert all(c["headers"]["x-router-shadow"] == "1" and c["body"] == REQUEST for c in copies)
    originals = models["primary"][1].on("/v2/models/cmp")
    assert all("x-router-shadow" not in r["headers"] for r in originals)
    log = router.config_path.parent / "mismatches.jsonl"
    lines = wait_until(lambda: log.exists() and log.read_text().splitlines())
    record = json.loads(lines[0])
    assert record["route"] == "cmp" and record["backend"] == "differ"
    assert record["first_difference"].startswith("outputs[name=probabilities]")


@pytest.mark.e2e
def test_slow_and_failing_shadows_are_invisible_to_the_client(
    router: RouterProcess, models: dict[str, tuple[ServerThread, Seen]]
) -> None:
    slow = models["slow"][1]
    response = infer(router, "quiet")
    # Had the router waited for the shadow (which sleeps 2 s), the shadow would have answered.
    assert not [path for path in slow.answered if path.startswith("/v2/models/quiet")]
    assert response.status_code == 200
    assert json.loads(response.content)["outputs"][0]["data"] == PROBS
    stats = wait_until(lambda: (s := shadow_status(router, "quiet"))["in_flight"] == 0 and s, 10)
    assert stats["errors"] == 1 and stats["matched"] == 1
    assert metric(router, "quiet", "failing", "error") == 1
    assert len(models["slow"][1].on("/v2/models/quiet")) == 1


@pytest.mark.e2e
def test_full_max_in_flight_drops_and_counts(router: RouterProcess) -> None:
    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(lambda _: infer(router, "flood").status_code, range(20)))
    assert codes == [200] * 20
    stats = wait_until(
        lambda: (s := shadow_status(router, "flood"))["mirrored"] + s["dropped"] == 20 and s
    )
    assert stats["dropped"] >= 1 and stats["in_flight"] <= 2
    assert stats["mirrored"] <= 20 - stats["dropped"]
    assert metric(router, "flood", "slow", "dropped") == stats["dropped"]


@pytest.mark.e2e
def test_bodies_over_max_body_are_skipped(
    router: RouterProcess, models: dict[str, tuple[ServerThread, Seen]]
) -> None:
    big = REQUEST[:-1] + b"," + b'"pad":"' + b"x" * 200 + b'"}'
    assert infer(router, "small", big).status_code == 200
    assert infer(router, "small").status_code == 200
    stats = wait_until(lambda: (s := shadow_status(router, "small"))["matched"] == 1 and s)
    assert stats["skipped"] == 1 and stats["mirrored"] == 1
    assert metric(router, "small", "agree", "skipped") == 1
    assert [c["body"] for c in models["agree"][1].on("/v2/models/small")] == [REQUEST]


@pytest.mark.e2e
def test_rollback_stops_mirroring_and_resume_restarts_it(
    router: RouterProcess, models: dict[str, tuple[ServerThread, Seen]]
) -> None:
    copies = models["agree"][1]
    assert infer(router, "toggle").status_code == 200
    wait_until(lambda: len(copies.on("/v2/models/toggle")) == 1)
    action = httpx.post(f"{router.admin_url}/admin/routes/toggle/rollback", timeout=5)
    assert action.status_code == 200
    for _ in range(5):
        assert infer(router, "toggle").status_code == 200
    time.sleep(0.3)  # a mirror, had one been dispatched, would have arrived by now
    assert len(copies.on("/v2/models/toggle")) == 1
    assert shadow_status(router, "toggle")["mirrored"] == 1
    action = httpx.post(f"{router.admin_url}/admin/routes/toggle/resume", timeout=5)
    assert action.status_code == 200
    assert infer(router, "toggle").status_code == 200
    wait_until(lambda: len(copies.on("/v2/models/toggle")) == 2)
