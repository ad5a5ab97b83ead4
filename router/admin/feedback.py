"""``POST /admin/feedback``: true labels for earlier predictions, one object or a batch.

The admin body guard lets this path take up to ``MAX_FEEDBACK_BODY`` (1 MiB; 413
beyond). The body is parsed as JSON and checked whole before anything is
joined: a malformed batch is refused with 400 naming the item and field, and
joins nothing. An accepted batch answers 204; ids the router does not (or no
longer) remember are counted, not refused. The counts come back in the
``x-feedback-joined`` and ``x-feedback-unknown`` headers; in a fleet, labels for
predictions another replica made are relayed to it (``x-feedback-relayed``,
``router.control.fleet_feedback``). A batch is joined a
thousand labels at a time, so the proxy's requests are served in between.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from router.telemetry.feedback import GroundTruth
from strategies.feedback import FeedbackError, parse_feedback

__all__ = ["MAX_FEEDBACK_BODY", "feedback_endpoint"]

MAX_FEEDBACK_BODY = 1024 * 1024
JOIN_CHUNK = 1000  # labels joined between two turns of the event loop


ErrorResponse = Callable[[int, str, str], Response]
"""(status, code, detail) -> the admin API's JSON error."""


def feedback_endpoint(
    truth: GroundTruth, refuse: ErrorResponse
) -> Callable[[Request], Awaitable[Response]]:
    """The handler of ``POST /admin/feedback`` joining labels into ``truth``."""

    async def feedback(request: Request) -> Response:
        try:
            items = parse_feedback(orjson.loads(await request.body()))
        except orjson.JSONDecodeError:
            return refuse(400, "bad_request", "body: not JSON")
        except FeedbackError as exc:
            return refuse(400, "bad_request", str(exc))
        joined = unknown = relayed = 0
        for start in range(0, len(items), JOIN_CHUNK):
            if start:
                await asyncio.sleep(0)  # a big batch lets requests through between chunks
            result = truth.join(items[start:start + JOIN_CHUNK], time.time())
            joined, unknown = joined + result.joined, unknown + result.unknown
            relayed += result.relayed
        return Response(
            status_code=204,
            headers={"x-feedback-joined": str(joined), "x-feedback-unknown": str(unknown),
                     "x-feedback-relayed": str(relayed)},
        )

    return feedback
