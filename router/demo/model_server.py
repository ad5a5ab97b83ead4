"""A demo model server: a scikit-learn iris classifier over the Open Inference Protocol V2.

Two versions are trained at start-up on the iris data set that ships inside scikit-learn
(nothing is downloaded): ``v1`` a logistic regression, ``v2`` a shallow decision tree, so
they genuinely disagree on a few inputs. Missing inputs (null, NaN) get the training means.
Faults for the bad-canary demo and tests (a share of 500s, added latency) are set at start
(``--error-rate``/``--latency-ms`` or ``DEMO_ERROR_RATE``/``DEMO_LATENCY_MS``) and at runtime
with ``POST /admin/fault {"error_rate": 0.3, "latency_ms": 200}`` (0 clears); ``skew``
(0..1, runtime only) makes that share of predictions the first class: a model that
still answers 200 quickly but is wrong in a way only its outputs show.

Needs the ``demo`` extra (numpy, scikit-learn). Run:
``python -m router.demo.model_server --version v1 --port 8001 [--host 127.0.0.1]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import uvicorn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["VERSIONS", "FaultSettings", "IrisModel", "create_app", "main", "train_model"]

VERSIONS = ("v1", "v2")
N_FEATURES = 4
INPUT_NAME = "input-0"
Endpoint = Callable[[Request], Awaitable[Response]]
_NUMERIC_DATATYPES = frozenset(
    ["FP16", "FP32", "FP64"] + [f"{s}INT{b}" for s in ("", "U") for b in (8, 16, 32, 64)]
)


class BadRequestError(ValueError):
    """A request the protocol cannot accept; answered 400 with this message."""


@dataclass(frozen=True, slots=True)
class IrisModel:
    """A trained classifier and the training means that stand in for missing values."""

    version: str
    estimator: Any
    classes: npt.NDArray[np.int64]
    means: npt.NDArray[np.float64]

    def impute(self, rows: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], int]:
        """``rows`` with each NaN replaced by its column's training mean; and how many."""
        missing = np.isnan(rows)
        return np.where(missing, self.means, rows), int(missing.sum())

    def predict(self, rows: npt.NDArray[np.float64]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """Class labels and class probabilities of ``rows`` (shape [n, 4], no NaN)."""
        # One predict_proba call; the label is its argmax, as each estimator's predict() does.
        proba = np.asarray(self.estimator.predict_proba(rows), dtype=np.float32)
        return self.classes[np.argmax(proba, axis=1)], proba


@cache
def train_model(version: str) -> IrisModel:
    """Train ``version`` (``v1`` or ``v2``) on iris; once per process (well under a second)."""
    features, labels = load_iris(return_X_y=True)
    if version == "v1":
        estimator: Any = LogisticRegression(max_iter=500)
    elif version == "v2":
        estimator = DecisionTreeClassifier(max_depth=2, random_state=0)
    else:
        raise ValueError(f"unknown model version {version!r} (known: {', '.join(VERSIONS)})")
    estimator.fit(features, labels)
    return IrisModel(
        version=version,
        estimator=estimator,
        classes=np.asarray(estimator.classes_, dtype=np.int64),
        means=np.asarray(features.mean(axis=0), dtype=np.float64),
    )


@dataclass(slots=True)
class FaultSettings:
    """Injected faults: the share of inference requests answered 500, added latency, and
    the share of predictions forced to the first class (``skew``)."""

    error_rate: float = 0.0
    latency_ms: float = 0.0
    skew: float = 0.0

    def __post_init__(self) -> None:
        for name in ("error_rate", "skew"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1 (got {value})")
        if not 0.0 <= self.latency_ms < math.inf:
            raise ValueError(f"latency_ms must be 0 or more (got {self.latency_ms})")


def _flatten(data: Any, out: list[float]) -> None:
    if isinstance(data, list):
        for item in data:
            _flatten(item, out)
    elif data is None:
        out.append(math.nan)
    elif isinstance(data, int | float) and not isinstance(data, bool):
        if math.isinf(data):
            raise BadRequestError("inputs[0].data: infinite values are not allowed")
        out.append(float(data))
    else:
        raise BadRequestError(f"inputs[0].data: expected numbers or null (got {data!r})")


def _rows_of(shape: Any, size: int) -> int:
    """The rows of a tensor of ``size`` values whose ``shape`` must be [n, 4] (or [4])."""
    if not (
        isinstance(shape, list) and len(shape) in (1, 2) and shape[-1] == N_FEATURES
        and all(type(d) is int and d > 0 for d in shape) and math.prod(shape) == size
    ):
        raise BadRequestError(
            f"inputs[0].shape: expected [n, {N_FEATURES}] matching {size} values (got {shape!r})"
        )
    return size // N_FEATURES


def parse_infer_request(body: bytes) -> tuple[npt.NDArray[np.float64], Any]:
    """The rows (NaN where missing) and the request id of an OIP V2 inference request body.

    Raises BadRequestError, or RecursionError for absurdly nested JSON.
    """
    try:
        payload = json.loads(body)  # the stdlib parser: it accepts the NaN token
    except ValueError as exc:
        raise BadRequestError(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadRequestError("body must be a JSON object")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs or not isinstance(inputs[0], dict):
        raise BadRequestError("inputs: expected a non-empty list of tensors")
    tensor: dict[str, Any] = inputs[0]
    datatype = tensor.get("datatype", "FP32")
    if datatype not in _NUMERIC_DATATYPES:
        raise BadRequestError(f"inputs[0].datatype: expected a numeric type (got {datatype!r})")
    values: list[float] = []
    _flatten(tensor.get("data"), values)
    size = len(values)
    rows = _rows_of(tensor.get("shape", [size // N_FEATURES, N_FEATURES]), size)
    return np.asarray(values, dtype=np.float64).reshape(rows, N_FEATURES), payload.get("id")


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


class _Server:
    """The handlers of one model server, sharing its model, faults and counters."""

    def __init__(self, model: IrisModel, model_name: str, fault: FaultSettings, seed: int | None):
        self.model = model
        self.model_name = model_name
        self.fault = fault
        self.rng = random.Random(seed)  # noqa: S311 - fault dice, not a secret
        self.stats = {"requests": 0, "injected_errors": 0, "missing_values": 0}

    def fixed(self, payload: Any, *, per_model: bool = False) -> Endpoint:
        """An endpoint answering a precomputed JSON body (404 for other models if per_model)."""
        body = orjson.dumps(payload)

        async def endpoint(request: Request) -> Response:
            if per_model and (unknown := self._unknown(request)):
                return unknown
            return Response(body, media_type="application/json")

        return endpoint

    def _unknown(self, request: Request) -> Response | None:
        name = request.path_params["name"]
        version = request.path_params.get("version", self.model.version)
        if name != self.model_name or version != self.model.version:
            return _json({"error": f"unknown model {name!r} version {version!r}"}, 404)
        return None

    async def infer(self, request: Request) -> Response:
        """``POST /v2/models/{name}[/versions/{version}]/infer``."""
        if unknown := self._unknown(request):
            return unknown
        self.stats["requests"] += 1
        if self.fault.latency_ms > 0:
            await asyncio.sleep(self.fault.latency_ms / 1000)
        if self.fault.error_rate > 0 and self.rng.random() < self.fault.error_rate:
            self.stats["injected_errors"] += 1
            return _json({"error": "injected fault"}, 500)
        try:
            raw, request_id = parse_infer_request(await request.body())
        except (BadRequestError, RecursionError) as exc:
            return _json({"error": str(exc)}, 400)
        rows, missing = self.model.impute(raw)
        self.stats["missing_values"] += missing
        labels, proba = self.model.predict(rows)
        if self.fault.skew > 0:
            self._skew(labels, proba)
        answer: dict[str, Any] = {"model_name": self.model_name,
                                  "model_version": self.model.version}
        if request_id is not None:
            answer["id"] = request_id
        answer["parameters"] = {"missing_values": missing}
        answer["outputs"] = [
            {"name": "predict", "datatype": "INT64", "shape": [len(labels)],
             "data": labels.tolist()},
            {"name": "predict_proba", "datatype": "FP32", "shape": list(proba.shape),
             "data": proba.ravel().tolist()},
        ]
        return _json(answer)

    def _skew(self, labels: npt.NDArray[Any], proba: npt.NDArray[Any]) -> None:
        """Force a ``skew`` share of the predictions to the first class (in place)."""
        for i in range(len(labels)):
            if self.rng.random() < self.fault.skew:
                labels[i] = self.model.classes[0]
                proba[i] = 0.0
                proba[i, 0] = 1.0

    async def fault_endpoint(self, request: Request) -> Response:
        """``GET /admin/fault``: faults and counters; ``POST``: change faults (absent keys kept)."""
        if request.method == "POST" and (refused := await self._set_fault(request)):
            return refused
        fault = {"error_rate": self.fault.error_rate, "latency_ms": self.fault.latency_ms,
                 "skew": self.fault.skew}
        return _json({**fault, **self.stats})

    async def _set_fault(self, request: Request) -> Response | None:
        try:
            payload = json.loads(await request.body() or b"{}")
            if not isinstance(payload, dict) or set(payload) - {"error_rate", "latency_ms", "skew"}:
                raise ValueError('expected {"error_rate": 0..1, "latency_ms": >= 0, "skew": 0..1}')
            fault = FaultSettings(
                error_rate=float(payload.get("error_rate", self.fault.error_rate)),
                latency_ms=float(payload.get("latency_ms", self.fault.latency_ms)),
                skew=float(payload.get("skew", self.fault.skew)),
            )
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        self.fault = fault
        return None


def _metadata(model: IrisModel, model_name: str) -> dict[str, Any]:
    return {
        "name": model_name, "versions": [model.version], "platform": "sklearn",
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, N_FEATURES]}],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP32", "shape": [-1, len(model.classes)]},
        ],
    }


def create_app(
    version: str, *, model_name: str = "iris", error_rate: float = 0.0, latency_ms: float = 0.0,
    seed: int | None = None,
) -> Starlette:
    """A Starlette app serving model ``version`` as ``model_name``; ``seed`` fixes fault dice."""
    model = train_model(version)
    server = _Server(model, model_name, FaultSettings(error_rate, latency_ms), seed)
    return Starlette(routes=[
        Route("/health", server.fixed({"status": "ok", "version": version}), methods=["GET"]),
        Route("/v2/health/live", server.fixed({"live": True}), methods=["GET"]),
        Route("/v2/health/ready", server.fixed({"ready": True}), methods=["GET"]),
        Route("/v2/models/{name}", server.fixed(_metadata(model, model_name), per_model=True),
              methods=["GET"]),
        Route("/v2/models/{name}/ready", server.fixed({"name": model_name, "ready": True},
                                                      per_model=True), methods=["GET"]),
        Route("/v2/models/{name}/infer", server.infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", server.infer, methods=["POST"]),
        Route("/admin/fault", server.fault_endpoint, methods=["GET", "POST"]),
    ])


def main(argv: list[str] | None = None) -> None:
    """Serve one model version with uvicorn until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m router.demo.model_server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--version", choices=VERSIONS, default=os.environ.get("DEMO_MODEL_VERSION",
                        "v1"), help="the model version to serve (env DEMO_MODEL_VERSION)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--model-name", default="iris")
    parser.add_argument("--error-rate", type=float, default=os.environ.get("DEMO_ERROR_RATE", 0),
                        help="share of inference requests answered 500 (env DEMO_ERROR_RATE)")
    parser.add_argument("--latency-ms", type=float, default=os.environ.get("DEMO_LATENCY_MS", 0),
                        help="latency added to each inference request (env DEMO_LATENCY_MS)")
    args = parser.parse_args(argv)
    try:
        app = create_app(args.version, model_name=args.model_name,
                         error_rate=args.error_rate, latency_ms=args.latency_ms)
    except ValueError as exc:
        parser.error(str(exc))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
