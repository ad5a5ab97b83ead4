"""Input drift (docs/drift.md) against a real router process: a shifted feature is reported (PSI,
gauge, one ``input_drift`` event), unshifted ones are not, missing shares, pin, a reference file."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from router.config.loader import ConfigError, parse_config
from tests.backends import model_app
from tests.rollout_support import metric
from tests.support import RouterProcess, servers, shared_client, wait_until

HTTP = shared_client()

#: A route whose inputs are sampled whole, its reference the first 200 (a ``format`` template).
LOANS = """
  - name: loans
    match: {{path_prefix: /loans}}
    strategy: {{type: direct, backend: model}}
    drift: {{reference: first 200, window: 5m, sample: 1, max_psi: 0.25}}
"""
CONFIG = """
state: {{store: memory}}
backends:
  model: {{url: "{model}"}}
routes:""" + LOANS + """  - name: fixed
    match: {{path_prefix: /fixed}}
    strategy: {{type: direct, backend: model}}
    drift: {{reference: file {reference}, window: 5m, sample: 1, features: [age]}}
"""


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    directory = tmp_path_factory.mktemp("drift")
    rng = random.Random(5)
    reference = directory / "reference.jsonl"
    reference.write_bytes(b"".join(
        orjson.dumps({"age": rng.uniform(20, 60), "income": 1.0}) + b"\n" for _ in range(300)
    ))
    with servers(model_app(1)) as (model,):
        config = directory / "router.yaml"
        config.write_text(CONFIG.format(model=model.url, reference="reference.jsonl"))
        with RouterProcess(config) as running:
            yield running


def send(router: RouterProcess, route: str, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        response = HTTP.post(
            f"{router.url}/{route}/predict", content=orjson.dumps(row),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200


def drift(router: RouterProcess, route: str) -> dict[str, Any]:
    response = HTTP.get(f"{router.admin_url}/admin/routes/{route}/drift")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def features(router: RouterProcess, route: str) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in drift(router, route)["features"]}


def loans(rng: random.Random, n: int, shift: float = 0.0, missing: float = 0.0) -> list[Any]:
    """Rows whose ``amount`` moves by ``shift``; ``term`` is null ``missing`` of the time."""
    return [
        {"amount": rng.gauss(100 + shift, 15), "rate": rng.uniform(1, 5),
         "term": None if rng.random() < missing else rng.choice([12, 24, 36]),
         "grade": rng.choice("ABC")}
        for _ in range(n)
    ]


def drift_events(router: RouterProcess) -> list[dict[str, Any]]:
    found = HTTP.get(f"{router.admin_url}/admin/events?limit=1000").json()["events"]
    return [e for e in found if e["event"] == "input_drift"]


def test_a_shifted_feature_is_reported_and_the_others_are_not(router: RouterProcess) -> None:
    rng = random.Random(11)
    send(router, "loans", loans(rng, 200))  # the reference: the first 200 inputs
    wait_until(lambda: drift(router, "loans")["reference"]["ready"], timeout=10)
    send(router, "loans", loans(rng, 400, shift=40, missing=0.3))

    def settled() -> dict[str, dict[str, Any]] | None:
        found = features(router, "loans")
        return found if found["amount"]["rows"]["live"] >= 600 else None

    found = wait_until(settled, timeout=15)
    assert found["amount"]["psi"] > 0.25
    assert next(iter(features(router, "loans"))) == "amount"  # the most drifting comes first
    for steady in ("rate", "grade"):
        assert found[steady]["psi"] < 0.1, found[steady]
    assert found["term"]["missing"]["reference"] == 0.0
    assert 0.12 < found["term"]["missing"]["live"] < 0.28  # 400 of 600 rows, 30 % of them null
    assert len(found["amount"]["bins"]) == 10 and len(found["amount"]["live"]) == 10

    wait_until(lambda: drift_events(router), timeout=10)
    gauge = metric(router.admin_url, "router_input_drift_psi", route="loans", feature="amount")
    assert gauge is not None and gauge > 0.25
    send(router, "loans", loans(rng, 50, shift=40))
    wait_until(lambda: metric(router.admin_url, "router_input_drift_psi", route="loans",
                              feature="amount") != gauge, timeout=10)
    events = drift_events(router)
    assert [e["feature"] for e in events] == ["amount"]  # once per crossing, nothing else
    assert "psi" in events[0]["reason"] and events[0]["route"] == "loans"


def test_pin_makes_the_live_window_the_reference(router: RouterProcess) -> None:
    # Its own reference and live rows, so the test does not lean on the one before it.
    rng = random.Random(13)
    send(router, "loans", loans(rng, 200))
    wait_until(lambda: drift(router, "loans")["reference"]["ready"], timeout=10)
    send(router, "loans", loans(rng, 200, shift=40))
    wait_until(lambda: features(router, "loans").get("amount", {}).get("rows", {})
               .get("live", 0) >= 200, timeout=10)
    response = HTTP.post(f"{router.admin_url}/admin/routes/loans/drift/pin")
    assert response.status_code == 200
    pinned = response.json()
    assert pinned["reference"]["source"] == "pinned" and pinned["drifting"] == []
    amount = {f["name"]: f for f in pinned["features"]}["amount"]
    assert amount["psi"] < 0.1  # the window compared with itself


def test_a_reference_file_and_a_feature_list(router: RouterProcess) -> None:
    wait_until(lambda: drift(router, "fixed")["reference"]["rows"] == 300, timeout=10)
    rng = random.Random(12)
    send(router, "fixed", [{"age": rng.uniform(20, 60), "income": 9.0} for _ in range(100)])
    found = wait_until(
        lambda: (f := features(router, "fixed"))["age"]["rows"]["live"] >= 100 and f, timeout=10
    )
    assert list(found) == ["age"] and found["age"]["psi"] < 0.2


def test_unknown_route_and_route_without_drift(router: RouterProcess) -> None:
    assert HTTP.get(f"{router.admin_url}/admin/routes/nope/drift").status_code == 404
    assert HTTP.post(f"{router.admin_url}/admin/routes/nope/drift/pin").status_code == 404


def test_an_unreadable_reference_file_is_a_config_error(tmp_path: Path) -> None:
    text = CONFIG.format(model="http://127.0.0.1:9", reference="missing.jsonl")
    with pytest.raises(ConfigError, match=r"routes\[1\]\.drift\.reference: no such file"):
        parse_config(text.encode(), base_dir=tmp_path)
