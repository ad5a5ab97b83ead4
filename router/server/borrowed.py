"""Everything the listener takes from uvicorn, in one place.

The hardened listener (:mod:`router.server.protocol`, :mod:`router.server.cycle`) subclasses
two of uvicorn's classes that uvicorn does not document as public API, so a uvicorn release
can change what they rely on. ``pyproject.toml`` therefore accepts only the uvicorn range the
tests pass on, and ``make test`` runs the listener's tests on the lowest version of that range
as well as on the newest (``constraints/lowest.txt``, ``make test-lowest``).

Imported here and nowhere else in ``router/server``:

- ``HttpToolsProtocol`` (``uvicorn.protocols.http.httptools_impl``), subclassed by
  ``HardenedHttpToolsProtocol``. It overrides ``connection_made``, ``connection_lost``,
  ``data_received``, ``on_message_begin``, ``on_headers_complete``, ``on_body``,
  ``on_message_complete``, ``on_response_complete``, ``send_400_response``, ``pause_writing``,
  ``resume_writing`` and ``_unset_keepalive_if_required``, and reads the attributes uvicorn
  sets in ``__init__`` (``transport``, ``parser``, ``flow``, ``cycle``, ``pipeline``, ``tasks``,
  ``connections``, ``server_state``, ``config`` with ``reset_contextvars``, ``app``, ``url``,
  ``scope``, ``headers``, ``root_path``, ``limit_concurrency``, ``expect_100_continue``,
  ``logger``, ``access_logger``, ``access_log``, ``loop``, ``_should_upgrade``).
- ``RequestResponseCycle`` (same module), subclassed by ``ProxyCycle``, which replaces
  ``send``, ``receive`` and ``run_asgi`` and reads the cycle's ``response_started``,
  ``response_complete``, ``chunked_encoding``, ``expected_content_length``, ``keep_alive``,
  ``disconnected``, ``waiting_for_100_continue``, ``body``, ``more_body``, ``message_event``,
  ``flow``, ``transport``, ``logger``, ``on_response`` and ``send_500_response``.
- ``Config`` and ``ServerState`` (public ``uvicorn.config`` and ``uvicorn.server``) and
  ``service_unavailable`` (``uvicorn.protocols.http.flow_control``), the 503 app uvicorn
  uses past ``limit_concurrency``, with ``HIGH_WATER_LIMIT``, the request body bytes held
  unread beyond which reading pauses.

The range starts at uvicorn 0.45, the first with ``HttpToolsProtocol._start_asgi_task`` and
``Config.reset_contextvars``, which the protocol overrides and reads. Two tables uvicorn also
has are our own here, so that the check does not depend on uvicorn's copy (uvicorn 0.41's
header-name regular expression, for one, lets a space through): ``STATUS_LINE`` and
``HEADER_NAME_RE``.
"""

from __future__ import annotations

import http
import re
from typing import TYPE_CHECKING

from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

if TYPE_CHECKING:  # a private module: its alias only matters to the type checker
    from uvicorn._types import ASGI3Application

__all__ = [
    "HEADER_NAME_RE",
    "HIGH_WATER_LIMIT",
    "STATUS_LINE",
    "ASGI3Application",
    "Config",
    "HttpToolsProtocol",
    "RequestResponseCycle",
    "ServerState",
    "service_unavailable",
]

# A byte that may not appear in a header name: controls, and the separators of RFC 9110's
# ``token`` rule.
HEADER_NAME_RE = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    return b"".join([b"HTTP/1.1 ", str(status).encode(), b" ", phrase, b"\r\n"])


# ``HTTP/1.1 <status> <reason>\r\n`` for every status a response may have.
STATUS_LINE = {status: _status_line(status) for status in range(100, 600)}
