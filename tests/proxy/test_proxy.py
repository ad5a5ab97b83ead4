"""Forwarding rules (docs/http.md), proved against a real router process and real backends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.backends import Recorder, echo_app, slow_app, sse_app
from tests.support import RouterProcess, ServerThread, free_port, wait_until

pytestmark = pytest.mark.e2e  # starts other processes (tests/conftest.py)

PLUGIN = '''
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from strategies.base import ActionRejectedError, Decision, StrategySpec, Transition


class HeaderPickSpec(StrategySpec):
    type: Literal["header_pick"] = "header_pick"
    first: str
    second: str
    header: str = "x-pick"


@dataclass(frozen=True)
class HeaderPickState:
    since: float


class HeaderPickStrategy:
    """A third-party strategy: the request header chooses between two backends."""

    name: ClassVar[str] = "header_pick"
    spec_type: ClassVar[type] = HeaderPickSpec
    variants: ClassVar[tuple[str, ...]] = ("first", "second")

    def backend_refs(self, spec): return {"first": spec.first, "second": spec.second}
    def backends(self, spec, state): return {"first": spec.first, "second": spec.second}
    def identity(self, spec, urls): return "header_pick"
    def initial_state(self, spec, now): return HeaderPickState(now)
    def reconcile(self, spec, state, now): return Transition(state)
    def picker(self, spec, state):
        first = Decision("first", spec.first, "plugin")
        second = Decision("second", spec.second, "plugin")
        return lambda request, rand: second if request.headers.get(spec.header) == "2" else first
    def apply(self, spec, state, command, now, reason): raise ActionRejectedError("no actions")
    def analysis_window(self, spec, state): return None
    def advance(self, spec, state, observation, now): return Transition(state)
    def status(self, spec, state, now): return {"phase": "steady", "weights": {"first": 100}}
    def dump_state(self, state): return {"since": state.since}
    def load_state(self, data): return HeaderPickState(float(data["since"]))
'''


def _install_plugin(site: Path) -> None:
    """A real installed distribution exposing the entry point, found via PYTHONPATH."""
    (site / "tr_plugin_header_pick.py").write_text(PLUGIN)
    dist = site / "tr_plugin_header_pick-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tr-plugin-header-pick\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        "[traffic_router.strategies]\nheader_pick = tr_plugin_header_pick:HeaderPickStrategy\n"
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("proxy")
    recorder, slow_recorder = Recorder(), Recorder()
    echo = ServerThread(echo_app(recorder, "echo")).start()
    other = ServerThread(echo_app(None, "other")).start()
    sse = ServerThread(sse_app()).start()
    slow = ServerThread(slow_app(slow_recorder)).start()
    dead_port = free_port()
    site = tmp / "site"
    site.mkdir()
    _install_plugin(site)
    config = tmp / "router.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            state: {{store: memory}}
            proxy:
              max_request_body: 64MiB
              max_header_bytes: 16KiB
              header_timeout: 2s
            backends:
              echo: {{url: "{echo.url}"}}
              other: {{url: "{other.url}"}}
              sse: {{url: "{sse.url}"}}
              slow: {{url: "{slow.url}", timeout: {{connect: 1s, read: 10s}}}}
              slow-short: {{url: "{slow.url}", timeout: {{connect: 1s, read: 300ms}}}}
              dead: {{url: "http://127.0.0.1:{dead_port}"}}
            routes:
              - name: tenant
                match: {{path_prefix: /echo/tenant, headers: {{x-tenant: acme}}, methods: [POST]}}
                strategy: {{type: direct, backend: other}}
              - name: echo
                match: {{path_prefix: /echo}}
                strategy: {{type: direct, backend: echo}}
              - name: sse
                match: {{path_prefix: /sse}}
                strategy: {{type: direct, backend: sse}}
              - name: slow
                match: {{path_prefix: /slow}}
                strategy: {{type: direct, backend: slow}}
              - name: timeout
                match: {{path_prefix: /timeout}}
                strategy: {{type: direct, backend: slow-short}}
              - name: dead
                match: {{path_prefix: /dead}}
                strategy: {{type: direct, backend: dead}}
              - name: plugin
                match: {{path_prefix: /plugin}}
                strategy: {{type: header_pick, first: echo, second: other}}
            """
        )
    )
    router = RouterProcess(config, env={"PYTHONPATH": str(site)}).start()
    try:
        yield {"router": router, "recorder": recorder, "slow_recorder": slow_recorder}
    finally:
        router.stop()
        for server in (echo, other, sse, slow):
            server.stop()


