"""Sticky buckets: exact counts, monotonic weights, the same answer in every process."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from strategies.buckets import BUCKETS, bucket_of, in_candidate

ROOT = Path(__file__).resolve().parents[2]
LADDER = (0, 0.01, 0.5, 1, 5, 10, 12.5, 25, 33.33, 50, 75, 99.99, 100)


@pytest.mark.parametrize(
    ("weight", "expected"),
    [(5, 500), (0.5, 50), (0, 0), (100, BUCKETS), (33.33, 3333), (0.01, 1), (12.5, 1250)],
    ids=["5pct", "half_pct", "zero", "all", "decimals", "one_bucket", "12.5pct"],
)
def test_exact_candidate_buckets(weight: float, expected: int) -> None:
    assert sum(in_candidate(b, weight) for b in range(BUCKETS)) == expected


def test_every_bucket_is_monotonic_over_a_ladder_of_weights() -> None:
    for bucket in range(BUCKETS):
        flags = [in_candidate(bucket, w) for w in LADDER]
        assert flags == sorted(flags), f"bucket {bucket} moves back to stable: {flags}"


def test_keys_spread_evenly_over_buckets() -> None:
    keys = [f"user-{i}" for i in range(20_000)]
    share = sum(in_candidate(bucket_of(k, "iris"), 5) for k in keys) / len(keys)
    assert 0.04 < share < 0.06


@pytest.mark.parametrize(
    ("key", "salt"),
    [("user-1", "iris"), ("", "iris"), ("ü-ñícode", "route/x"), ("k" * 8192, "")],
    ids=["plain", "empty_key", "unicode", "8kb_key"],
)
def test_bucket_is_blake2b_and_deterministic(key: str, salt: str) -> None:
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    expected = int.from_bytes(digest, "big") % BUCKETS
    assert bucket_of(key, salt) == expected
    assert bucket_of(key, salt) == bucket_of(key, salt)
    assert 0 <= expected < BUCKETS


def test_salt_reshuffles_keys() -> None:
    keys = [f"user-{i}" for i in range(200)]
    assert [bucket_of(k, "a") for k in keys] != [bucket_of(k, "b") for k in keys]


@pytest.mark.e2e
def test_other_interpreters_with_other_hash_seeds_agree() -> None:
    keys = ["alice", "bob", "carol", "", "ü"]
    code = (
        "from strategies.buckets import bucket_of\n"
        f"print([bucket_of(k, 'iris') for k in {keys!r}])"
    )
    outputs = set()
    for seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
            check=True,
        )
        outputs.add(result.stdout.strip())
    assert outputs == {str([bucket_of(k, "iris") for k in keys])}


@pytest.mark.e2e
def test_core_modules_import_no_io_in_a_fresh_interpreter() -> None:
    code = (
        "import sys\n"
        "import strategies.buckets, strategies.analysis, strategies.canary, "
        "strategies.blue_green.strategy\n"
        "bad = [m for m in ('router', 'asyncio', 'httpx', 'starlette', 'structlog') "
        "if m in sys.modules]\n"
        "print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
