"""The demo's load driver: OIP V2 iris requests from sticky users, and what came back.

Inputs are rows of the iris data set shipped with scikit-learn, jittered a little
so they are not exactly the training rows; about 3 % carry a missing value
(``null``). Each request has an ``x-user-id`` from a pool of users, so a canary's
sticky assignment is visible. Which version answered is read from the router's
``x-router-route`` / ``x-router-variant`` / ``x-router-backend`` response headers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.util
import itertools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import orjson

if TYPE_CHECKING:
    from router.demo.truth import LabelledBodies

__all__ = [
    "LoadStats",
    "Outcome",
    "VariantNumbers",
    "answered",
    "body_maker",
    "drive",
    "iris_rows",
    "iris_table",
]

MISSING_SHARE = 0.03
JITTER = 0.1
UNKNOWN = "?"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request's result; ``status`` 0 means no HTTP answer (refused, reset, timeout)."""

    at: float
    route: str
    variant: str
    backend: str
    status: int
    latency_s: float
    ttft_s: float | None = None  # streamed answers: when the first event arrived

    @property
    def failed(self) -> bool:
        """A 5xx or no answer: what the router's analysis counts as an error too."""
        return self.status == 0 or self.status >= 500


@dataclass(frozen=True, slots=True)
class VariantNumbers:
    """Client-side numbers of one route's variant over the trailing window."""

    route: str
    variant: str
    backend: str
    rate: float
    error_rate: float | None
    p99_ms: float | None
    requests: int
    ttft_p99_ms: float | None = None  # time to first token, for streamed answers


def answered(response: httpx.Response, started: float, ttft_s: float | None = None) -> Outcome:
    """The outcome of an answered request, its route and variant from the router's headers."""
    got = response.headers
    return Outcome(
        at=time.monotonic(),
        route=got.get("x-router-route", UNKNOWN),
        variant=got.get("x-router-variant", UNKNOWN),
        backend=got.get("x-router-backend", UNKNOWN),
        status=response.status_code,
        latency_s=time.monotonic() - started,
        ttft_s=ttft_s,
    )


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


class LoadStats:
    """Outcomes of the last ``window_s`` seconds, and running totals per route and variant."""

    def __init__(self, window_s: float = 3.0) -> None:
        self.window_s = window_s
        self.started = time.monotonic()
        self._recent: collections.deque[Outcome] = collections.deque()
        self.totals: collections.Counter[tuple[str, str]] = collections.Counter()
        self.failures: collections.Counter[tuple[str, str]] = collections.Counter()

    def record(self, outcome: Outcome) -> None:
        """Count one request."""
        self._recent.append(outcome)
        key = (outcome.route, outcome.variant)
        self.totals[key] += 1
        if outcome.failed:
            self.failures[key] += 1

    def _trim(self, now: float) -> None:
        horizon = now - self.window_s
        while self._recent and self._recent[0].at < horizon:
            self._recent.popleft()

    def sent_rate(self, now: float) -> float:
        """Requests per second over the window (or since the start, if shorter)."""
        self._trim(now)
        return len(self._recent) / self._span(now)

    def _span(self, now: float) -> float:
        return max(0.5, min(self.window_s, now - self.started))

    def numbers(self, now: float) -> list[VariantNumbers]:
        """Per route and variant: requests/s, error rate and p99 over the window."""
        self._trim(now)
        groups: dict[tuple[str, str], list[Outcome]] = collections.defaultdict(list)
        for outcome in self._recent:
            groups[(outcome.route, outcome.variant)].append(outcome)
        span = self._span(now)
        result = []
        for (route, variant), items in sorted(groups.items()):
            answered = [o.latency_s for o in items if o.status]
            first_tokens = [o.ttft_s for o in items if o.ttft_s is not None]
            result.append(VariantNumbers(
                route=route,
                variant=variant,
                backend=items[-1].backend,
                rate=len(items) / span,
                error_rate=sum(o.failed for o in items) / len(items),
                p99_ms=_p99(answered) * 1000 if answered else None,
                requests=len(items),
                ttft_p99_ms=_p99(first_tokens) * 1000 if first_tokens else None,
            ))
        return result

    def summary(self) -> dict[str, dict[str, dict[str, int]]]:
        """Totals since the start: ``{route: {variant: {"requests": n, "errors": e}}}``."""
        result: dict[str, dict[str, dict[str, int]]] = {}
        for (route, variant), count in sorted(self.totals.items()):
            result.setdefault(route, {})[variant] = {
                "requests": count, "errors": self.failures[(route, variant)]
            }
        return result


