"""Relaying an upstream's answer to the client: whole when it has all arrived, else
chunk by chunk as it comes, never held back.

``AnswerRelay`` is that step of ``Exchange`` (router/proxy/exchange.py): it records on
the exchange the status, the bytes sent and when the first body byte went out, keeps a
copy of the answer for inspection and the mirror when it fits, and meters event streams
and token usage as they pass.
"""

from __future__ import annotations

import time
from typing import Any

from router.proxy.headers import filter_response_headers
from router.proxy.pieces import variant_header
from router.proxy.sinks import Services
from router.routing.backends import Backend
from router.routing.snapshot import CompiledRoute
from router.server.keys import BODY_FOLLOWS, WHOLE_BODY
from router.telemetry.streams import SSE, AnswerMeter, answer_kind
from router.upstream import UpstreamResponse

__all__ = ["WITH_END", "AnswerRelay"]

WITH_END = -1.0  # AnswerRelay.first_byte: the first body byte went out with the last
_clock = time.perf_counter


class AnswerRelay:
    """The answer-relaying steps of an exchange, and what they record: the status, the bytes
    sent, and ``first_byte`` (``perf_counter()`` when the answer's first body byte went
    out; ``WITH_END`` when it went with the last, the usual small answer). The rest of the
    exchange's state is the subclass's."""

    __slots__ = ("bytes_out", "first_byte", "status")

    services: Services
    request_id: str
    route: str
    variant: str

    async def _relay(
        self, send: Any, response: UpstreamResponse, route: CompiledRoute, backend: Backend,
        expose: bool, cap: int,
    ) -> bytes | None:
        """Relay the answer to the client; a copy of it if it fits in ``cap``.

        The router adds its own headers: the request id, and where it went if ``expose``.
        """
        self.status = response.status
        # Byte for byte as the client sent it: the id was decoded as latin-1.
        extra: list[tuple[bytes, bytes]] = [(b"x-request-id", self.request_id.encode("latin-1"))]
        if expose:
            extra += (route.header, variant_header(self.variant), backend.header)
        headers, content_type = filter_response_headers(response.headers, extra)
        kind = answer_kind(content_type)
        start = {"type": "http.response.start", "status": response.status, "headers": headers}
        whole = response.whole()
        if whole is None:
            return await self._stream(send, response, start, kind, cap)
        # The usual small answer has all arrived: head and body leave in one message and write.
        if whole:
            self.first_byte = WITH_END
            self.bytes_out = len(whole)
        start[WHOLE_BODY] = whole
        await send(start)
        if kind:
            meter = self._look(kind, None, whole)
            if meter is not None:
                meter.close()
        return whole if cap and len(whole) <= cap else None

    async def _stream(
        self, send: Any, response: UpstreamResponse, start: dict[str, Any], kind: int, cap: int
    ) -> bytes | None:
        """Stream an answer whose body is still arriving, chunk by chunk as it comes."""
        captured: list[bytes] | None = [] if cap else None
        captured_len = 0
        meter = None
        # Some of the body may already be here: it then goes out with the head, in one write.
        start[BODY_FOLLOWS] = response.body_ready
        try:
            await send(start)
            last = False
            async for chunk in response:
                last = response.finished  # the last chunk ends the answer in the same message
                if not self.first_byte:
                    self.first_byte = WITH_END if last else _clock()
                self.bytes_out += len(chunk)
                if captured is not None:
                    captured_len += len(chunk)
                    if captured_len <= cap:
                        captured.append(chunk)
                    else:
                        captured = None
                await send({"type": "http.response.body", "body": chunk, "more_body": not last})
                if kind:
                    meter = self._look(kind, meter, chunk)
                if last:
                    break
            if not last:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()
            if meter is not None:
                meter.close()
        return b"".join(captured) if captured is not None else None

    def _look(self, kind: int, meter: AnswerMeter | None, chunk: bytes) -> AnswerMeter | None:
        """Measure a chunk that went on (never held back for it); the meter, made when needed.

        An event stream always gets one; a JSON answer once a ``usage`` object shows up.
        """
        # find(), not ``in``: CPython 3.11's bytes.__contains__ first tries the needle as
        # an int and builds a TypeError message it then drops.
        if meter is None and (kind == SSE or chunk.find(b'"usage"') >= 0):
            meter = self._meter(sse=kind == SSE)
        if meter is not None:
            meter.feed(chunk, _clock())
        return meter

    def _meter(self, *, sse: bool) -> AnswerMeter:
        """A meter of this answer's events and token usage (SSE, or JSON with ``usage``)."""
        return AnswerMeter(self.services.metrics.stream_stats(self.route, self.variant), sse)
