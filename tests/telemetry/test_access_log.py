"""The per-request log line (docs/observability.md): its fields, and secrets kept out of it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from router.telemetry import logs
from router.telemetry.logs import AccessLog, register_secret

FIELDS: dict[str, Any] = {
    "request_id": "rid-1", "route": "iris", "variant": "stable", "backend": "iris-v1",
    "method": "POST", "path": "/v2/models/iris/infer", "client": "10.0.0.1", "status": 200,
    "duration_ms": 1.25, "bytes_in": 10, "bytes_out": 20,
}


@pytest.fixture
def secret() -> Iterator[str]:
    value = "s3cret-token-value"
    register_secret(value)
    yield value
    logs._secrets.discard(value)


def json_line(**changes: Any) -> dict[str, Any]:
    stream = io.BytesIO()
    log = AccessLog("json", stream=stream)
    log.request(**{**FIELDS, **changes})
    log.flush()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    parsed: dict[str, Any] = orjson.loads(lines[0])
    return parsed


def test_json_line_carries_spec_fields_in_order() -> None:
    line = json_line()
    assert list(line) == [*FIELDS, "event", "level", "timestamp"]
    assert {k: line[k] for k in FIELDS} == FIELDS
    assert line["event"] == "request"
    assert line["timestamp"].endswith("Z")


@pytest.mark.parametrize(
    ("error", "expected"), [(None, None), ("", None), ("client_closed", "client_closed")],
    ids=["none", "empty", "named"],
)
def test_error_field_only_when_there_was_one(error: str | None, expected: str | None) -> None:
    assert json_line(error=error).get("error") == expected


def test_registered_secret_is_redacted_from_path_and_request_id(secret: str) -> None:
    line = json_line(path=f"/v2/{secret}/infer", request_id=f"id-{secret}")
    assert secret not in orjson.dumps(line).decode()
    assert line["path"] == "/v2/[redacted]/infer"


def test_bearer_token_in_a_path_is_redacted_without_registered_secrets() -> None:
    assert not logs._secrets
    line = json_line(path="/x/Bearer abc.def.ghi")
    assert "abc.def.ghi" not in line["path"]


class _Captured:
    """Stands in for the structlog logger of the console format."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.calls.append((event, fields))


def test_console_format_gets_the_same_redacted_fields(secret: str) -> None:
    log = AccessLog("console")
    captured = _Captured()
    log._console = captured
    log.request(**{**FIELDS, "path": f"/v2/{secret}", "error": "upstream_timeout"})
    [(event, fields)] = captured.calls
    assert event == "request"
    assert fields == {**FIELDS, "path": "/v2/[redacted]", "error": "upstream_timeout"}