def iris_table() -> tuple[list[list[float]], list[int]]:
    """The 150 iris measurements shipped with scikit-learn, and each one's species (0-2).

    Read from scikit-learn's CSV without importing it (seconds on a busy machine);
    ``load_iris`` if that file is not where it used to be.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.origin is not None:
        csv_path = Path(spec.origin).parent / "datasets" / "data" / "iris.csv"
        with contextlib.suppress(OSError, ValueError, IndexError):
            lines = [line.split(",") for line in csv_path.read_text().splitlines()[1:] if line]
            rows = [[float(v) for v in cells[:4]] for cells in lines]
            if rows:
                return rows, [int(cells[4]) for cells in lines]
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data.tolist(), [int(t) for t in data.target]


def iris_rows() -> list[list[float]]:
    """The 150 iris measurements (see ``iris_table``)."""
    return iris_table()[0]


def body_maker(seed: int | None = None) -> Callable[[], bytes]:
    """A function returning V2 inference bodies drawn from the iris data set."""
    rows = iris_rows()
    rng = random.Random(seed)  # noqa: S311 - sample choice, not a secret
    ids = itertools.count(1)

    def make() -> bytes:
        values: list[float | None] = [
            round(v + rng.gauss(0.0, JITTER), 2) for v in rows[rng.randrange(len(rows))]
        ]
        if rng.random() < MISSING_SHARE:
            values[rng.randrange(len(values))] = None
        return orjson.dumps({
            "id": f"demo-{next(ids)}",
            "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": values}],
        })

    return make


async def _worker(
    client: httpx.AsyncClient, url: str, stats: LoadStats, make: Callable[[], bytes],
    interval: float, offset: float, users: int, rng: random.Random,
    labelled: LabelledBodies | None,
) -> None:
    loop = asyncio.get_running_loop()
    next_at = loop.time() + offset
    while True:
        delay = next_at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        # After a stall, carry on at the set pace instead of firing a burst to catch up.
        next_at = max(next_at + interval, loop.time() - interval)
        headers = {"content-type": "application/json", "x-user-id": f"user-{rng.randrange(users)}"}
        if labelled is not None:
            body, request_id, label = labelled.next()
            headers["x-request-id"] = request_id
        else:
            body = make()
        started = time.monotonic()
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError:
            stats.record(Outcome(time.monotonic(), UNKNOWN, UNKNOWN, UNKNOWN, 0,
                                 time.monotonic() - started))
            continue
        if labelled is not None and response.status_code == 200:
            labelled.answered(request_id, label)
        stats.record(answered(response, started))


async def drive(
    url: str, stats: LoadStats, *, rate: float = 60.0, workers: int = 4, users: int = 200,
    seed: int | None = None, make: Callable[[], bytes] | None = None,
    labelled: LabelledBodies | None = None,
) -> None:
    """POST inference requests to ``url`` at about ``rate`` per second until cancelled.

    With ``labelled``, bodies come from it and each answered request's label is handed
    back to it (the drift-and-truth demo).
    """
    make = make or body_maker(seed)
    rng = random.Random(seed)  # noqa: S311 - user choice, not a secret
    interval = workers / rate
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(timeout=5.0, limits=limits, trust_env=False) as client:
        await asyncio.gather(*(
            _worker(client, url, stats, make, interval, i * interval / workers, users, rng,
                    labelled)
            for i in range(workers)
        ))
