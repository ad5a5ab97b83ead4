"""LLM and streaming traffic through a real router process (docs/llm.md).

Server-sent events still arrive one by one (a backend that sends each event only after
the client has read the previous one would hang a buffering proxy); the router counts
them, their gaps, the time to first byte and OpenAI token usage. The official ``openai``
SDK talks through the router to the stand-in LLM server, streamed and not, and sees its
``usage``. A canary whose candidate is slower to its first token is rolled back by
``max_ttfb_ratio``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import openai
import pytest

from router.demo.llm_server import LlmBehaviour, create_llm_app
from tests.backends import gated_sse_app
from tests.rollout_support import metric
from tests.support import RouterProcess, servers, wait_until

EVENTS = 5
USAGE = b'data: {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5}}\n\n'

CONFIG = """
state: {{store: memory}}
backends:
  sse: {{url: "{sse}"}}
  fast: {{url: "{fast}"}}
  slow: {{url: "{slow}"}}
routes:
  - name: events
    match: {{path_prefix: /events}}
    strategy: {{type: direct, backend: sse}}
  - name: chat
    match: {{path_prefix: /v1/, body: {{model: llama-demo}}}}
    strategy: {{type: direct, backend: fast}}
  - name: canary
    match: {{path_prefix: /v1/}}
    strategy:
      type: canary
      stable: fast
      candidate: slow
      weight: 50
      sticky: {{body_field: user}}
      analysis: {{interval: 1s, window: 30s, min_requests: 4, max_ttfb_ratio: 3,
                  failures_to_act: 1}}
"""


@pytest.fixture(scope="module")
def gates() -> list[threading.Event]:
    return [threading.Event() for _ in range(EVENTS)]


@pytest.fixture(scope="module")
def router(
    tmp_path_factory: pytest.TempPathFactory, gates: list[threading.Event]
) -> Iterator[RouterProcess]:
    fast = create_llm_app(LlmBehaviour("llama-demo", first_token_s=0.005, token_gap_s=0.002))
    slow = create_llm_app(LlmBehaviour("llama-slow", first_token_s=1.5, token_gap_s=0.002))
    with servers(gated_sse_app(gates, USAGE), fast, slow) as (sse, fast_server, slow_server):
        config = tmp_path_factory.mktemp("llm") / "router.yaml"
        config.write_text(CONFIG.format(sse=sse.url, fast=fast_server.url, slow=slow_server.url))
        with RouterProcess(config) as started:
            yield started


def _metric(router: RouterProcess, name: str, **labels: str) -> float:
    return metric(router.admin_url, name, **labels) or 0.0


def test_events_arrive_one_by_one_and_are_counted(
    router: RouterProcess, gates: list[threading.Event]
) -> None:
    with httpx.Client(timeout=10, trust_env=False) as client, client.stream(
        "GET", f"{router.url}/events"
    ) as response:
        lines = response.iter_lines()
        for i, gate in enumerate(gates):
            gate.set()  # the backend sends event i only now: it must reach us before i + 1
            assert next(lines) == f"data: {i}"
            assert next(lines) == ""
        rest = list(lines)
    assert json.loads(rest[0].removeprefix("data: "))["usage"]["completion_tokens"] == 5
    labels = {"route": "events", "variant": "default"}
    assert _metric(router, "router_stream_events_total", **labels) == EVENTS + 1
    assert _metric(router, "router_stream_event_gap_seconds_count", **labels) == EVENTS
    assert _metric(router, "router_time_to_first_byte_seconds_count", **labels) == 1
    assert _metric(router, "router_tokens_total", kind="prompt", **labels) == 7
    assert _metric(router, "router_tokens_total", kind="completion", **labels) == 5


@pytest.fixture
def sdk(router: RouterProcess) -> Iterator[openai.OpenAI]:
    http = httpx.Client(trust_env=False, timeout=20)
    with openai.OpenAI(base_url=f"{router.url}/v1", api_key="not-used", http_client=http) as c:
        yield c


def test_the_openai_sdk_streams_and_reads_usage_through_the_router(
    router: RouterProcess, sdk: openai.OpenAI
) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    whole = sdk.chat.completions.create(model="llama-demo", messages=messages)  # type: ignore[arg-type]
    assert whole.choices[0].message.content == " ".join(LlmBehaviour("llama-demo").words())
    assert whole.usage is not None and whole.usage.prompt_tokens == 6
    stream = sdk.chat.completions.create(
        model="llama-demo", messages=messages, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(pieces) == whole.choices[0].message.content
    assert usage is not None and usage.completion_tokens == 12
    labels = {"route": "chat", "variant": "default"}
    wait_until(lambda: _metric(router, "router_tokens_total", kind="completion", **labels) == 24)
    assert _metric(router, "router_tokens_total", kind="prompt", **labels) == 12
    events = 12 + 4  # a token each, and role, stop, usage, [DONE]
    assert _metric(router, "router_stream_events_total", **labels) == events
    assert _metric(router, "router_time_to_first_byte_seconds_count", **labels) == 2


def test_a_candidate_slower_to_its_first_token_is_rolled_back(
    router: RouterProcess, sdk: openai.OpenAI
) -> None:
    status_url = f"{router.admin_url}/admin/status"

    def phase() -> str:
        return str(httpx.get(status_url, timeout=10).json()["routes"]["canary"]["phase"])

    def talk() -> None:
        for n in range(40):
            if phase() == "rolled_back":
                return
            for _ in sdk.chat.completions.create(
                model="gpt-demo", user=f"user-{n}", stream=True,
                messages=[{"role": "user", "content": "hello"}],
            ):
                pass

    talkers = [threading.Thread(target=talk) for _ in range(3)]
    for talker in talkers:
        talker.start()
    for talker in talkers:
        talker.join(timeout=120)
    wait_until(lambda: phase() == "rolled_back", timeout=30)
    events = httpx.get(f"{router.admin_url}/admin/events", timeout=10).json()["events"]
    rollback = next(e for e in events if e["event"] == "rollback" and e["route"] == "canary")
    assert "ttfb_ratio" in rollback["reason"], rollback
