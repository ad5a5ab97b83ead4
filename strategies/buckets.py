"""Stable hashing of sticky keys into buckets, so every replica agrees.

A key lands in one of ``BUCKETS`` buckets by a keyed-by-salt ``blake2b``
digest — never Python's ``hash()``, which is randomised per process by
``PYTHONHASHSEED``. A bucket is on the candidate when it is below the weight's
share of the buckets, so raising the weight only ever moves keys from stable to
candidate (monotonic by construction), and the counts are exact: at weight 5,
exactly 500 of the 10,000 buckets are candidates.
"""

from __future__ import annotations

import hashlib

__all__ = ["BUCKETS", "bucket_of", "in_candidate"]

BUCKETS = 10_000
"""Buckets per route: a resolution of 0.01 percentage points."""


def bucket_of(key: str, salt: str) -> int:
    """The bucket (0 to ``BUCKETS - 1``) of a sticky ``key`` salted with ``salt``.

    The salt (the route's identity) keeps the same users from being first into
    every canary.
    """
    data = f"{salt}\x00{key}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(data, digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def in_candidate(bucket: int, weight_percent: float) -> bool:
    """Whether ``bucket`` is on the candidate at ``weight_percent`` (0-100, decimals allowed)."""
    return bucket < round(weight_percent * 100)
