"""``POST /admin/feedback``: true labels for earlier predictions, one object or a batch.

The admin body guard lets this path take up to ``MAX_FEEDBACK_BODY`` (1 MiB; 413
beyond). The body is parsed as JSON and checked whole before anything is
joined: a malformed batch is refused with 400 naming the item and field, and
joins nothing. An accepted batch answers 204; ids the router does not (or no
longer) remember are counted, not refused. The counts come back in the
``x-feedback-joined`` and ``x-feedback-unknown`` headers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from router.telemetry.feedback import GroundTruth
from strategies.feedback import FeedbackError, parse_feedback

__all__ = ["MAX_FEEDBACK_BODY", "feedback_endpoint"]

MAX_FEEDBACK_BODY = 1024 * 1024


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
        result = truth.join(items, time.time())
        return Response(
            status_code=204,
            headers={
                "x-feedback-joined": str(result.joined),
                "x-feedback-unknown": str(result.unknown),
            },
        )

    return feedback
