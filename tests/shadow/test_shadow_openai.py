"""Shadow ``compare.mode: openai`` through a real router: streamed answers joined, then compared.

The primary and two shadows are stand-in LLM servers. One shadow writes the same text as
the primary, the other names a different model in its sentence (a similarity of about
0.96): at ``min_text_similarity: 0.99`` the first matches and the second does not, for
streamed answers (whose deltas are joined) and whole ones alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from router.demo.llm_server import LlmBehaviour, create_llm_app
from tests.rollout_support import metric
from tests.support import RouterProcess, servers, wait_until

CONFIG = """
state: {{store: memory}}
backends:
  primary: {{url: "{primary}"}}
  twin: {{url: "{twin}"}}
  other: {{url: "{other}"}}
routes:
  - name: chat
    match: {{path_prefix: /v1/}}
    strategy:
      type: shadow
      primary: primary
      shadows: [twin, other]
      compare: {{mode: openai, min_text_similarity: 0.99}}
"""


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    apps = [
        create_llm_app(LlmBehaviour(model, first_token_s=0.01, token_gap_s=0.001))
        for model in ("llama-demo", "llama-demo", "llama-demo-v2")
    ]
    with servers(*apps) as (primary, twin, other):
        config = tmp_path_factory.mktemp("shadow-llm") / "router.yaml"
        config.write_text(CONFIG.format(primary=primary.url, twin=twin.url, other=other.url))
        with RouterProcess(config) as started:
            yield started


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_streamed_and_whole_answers_are_compared_by_text(
    router: RouterProcess, stream: bool
) -> None:
    body = {"model": "llama-demo", "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}
    before = {b: _outcomes(router, b) for b in ("twin", "other")}
    with httpx.Client(timeout=10, trust_env=False) as client:
        for _ in range(3):
            answer = client.post(f"{router.url}/v1/chat/completions", content=json.dumps(body))
            assert answer.status_code == 200
            assert ("data: [DONE]" in answer.text) == stream
    wait_until(lambda: _outcomes(router, "twin")["match"] == before["twin"]["match"] + 3)
    wait_until(lambda: _outcomes(router, "other")["mismatch"] == before["other"]["mismatch"] + 3)
    assert _outcomes(router, "twin")["mismatch"] == before["twin"]["mismatch"]
    assert _outcomes(router, "other")["match"] == before["other"]["match"]
    assert _outcomes(router, "other")["error"] == 0


def _outcomes(router: RouterProcess, backend: str) -> dict[str, float]:
    return {
        outcome: metric(router.admin_url, "router_shadow_requests_total", route="chat",
                        backend=backend, outcome=outcome) or 0.0
        for outcome in ("match", "mismatch", "error")
    }