def _raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def test_forwards_method_raw_path_query_and_body(stack: dict[str, Any]) -> None:
    # A raw socket: httpx itself would normalise the dot segments away.
    reply = _raw(
        stack["router"].port,
        b"POST /echo/a%2Fb/../c?x=1&y=%20 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Connection: close\r\n\r\nhello",
    )
    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.lower().count(b"\r\ndate:") == 1  # the backend's, not a second one
    seen = json.loads(payload)
    assert seen["method"] == "POST"
    assert seen["raw_path"] == "/echo/a%2Fb/../c"
    assert seen["query"] == "x=1&y=%20"
    assert seen["body_length"] == 5


def test_forwarding_headers_and_hop_by_hop(stack: dict[str, Any]) -> None:
    router = stack["router"]
    response = httpx.get(
        f"{router.url}/echo",
        headers={
            "X-Forwarded-For": "6.6.6.6",
            "Connection": "x-drop-me, X-Request-Id",
            "x-drop-me": "1",
            "Host": "evil.example",
            "x-router-shadow": "1",
            "Keep-Alive": "timeout=99",
        },
    )
    headers = dict(response.json()["headers"])
    assert headers["x-forwarded-for"] == "6.6.6.6, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "evil.example"
    assert headers["host"].startswith("127.0.0.1:")
    assert "x-drop-me" not in headers and "keep-alive" not in headers
    assert "x-router-shadow" not in headers
    assert len(headers["x-request-id"]) == 32
    # Response: hop-by-hop and Connection-named headers removed, router headers added.
    assert "x-hop" not in response.headers and "keep-alive" not in response.headers
    assert response.headers["x-request-id"] == headers["x-request-id"]
    assert response.headers["x-router-route"] == "echo"
    assert response.headers["x-router-variant"] == "default"
    assert response.headers["x-router-backend"] == "echo"
    assert response.headers["set-cookie"] == "session=abc"


