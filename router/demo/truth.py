"""The drift-and-truth demo's traffic: labelled iris rows, a feature that shifts, late labels.

``LabelledBodies`` makes V2 inference bodies from iris rows whose species it
knows, each with its own ``x-request-id``. After ``shift()`` one feature (petal
width, the one a shallow tree leans on) reads ``SHIFT`` cm more than the flower
has: the inputs drift, the truth does not. ``send`` posts the true species of
every answered request to ``POST /admin/feedback`` ``delay_s`` later, in batches,
as a labelling pipeline would.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import random
import time

import httpx
import orjson

from router.demo.traffic import JITTER, MISSING_SHARE, iris_table

__all__ = ["SHIFT", "SHIFTED_FEATURE", "LabelledBodies"]

SHIFTED_FEATURE = 3  # petal width
SHIFT = 0.6
BATCH = 500


class LabelledBodies:
    """Inference bodies with known labels, and the labels due to be sent back."""

    def __init__(self, seed: int | None = None, delay_s: float = 3.0) -> None:
        self.rows, self.labels = iris_table()
        self.rng = random.Random(seed)  # noqa: S311 - sample choice, not a secret
        self.delay_s = delay_s
        self.shifted = False
        self.sent = self.joined = 0
        self._ids = itertools.count(1)
        self._due: collections.deque[tuple[float, str, int]] = collections.deque()

    def shift(self) -> None:
        """From now on, petal width reads ``SHIFT`` cm more than it is."""
        self.shifted = True

    def next(self) -> tuple[bytes, str, int]:
        """A body, its request id and the true species of the flower it measures."""
        index = self.rng.randrange(len(self.rows))
        values: list[float | None] = [
            round(v + self.rng.gauss(0.0, JITTER), 2) for v in self.rows[index]
        ]
        if self.shifted:
            shifted = values[SHIFTED_FEATURE]
            assert shifted is not None
            values[SHIFTED_FEATURE] = round(shifted + SHIFT, 2)
        if self.rng.random() < MISSING_SHARE:
            values[self.rng.randrange(len(values))] = None
        request_id = f"demo-{next(self._ids)}-{self.rng.getrandbits(32):08x}"
        body = orjson.dumps({
            "id": request_id,
            "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 4], "data": values}],
        })
        return body, request_id, self.labels[index]

    def answered(self, request_id: str, label: int) -> None:
        """The router answered ``request_id``: its label is due ``delay_s`` from now."""
        self._due.append((time.monotonic() + self.delay_s, request_id, label))

    async def send(self, admin: httpx.AsyncClient, every_s: float = 0.5) -> None:
        """Post the labels that are due, until cancelled."""
        while True:
            await asyncio.sleep(every_s)
            now = time.monotonic()
            batch: list[dict[str, str | int]] = []
            while self._due and self._due[0][0] <= now and len(batch) < BATCH:
                _, request_id, label = self._due.popleft()
                batch.append({"request_id": request_id, "label": label})
            if not batch:
                continue
            try:
                response = await admin.post("/admin/feedback", content=orjson.dumps(batch),
                                            headers={"content-type": "application/json"})
            except httpx.HTTPError:
                continue
            if response.status_code == 204:
                self.sent += len(batch)
                self.joined += int(response.headers.get("x-feedback-joined", 0))
