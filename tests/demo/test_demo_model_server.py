"""The demo model servers: real uvicorn, real HTTP, both model versions (OIP V2)."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris

from router.demo.model_server import create_app, train_model
from tests.support import ROOT, ServerThread, free_port, wait_until

IRIS = load_iris().data


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, str]]:
    """One server per version, shared by the read-only tests of this module."""
    with ServerThread(create_app("v1")) as v1, ServerThread(create_app("v2")) as v2:
        yield {"v1": v1.url, "v2": v2.url}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as c:
        yield c


def infer(client: httpx.Client, url: str, data: Any, **tensor: Any) -> httpx.Response:
    body = {"inputs": [{"name": "input-0", "datatype": "FP32", "data": data, **tensor}]}
    return client.post(f"{url}/v2/models/iris/infer", json=body)


def labels_of(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    return list(outputs["predict"]["data"])


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize(
    "path", ["/v2/health/live", "/v2/health/ready", "/health", "/v2/models/iris/ready"]
)
def test_health_endpoints_answer_200(
    urls: dict[str, str], client: httpx.Client, version: str, path: str
) -> None:
    assert client.get(urls[version] + path).status_code == 200


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_metadata_describes_the_model(
    urls: dict[str, str], client: httpx.Client, version: str
) -> None:
    meta = client.get(f"{urls[version]}/v2/models/iris").json()
    assert meta["name"] == "iris"
    assert meta["versions"] == [version]
    assert meta["platform"] == "sklearn"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [
        ("predict", "INT64"),
        ("predict_proba", "FP32"),
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/models/other"),
        ("GET", "/v2/models/other/ready"),
        ("POST", "/v2/models/other/infer"),
        ("POST", "/v2/models/iris/versions/v9/infer"),
    ],
    ids=["metadata", "ready", "infer", "wrong-version"],
)
def test_unknown_model_is_404(
    urls: dict[str, str], client: httpx.Client, method: str, path: str
) -> None:
    response = client.request(method, urls["v1"] + path, json={"inputs": []})
    assert response.status_code == 404
    assert "error" in response.json()


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("nested", [True, False], ids=["nested", "flat"])
def test_infer_answers_v2_tensors(
    urls: dict[str, str], client: httpx.Client, version: str, nested: bool
) -> None:
    rows = IRIS[[0, 60, 120]]
    data = rows.tolist() if nested else rows.ravel().tolist()
    body = {"id": "req-7", "inputs": [
        {"name": "input-0", "datatype": "FP32", "shape": [3, 4], "data": data}
    ]}
    answer = client.post(f"{urls[version]}/v2/models/iris/infer", json=body).json()
    assert answer["model_name"] == "iris"
    assert answer["model_version"] == version
    assert answer["id"] == "req-7"
    predict, proba = answer["outputs"]
    assert (predict["name"], predict["datatype"], predict["shape"]) == ("predict", "INT64", [3])
    assert all(isinstance(label, int) and label in (0, 1, 2) for label in predict["data"])
    assert (proba["name"], proba["datatype"], proba["shape"]) == ("predict_proba", "FP32", [3, 3])
    matrix = np.asarray(proba["data"]).reshape(3, 3)
    assert np.allclose(matrix.sum(axis=1), 1.0, atol=1e-5)
    assert predict["data"] == matrix.argmax(axis=1).tolist()
    assert predict["data"] == [0, 1, 2]  # three easy flowers, one of each species


def test_versions_disagree_on_some_inputs(urls: dict[str, str], client: httpx.Client) -> None:
    everything = {v: labels_of(infer(client, url, IRIS.tolist())) for v, url in urls.items()}
    differing = [i for i in range(len(IRIS)) if everything["v1"][i] != everything["v2"][i]]
    assert differing, "v1 and v2 should not be the same model"
    assert len(differing) < len(IRIS) // 4, "both versions should still be decent classifiers"
    row = IRIS[differing[0]].tolist()
    one = {v: labels_of(infer(client, url, row, shape=[1, 4])) for v, url in urls.items()}
    assert one["v1"] != one["v2"]
    versioned = client.post(
        f"{urls['v2']}/v2/models/iris/versions/v2/infer",
        json={"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [4], "data": row}]},
    )
    assert labels_of(versioned) == one["v2"]


def test_missing_values_are_imputed_with_training_means_and_counted(
    urls: dict[str, str], client: httpx.Client
) -> None:
    means = IRIS.mean(axis=0)
    row = IRIS[70].tolist()
    holes = [row[0], None, row[2], None]
    filled = [row[0], means[1], row[2], means[3]]
    before = client.get(f"{urls['v1']}/admin/fault").json()["missing_values"]
    # NaN is not JSON, but OIP clients send it (as TF-Serving allows): send the raw token.
    raw = '{"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [2, 4], "data": '
    raw += f'[[{row[0]}, null, {row[2]}, null], [NaN, {row[1]}, {row[2]}, {row[3]}]]' + "}]}"
    answer = client.post(f"{urls['v1']}/v2/models/iris/infer", content=raw).json()
    assert answer["parameters"] == {"missing_values": 3}
    assert client.get(f"{urls['v1']}/admin/fault").json()["missing_values"] == before + 3
    expected = infer(client, urls["v1"], [filled, [means[0], *row[1:]]]).json()
    assert answer["outputs"] == expected["outputs"]
    assert infer(client, urls["v1"], holes).json()["outputs"][0]["data"] == expected[
        "outputs"
    ][0]["data"][:1]


BAD_BODIES: list[tuple[str, bytes | dict[str, Any] | list[Any]]] = [
    ("not-json", b"{inputs: nope"),
    ("json-list", [1, 2, 3]),
    ("no-inputs", {"id": "x"}),
    ("empty-inputs", {"inputs": []}),
    ("tensor-not-object", {"inputs": [[1, 2, 3, 4]]}),
    ("no-data", {"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4]}]}),
    ("empty-data", {"inputs": [{"name": "input-0", "datatype": "FP32", "data": []}]}),
    ("strings", {"inputs": [{"datatype": "FP32", "data": ["a", "b", "c", "d"]}]}),
    ("booleans", {"inputs": [{"datatype": "FP32", "data": [True, 1, 2, 3]}]}),
    ("bytes-type", {"inputs": [{"datatype": "BYTES", "data": [1, 2, 3, 4]}]}),
    ("three-features", {"inputs": [{"datatype": "FP32", "data": [1, 2, 3]}]}),
    ("shape-mismatch", {"inputs": [{"datatype": "FP32", "shape": [3, 4], "data": [1, 2, 3, 4]}]}),
    ("wrong-last-dim", {"inputs": [{"datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4]}]}),
    ("bad-shape", {"inputs": [{"datatype": "FP32", "shape": "1x4", "data": [1, 2, 3, 4]}]}),
    ("infinity", b'{"inputs": [{"datatype": "FP32", "data": [Infinity, 1, 2, 3]}]}'),
]


@pytest.mark.parametrize("body", [b for _, b in BAD_BODIES], ids=[n for n, _ in BAD_BODIES])
def test_malformed_request_is_400_with_an_error(
    urls: dict[str, str], client: httpx.Client, body: bytes | dict[str, Any] | list[Any]
) -> None:
    url = f"{urls['v2']}/v2/models/iris/infer"
    response = (
        client.post(url, content=body) if isinstance(body, bytes) else client.post(url, json=body)
    )
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


def test_fault_injection_at_runtime(client: httpx.Client) -> None:
    with ServerThread(create_app("v2", seed=7)) as server:
        row = IRIS[0].tolist()
        assert infer(client, server.url, row).status_code == 200
        set_fault = client.post(f"{server.url}/admin/fault", json={"error_rate": 0.5})
        assert set_fault.json()["error_rate"] == 0.5
        codes = [infer(client, server.url, row).status_code for _ in range(40)]
        assert set(codes) == {200, 500}
        assert 5 <= codes.count(500) <= 35
        assert client.get(f"{server.url}/admin/fault").json()["injected_errors"] == codes.count(500)
        error = infer(client, server.url, row)
        while error.status_code != 500:
            error = infer(client, server.url, row)
        assert "error" in error.json()
        # health stays green: the fault is in the model, not the process
        assert client.get(f"{server.url}/v2/health/ready").status_code == 200

        client.post(f"{server.url}/admin/fault", json={"error_rate": 0, "latency_ms": 150})
        started = time.monotonic()
        assert infer(client, server.url, row).status_code == 200
        assert time.monotonic() - started >= 0.14
        cleared = client.post(f"{server.url}/admin/fault", json={"latency_ms": 0}).json()
        assert (cleared["error_rate"], cleared["latency_ms"]) == (0.0, 0.0)
        assert all(infer(client, server.url, row).status_code == 200 for _ in range(10))


@pytest.mark.parametrize(
    "body",
    [b'{"error_rate": 1.5}', b'{"latency_ms": -1}', b'{"rate": 0.1}', b"[]", b"nope",
     b'{"error_rate": "lots"}'],
    ids=["rate-above-1", "negative-latency", "unknown-key", "not-object", "not-json", "not-number"],
)
def test_bad_fault_settings_are_400(
    urls: dict[str, str], client: httpx.Client, body: bytes
) -> None:
    response = client.post(f"{urls['v1']}/admin/fault", content=body)
    assert response.status_code == 400
    assert client.get(f"{urls['v1']}/admin/fault").json()["error_rate"] == 0.0


def test_faults_from_constructor_arguments(client: httpx.Client) -> None:
    with ServerThread(create_app("v1", error_rate=1.0)) as server:
        assert all(infer(client, server.url, IRIS[0].tolist()).status_code == 500 for _ in range(5))


@pytest.mark.parametrize(
    "kwargs",
    [{"version": "v3"}, {"version": "v1", "error_rate": 2.0}, {"version": "v1", "latency_ms": -5}],
    ids=["unknown-version", "rate-above-1", "negative-latency"],
)
def test_create_app_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    version = kwargs.pop("version")
    with pytest.raises(ValueError):
        create_app(version, **kwargs)


def test_each_version_is_trained_once_per_process() -> None:
    assert train_model("v1") is train_model("v1")
    assert train_model("v1") is not train_model("v2")
    assert not math.isnan(float(train_model("v2").means.sum()))


@pytest.mark.e2e
def test_command_line_serves_a_version_with_faults_from_the_environment(
    client: httpx.Client,
) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "router.demo.model_server", "--version", "v2", "--port", str(port)]
    env = {"PATH": "/usr/bin:/bin", "DEMO_ERROR_RATE": "1", "DEMO_LATENCY_MS": "5"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                return client.get(f"{url}/health").json() == {"status": "ok", "version": "v2"}
            except httpx.TransportError:
                return False

        wait_until(healthy, timeout=30, interval=0.1)
        assert client.get(f"{url}/admin/fault").json()["latency_ms"] == 5.0
        assert infer(client, url, IRIS[0].tolist()).status_code == 500
    finally:
        proc.terminate()
        proc.wait(timeout=10)