def test_request_id_is_kept(stack: dict[str, Any]) -> None:
    response = httpx.get(f"{stack['router'].url}/echo", headers={"X-Request-Id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert dict(response.json()["headers"])["x-request-id"] == "abc-123"


@pytest.mark.parametrize(
    ("method", "headers", "expected_backend"),
    [
        ("POST", {"x-tenant": "acme"}, "other"),
        ("GET", {"x-tenant": "acme"}, "echo"),
        ("POST", {"x-tenant": "other"}, "echo"),
    ],
    ids=["all-conditions", "wrong-method", "wrong-header"],
)
def test_first_match_on_prefix_headers_methods(
    stack: dict[str, Any], method: str, headers: dict[str, str], expected_backend: str
) -> None:
    response = httpx.request(method, f"{stack['router'].url}/echo/tenant/x", headers=headers)
    assert response.json()["backend"] == expected_backend


def test_no_route_is_json_404(stack: dict[str, Any]) -> None:
    response = httpx.get(f"{stack['router'].url}/nothing-here")
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "no_route"
    assert body["request_id"] == response.headers["x-request-id"]


def test_absolute_uri_and_host_never_choose_the_upstream(stack: dict[str, Any]) -> None:
    port = stack["router"].port
    reply = _raw(
        port,
        b"GET http://169.254.169.254/echo/meta HTTP/1.1\r\nHost: 169.254.169.254\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert body["backend"] == "echo"
    assert body["raw_path"] == "/echo/meta"


def test_body_over_limit_with_content_length_is_413_before_reading(stack: dict[str, Any]) -> None:
    reply = _raw(
        stack["router"].port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nabc",
    )
    assert reply.startswith(b"HTTP/1.1 413")
    assert b'"body_too_large"' in reply


def test_chunked_body_over_limit_is_413(stack: dict[str, Any]) -> None:
    before = len(stack["recorder"].requests)

    def chunks() -> Iterator[bytes]:
        chunk = b"x" * (1024 * 1024)
        for _ in range(70):
            yield chunk

    response = httpx.post(f"{stack['router'].url}/echo", content=chunks(), timeout=10)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    time.sleep(0.2)  # not synchronisation: a window in which a forwarded request would arrive
    assert len(stack["recorder"].requests) == before  # the backend never saw a complete request


def test_content_length_with_transfer_encoding_is_400(stack: dict[str, Any]) -> None:
    reply = _raw(
        stack["router"].port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 400")
    assert reply.count(b"HTTP/1.1") == 1


def test_header_cap_gives_431(stack: dict[str, Any]) -> None:
    reply = _raw(
        stack["router"].port,
        b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 431")


def test_dead_backend_is_fast_502(stack: dict[str, Any]) -> None:
    started = time.monotonic()
    response = httpx.get(f"{stack['router'].url}/dead")
    assert response.status_code == 502
    assert response.json()["error"] == "upstream_unavailable"
    assert time.monotonic() - started < 3


def test_slow_backend_is_504(stack: dict[str, Any]) -> None:
    response = httpx.get(f"{stack['router'].url}/timeout?s=3", timeout=10)
    assert response.status_code == 504
    assert response.json()["error"] == "upstream_timeout"


def test_sse_arrives_event_by_event(stack: dict[str, Any]) -> None:
    arrivals: list[tuple[float, bytes]] = []
    started = time.monotonic()
    with httpx.stream("GET", f"{stack['router'].url}/sse", timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for chunk in response.iter_raw():
            arrivals.append((time.monotonic() - started, chunk))
    text = b"".join(chunk for _, chunk in arrivals)
    assert text == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    first_event_at = next(t for t, chunk in arrivals if b"data: 0" in chunk)
    # The first event arrives long before the stream ends (3 events, 0.4 s apart).
    assert first_event_at < arrivals[-1][0] - 0.5


def test_large_upload_streams_with_bounded_memory(stack: dict[str, Any]) -> None:
    """A 50 MB body passes through without the router holding it: it streams to a backend
    that counts it, while the router's memory stays far below the body's size."""
    router: RouterProcess = stack["router"]
    assert router.proc is not None
    process = psutil.Process(router.proc.pid)
    before = process.memory_info().rss
    size = 50 * 1024 * 1024

    def chunks() -> Iterator[bytes]:
        sent = 0
        while sent < size:
            sent += 64 * 1024
            yield b"y" * (64 * 1024)

    response = httpx.post(f"{router.url}/echo/upload", content=chunks(), timeout=30)
    assert response.json()["body_length"] == size
    assert process.memory_info().rss - before < 15 * 1024 * 1024


def test_plugin_strategy_from_entry_point(stack: dict[str, Any]) -> None:
    url = f"{stack['router'].url}/plugin"
    assert httpx.get(url).json()["backend"] == "echo"
    second = httpx.get(url, headers={"x-pick": "2"})
    assert second.json()["backend"] == "other"
    assert second.headers["x-router-variant"] == "second"


def test_client_disconnect_cancels_upstream_and_logs_499(stack: dict[str, Any]) -> None:
    router: RouterProcess = stack["router"]
    recorder: Recorder = stack["slow_recorder"]
    before = recorder.disconnects
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{router.url}/slow?s=5", timeout=0.5)
    wait_until(lambda: recorder.disconnects > before, timeout=3)
    wait_until(lambda: '"status":499' in router.logs(), timeout=3)


def test_cancellation_storm_leaves_pool_healthy(stack: dict[str, Any]) -> None:
    router: RouterProcess = stack["router"]

    async def storm() -> list[int]:
        async with httpx.AsyncClient(timeout=5) as client:

            async def cancelled(i: int) -> None:
                with contextlib.suppress(TimeoutError, httpx.HTTPError):
                    await asyncio.wait_for(
                        client.get(f"{router.url}/slow?s=0.2"), timeout=0.001 + (i % 20) / 1000
                    )

            await asyncio.gather(*(cancelled(i) for i in range(200)))
        async with httpx.AsyncClient(timeout=5) as client:
            responses = await asyncio.gather(*(client.get(f"{router.url}/echo") for _ in range(50)))
            return [r.status_code for r in responses]

    codes = asyncio.run(storm())
    assert codes == [200] * 50


def _metric(router: RouterProcess, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{router.admin_url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_model_calls_are_inspected_and_gets_are_not(stack: dict[str, Any]) -> None:
    router: RouterProcess = stack["router"]
    body = b'{"inputs": [{"name": "x", "datatype": "FP32", "data": [1.0, null, 2.0]}]}'
    before = _metric(router, "router_input_missing_values_total", route="echo")
    sizes_before = _metric(router, "router_request_body_bytes_count", route="echo")
    httpx.post(f"{router.url}/echo/v2/models/m/infer", content=body)
    httpx.get(f"{router.url}/echo/v2/models/m")
    assert _metric(router, "router_input_missing_values_total", route="echo") == before + 1
    assert _metric(router, "router_request_body_bytes_count", route="echo") == sizes_before + 1
