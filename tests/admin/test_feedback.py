"""Ground truth (docs/drift.md) against a real router process: labels joined to the version that
answered, unknown and expired ids counted, malformed and oversized batches refused, the CLI."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.backends import model_app
from tests.rollout_support import metric
from tests.support import ROOT, RouterProcess, servers, shared_client, wait_until

pytestmark = pytest.mark.e2e  # starts other processes (tests/conftest.py)

HTTP = shared_client()
V2 = '{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}'

CONFIG = """
state: {{store: memory}}
backends:
  says-1: {{url: "{one}"}}
  says-2: {{url: "{two}"}}
  says-12.5: {{url: "{price}"}}
routes:
  - name: iris
    match: {{path_prefix: /v2/models/iris}}
    strategy:
      type: canary
      stable: says-1
      candidate: says-2
      weight: 50
      force_header: x-router-variant
    feedback: {{keep: 1000, window: 1h}}
  - name: tiny
    match: {{path_prefix: /v2/models/tiny}}
    strategy: {{type: direct, backend: says-1}}
    feedback: {{keep: 3}}
  - name: price
    match: {{path_prefix: /v2/models/price}}
    strategy: {{type: direct, backend: says-12.5}}
    feedback: {{}}
  - name: mirrored
    match: {{path_prefix: /v2/models/mirrored}}
    strategy: {{type: shadow, primary: says-1, shadows: [says-2]}}
    feedback: {{}}
  - name: plain
    match: {{path_prefix: /}}
    strategy: {{type: direct, backend: says-1}}
