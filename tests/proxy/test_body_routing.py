"""``match.body`` and ``sticky.body_field`` (docs/llm.md) through a real router process.

Small JSON bodies are read before routing only for routes with body rules, and still
forwarded byte for byte; bodies over ``proxy.inspect_max_body``, of unknown length or not
JSON stream as usual and match no body rule.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import httpx
import pytest

from strategies.buckets import bucket_of, in_candidate
from strategies.canary.strategy import CanarySpec, sticky_salt
from tests.backends import echo_app
from tests.support import RouterProcess, servers

pytestmark = pytest.mark.e2e  # starts other processes (tests/conftest.py)

CONFIG = """
state: {{store: memory}}
proxy: {{inspect_max_body: 1KiB}}
backends:
  v1: {{url: "{v1}"}}
  v2: {{url: "{v2}"}}
  v3: {{url: "{v3}"}}
routes:
  - name: llama
    match: {{path_prefix: /v1/chat, body: {{model: llama-3-8b}}}}
    strategy: {{type: direct, backend: v3}}
  - name: chat
    match: {{path_prefix: /v1/chat}}
    strategy:
      type: canary
      stable: v1
      candidate: v2
      weight: 40
      sticky: {{body_field: metadata.user_id}}
  - name: other
    match: {{path_prefix: /}}
    strategy: {{type: direct, backend: v1}}
"""


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    apps = (echo_app(None, "v1"), echo_app(None, "v2"), echo_app(None, "v3"))
    with servers(*apps) as (v1, v2, v3):
        config = tmp_path_factory.mktemp("body") / "router.yaml"
        config.write_text(CONFIG.format(v1=v1.url, v2=v2.url, v3=v3.url))
        with RouterProcess(config) as started:
            yield started


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as shared:
        yield shared


def _post(client: httpx.Client, router: RouterProcess, body: bytes | object) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(
        f"{router.url}/v1/chat/completions", content=content,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["body_length"] == len(content)
    assert seen["body_sha256"] == hashlib.sha256(content).hexdigest()
    return response


def test_a_body_field_picks_the_route_and_the_body_is_forwarded_unchanged(
    router: RouterProcess, client: httpx.Client
) -> None:
    answer = _post(client, router, {"model": "llama-3-8b", "messages": [{"content": "hi"}]})
    assert answer.headers["x-router-route"] == "llama" and answer.json()["backend"] == "v3"
    other = _post(client, router, {"model": "mistral-7b"})
    assert other.headers["x-router-route"] == "chat"


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "llama-3-8b", ',  # not JSON
        b'["model", "llama-3-8b"]',  # JSON, not an object
        json.dumps({"model": "llama-3-8b", "pad": "x" * 2000}).encode(),  # over inspect_max_body
    ],
    ids=["not-json", "not-an-object", "over-the-cap"],
)
def test_bodies_that_cannot_be_read_match_no_body_rule(
    router: RouterProcess, client: httpx.Client, body: bytes
) -> None:
    assert _post(client, router, body).headers["x-router-route"] == "chat"


def test_a_body_of_unknown_length_streams_and_matches_no_body_rule(
    router: RouterProcess, client: httpx.Client
) -> None:
    parts = [b'{"model": ', b'"llama-3-8b"}']
    response = client.post(f"{router.url}/v1/chat/completions", content=iter(parts))
    assert response.status_code == 200
    assert response.headers["x-router-route"] == "chat"
    assert response.json()["body_length"] == sum(map(len, parts))
    bodyless = client.get(f"{router.url}/v1/chat/completions")
    assert bodyless.headers["x-router-route"] == "chat"


def test_sticky_body_field_keeps_each_user_on_its_bucket(
    router: RouterProcess, client: httpx.Client
) -> None:
    salt = sticky_salt("chat", CanarySpec(stable="v1", candidate="v2", weight=40))
    expected_candidates = 0
    for n in range(30):
        user = f"user-{n}"
        expected = in_candidate(bucket_of(user, salt), 40)
        expected_candidates += expected
        for turn in range(3):
            body = {"model": "gpt", "metadata": {"user_id": user}, "turn": turn}
            seen = _post(client, router, body).json()["backend"]
            assert seen == ("v2" if expected else "v1"), (user, turn)
    assert 0 < expected_candidates < 30  # both variants were exercised
    anonymous = {_post(client, router, {"model": "gpt"}).json()["backend"] for _ in range(40)}
    assert anonymous == {"v1", "v2"}  # no key: assigned per request


def test_a_route_without_body_rules_forwards_a_large_body_unchanged(
    router: RouterProcess, client: httpx.Client
) -> None:
    big = b"x" * 300_000
    response = client.post(f"{router.url}/predict", content=big)
    assert response.headers["x-router-route"] == "other"
    assert response.json()["body_sha256"] == hashlib.sha256(big).hexdigest()
