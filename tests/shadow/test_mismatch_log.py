"""The shadow mismatch log: JSON lines, truncation, sampling, size cap, failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from router.shadow.mismatch_log import MismatchLog
from strategies.compare import Comparison

MISMATCH = Comparison(
    outcome="mismatch",
    protocol="v2",
    first_difference="outputs[name=p].data[1]: primary=0.7 shadow=0.2",
    max_abs_diff=0.5,
    label_flip=True,
    detail="2 differences",
)
AT = 1_764_417_600.25  # 2025-11-29T12:00:00.250Z


def record(log: MismatchLog, n: int = 0, at: float = AT, **overrides: Any) -> bool:
    """Record one mismatch (request id ``req-n``)."""
    fields: dict[str, Any] = {
        "route": "fraud",
        "request_id": f"req-{n}",
        "backend": "fraud-v4",
        "comparison": MISMATCH,
        "primary_body": b'{"outputs": [1]}',
        "shadow_body": b'{"outputs": [2]}',
        "at": at,
        **overrides,
    }
    return log.record(**fields)


def lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines written to ``path``."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_line_content(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "fraud.jsonl"  # parent created on demand
    assert record(MismatchLog(path))
    [line] = lines(path)
    assert line == {
        "time": "2025-11-29T12:00:00.250Z",
        "route": "fraud",
        "request_id": "req-0",
        "backend": "fraud-v4",
        "outcome": "mismatch",
        "protocol": "v2",
        "first_difference": "outputs[name=p].data[1]: primary=0.7 shadow=0.2",
        "max_abs_diff": 0.5,
        "label_flip": True,
        "detail": "2 differences",
        "primary": '{"outputs": [1]}',
        "shadow": '{"outputs": [2]}',
    }


BODIES = {
    "short kept": (b"x" * 10, "x" * 10),
    "long cut": (b"y" * 500, "y" * 50 + "...[truncated, 500 bytes]"),
    "invalid utf-8 replaced": (b"\xff" * 3, "\ufffd" * 3),
}


@pytest.mark.parametrize(("raw", "expected"), BODIES.values(), ids=BODIES.keys())
def test_truncation(tmp_path: Path, raw: bytes, expected: str) -> None:
    path = tmp_path / "m.jsonl"
    assert record(MismatchLog(path, max_field_chars=50), primary_body=raw, shadow_body=raw)
    [line] = lines(path)
    assert line["primary"] == line["shadow"] == expected


def test_infinite_diff_is_written_as_null(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    comparison = Comparison("mismatch", "json", "a: primary=inf shadow=1.0", float("inf"))
    assert record(MismatchLog(path), comparison=comparison)
    assert lines(path)[0]["max_abs_diff"] is None


SAMPLING = {
    "every 3rd": ({"sample_every": 3, "max_per_second": 100}, 10, 0.0, [0, 3, 6, 9]),
    "10 a second": ({"max_per_second": 10}, 25, 0.01, list(range(10))),
    "per second window refills": ({"max_per_second": 2}, 8, 0.25, [0, 1, 4, 5]),
}


@pytest.mark.parametrize(
    ("options", "count", "step", "written"), SAMPLING.values(), ids=SAMPLING.keys()
)
def test_sampling(
    tmp_path: Path, options: dict[str, Any], count: int, step: float, written: list[int]
) -> None:
    path = tmp_path / "m.jsonl"
    log = MismatchLog(path, **options)
    results = [record(log, n, at=1000.0 + n * step) for n in range(count)]
    assert [n for n, ok in enumerate(results) if ok] == written
    assert [line["request_id"] for line in lines(path)] == [f"req-{n}" for n in written]


def test_size_cap_rotates_once(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    max_bytes = 2000
    log = MismatchLog(path, max_bytes=max_bytes, max_per_second=10_000)
    written = sum(record(log, n, at=AT + n) for n in range(300))
    assert written == 300
    rotated = tmp_path / "m.jsonl.1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl", "m.jsonl.1"]
    assert path.stat().st_size <= max_bytes
    assert rotated.stat().st_size <= max_bytes
    # the newest record is in the live file, every line is whole
    assert lines(path)[-1]["request_id"] == "req-299"
    assert all(line["route"] == "fraud" for line in lines(rotated))


def test_existing_file_counts_toward_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"{}\n" * 400)  # 1200 bytes from an earlier run
    assert record(MismatchLog(path, max_bytes=1300))
    assert (tmp_path / "m.jsonl.1").stat().st_size == 1200
    assert len(lines(path)) == 1


def test_line_larger_than_cap_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    assert not record(MismatchLog(path, max_bytes=50))
    assert not path.exists()


def test_unwritable_path_returns_false(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    log = MismatchLog(blocker / "m.jsonl")
    assert record(log, 0) is False
    assert record(log, 1, at=AT + 1) is False


def test_recovers_when_the_directory_appears(tmp_path: Path) -> None:
    blocker = tmp_path / "d"
    blocker.write_text("")
    log = MismatchLog(blocker / "m.jsonl")
    assert not record(log, 0)
    blocker.unlink()
    assert record(log, 1, at=AT + 1)
    assert [line["request_id"] for line in lines(blocker / "m.jsonl")] == ["req-1"]