"""

_ids = itertools.count()


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    directory = tmp_path_factory.mktemp("feedback")
    with servers(model_app(1), model_app(2), model_app(12.5)) as (one, two, price):
        config = directory / "router.yaml"
        config.write_text(CONFIG.format(one=one.url, two=two.url, price=price.url))
        with RouterProcess(config) as running:
            yield running


def predict(router: RouterProcess, route: str, variant: str | None = None) -> str:
    """One inference request on ``route`` (forced to ``variant``); its request id."""
    request_id = f"req-{next(_ids)}"
    headers = {"content-type": "application/json", "x-request-id": request_id}
    if variant:
        headers["x-router-variant"] = variant
    response = HTTP.post(f"{router.url}/v2/models/{route}/infer", content=V2, headers=headers)
    assert response.status_code == 200, response.text
    return request_id


def route_feedback(router: RouterProcess, route: str) -> dict[str, Any]:
    status = HTTP.get(f"{router.admin_url}/admin/status").json()
    found: dict[str, Any] = status["routes"][route]["feedback"]
    return found


def post(router: RouterProcess, body: Any) -> Any:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return HTTP.post(
        f"{router.admin_url}/admin/feedback", content=content,
        headers={"content-type": "application/json"},
    )


def counter(router: RouterProcess, route: str, variant: str, outcome: str) -> float:
    value = metric(
        router.admin_url, "router_feedback_total", route=route, variant=variant, outcome=outcome
    )
    return value or 0.0


def wait_remembered(router: RouterProcess, route: str, count: int) -> None:
    wait_until(lambda: route_feedback(router, route)["remembered"] >= count, timeout=10)


def test_labels_join_to_the_version_that_answered(router: RouterProcess) -> None:
    before = route_feedback(router, "iris")["remembered"]
    stable = [predict(router, "iris", "stable") for _ in range(4)]
    candidate = [predict(router, "iris", "candidate") for _ in range(4)]
    wait_remembered(router, "iris", before + 8)

    response = post(router, [{"request_id": i, "label": 1} for i in stable + candidate[:3]])
    assert response.status_code == 204
    assert response.headers["x-feedback-joined"] == "7"
    single = post(router, {"request_id": candidate[3], "label": "1"})  # one object, label as text
    assert single.status_code == 204 and single.headers["x-feedback-joined"] == "1"

    variants = route_feedback(router, "iris")["variants"]
    assert variants["stable"]["accuracy"] == 1.0 and variants["stable"]["labels"] == 4
    assert variants["candidate"]["accuracy"] == 0.0 and variants["candidate"]["wrong"] == 4
    assert counter(router, "iris", "stable", "correct") == 4
    assert counter(router, "iris", "candidate", "wrong") == 4


def test_a_router_made_request_id_joins_too(router: RouterProcess) -> None:
    response = HTTP.post(f"{router.url}/v2/models/price/infer", content=V2)
    request_id = response.headers["x-request-id"]
    wait_remembered(router, "price", 1)
    assert post(router, {"request_id": request_id, "label": 10}).status_code == 204
    price = route_feedback(router, "price")["variants"]["default"]
    assert price["mae"] == pytest.approx(2.5)
    assert price["accuracy"] is None and price["scored"] == 1
    assert counter(router, "price", "default", "scored") == 1


def test_unknown_expired_and_repeated_ids_are_counted_not_refused(router: RouterProcess) -> None:
    ids = [predict(router, "tiny") for _ in range(5)]  # keep: 3, so the first two expire
    wait_until(lambda: route_feedback(router, "tiny")["remembered"] == 3, timeout=10)
    assert route_feedback(router, "tiny")["dropped"] == 2
    unknown_before = counter(router, "none", "none", "unknown_request")

    items = [{"request_id": i, "label": 1} for i in [*ids, "never-seen"]]
    response = post(router, items)
    assert response.status_code == 204
    assert (response.headers["x-feedback-joined"], response.headers["x-feedback-unknown"]) == (
        "3", "3"
    )
    again = post(router, {"request_id": ids[-1], "label": 1})  # a label joins once
    assert again.status_code == 204 and again.headers["x-feedback-unknown"] == "1"
    assert counter(router, "none", "none", "unknown_request") == unknown_before + 4
    assert route_feedback(router, "tiny")["variants"]["default"]["labels"] == 3


def test_a_shadow_is_judged_on_the_same_labels(router: RouterProcess) -> None:
    ids = [predict(router, "mirrored") for _ in range(5)]
    wait_until(lambda: route_feedback(router, "mirrored")["remembered_from_shadows"] == 5, 10)
    wait_remembered(router, "mirrored", 5)
    response = post(router, [{"request_id": i, "label": 1} for i in ids])
    assert response.headers["x-feedback-joined"] == "5"
    variants = route_feedback(router, "mirrored")["variants"]
    assert variants["primary"]["accuracy"] == 1.0 and variants["primary"]["labels"] == 5
    assert variants["shadow"]["accuracy"] == 0.0 and variants["shadow"]["labels"] == 5
    assert counter(router, "mirrored", "shadow", "wrong") == 5


def test_a_route_without_feedback_remembers_nothing(router: RouterProcess) -> None:
    request_id = predict(router, "plain")
    status = HTTP.get(f"{router.admin_url}/admin/status").json()
    assert "feedback" not in status["routes"]["plain"]
    assert post(router, {"request_id": request_id, "label": 1}).headers["x-feedback-unknown"] == "1"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body: not JSON"),
        (b"42", "body: must be an object or a list of objects"),
        (b"[]", "body: the list is empty"),
        (b'{"label": 1}', "request_id: must be a non-empty string"),
        (b'[{"request_id": "a", "label": 1}, {"request_id": "b"}]', "[1].label: missing"),
        (b'[{"request_id": "a", "label": [1, 2]}]', "[0].label: must be a string, number or"),
        (b'{"request_id": "a", "label": 1, "lable": 2}', "lable: unknown field"),
    ],
)
def test_a_malformed_batch_is_refused_with_its_reason_and_joins_nothing(
    router: RouterProcess, body: bytes, reason: str
) -> None:
    before = route_feedback(router, "iris")["remembered"]
    request_id = predict(router, "iris", "stable")
    wait_remembered(router, "iris", before + 1)
    response = post(router, body.replace(b'"a"', orjson.dumps(request_id)))
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert reason in response.json()["detail"]
    # The prediction named in the refused batch is still there to join.
    assert post(router, {"request_id": request_id, "label": 1}).headers["x-feedback-joined"] == "1"


def test_a_batch_over_1_mib_gets_413(router: RouterProcess) -> None:
    big = orjson.dumps([{"request_id": f"id-{i:08d}", "label": "x" * 40} for i in range(17_000)])
    assert len(big) > 1024 * 1024
    response = post(router, big)
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"
    under = orjson.dumps([{"request_id": f"id-{i:08d}", "label": 1} for i in range(20_000)])
    assert len(under) < 1024 * 1024
    assert post(router, under).headers["x-feedback-unknown"] == "20000"


def test_cli_posts_a_jsonl_file_in_batches(router: RouterProcess, tmp_path: Path) -> None:
    remembered = route_feedback(router, "iris")["remembered"]
    ids = [predict(router, "iris", "stable") for _ in range(3)]
    before = route_feedback(router, "iris")["variants"]["stable"]["labels"]
    wait_remembered(router, "iris", remembered + 3)
    labels = tmp_path / "labels.jsonl"
    lines = [orjson.dumps({"request_id": i, "label": 1}) for i in [*ids, "gone"]]
    labels.write_bytes(b"\n".join(lines) + b"\n")

    done = subprocess.run(
        [sys.executable, "-m", "router", "feedback", str(labels), "--batch", "2",
         "--admin", router.admin_url],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "posted 4 labels in 2 batches: 3 joined, 1 unknown" in done.stdout
    assert route_feedback(router, "iris")["variants"]["stable"]["labels"] == before + 3

    labels.write_bytes(lines[0] + b'\n{"request_id": "x"}\n')
    bad = subprocess.run(
        [sys.executable, "-m", "router", "feedback", str(labels), "--admin", router.admin_url],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert bad.returncode == 1
    assert "line 2: label: missing" in bad.stderr
