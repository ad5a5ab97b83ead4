"""The memory soak: N requests through one router in wrk chunks, sampling its RSS between them.

RSS is read after every chunk (about 10 s of load) and reported at the start, at each
100,000 requests and at the end. Bounded stores fill once and then stay at their bound
(feedback's remembered predictions, 100,000 by default, fill during the first 100,000
inspected answers): that fill is the warm-up. The verdict "RSS flat" compares every
sample after the warm-up with the first one after it, within +-20 MiB; the delta from
the very start, fill included, is printed beside it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from procs import rss_bytes
from wrk import post_body, request_id, run_wrk, write_script

__all__ = ["MIB", "SoakResult", "feedback_full", "post_labels", "run_soak", "soak_router"]

MIB = 1024 * 1024
REPORT_EVERY = 100_000


@dataclass(frozen=True, slots=True)
class SoakResult:
    """RSS (bytes, the router and its workers) before, during and after ``requests`` requests.

    ``warm_index`` is the index in ``samples`` of the first sample taken once the
    warm-up was over (None: it never ended).
    """

    scenario: str
    requests: int
    errors: int
    samples: list[tuple[int, int]] = field(default_factory=list)  # (requests so far, rss)
    warm_index: int | None = 0

    @property
    def rss_start(self) -> int:
        """RSS before the first request of the soak."""
        return self.samples[0][1]

    @property
    def rss_end(self) -> int:
        """RSS after the last chunk."""
        return self.samples[-1][1]

    @property
    def delta_mib(self) -> float:
        """End minus start, warm-up included, in MiB."""
        return (self.rss_end - self.rss_start) / MIB

    def drift_after_warmup_mib(self) -> float | None:
        """The largest distance of a later sample from the first warm sample, in MiB."""
        if self.warm_index is None or self.warm_index >= len(self.samples) - 1:
            return None
        base = self.samples[self.warm_index][1]
        return max(abs(rss - base) for _, rss in self.samples[self.warm_index:]) / MIB

    def checkpoints(self) -> list[tuple[int, int]]:
        """The start, the first sample at or past each 100,000 requests, and the end."""
        picked = [self.samples[0]]
        mark = REPORT_EVERY
        for done, rss in self.samples[1:]:
            if done >= mark:
                picked.append((done, rss))
                mark = (done // REPORT_EVERY + 1) * REPORT_EVERY
        if picked[-1] != self.samples[-1]:
            picked.append(self.samples[-1])
        return picked

    def render(self, limit_mib: float = 20.0) -> str:
        """The checkpoints, the warm-up, and the verdict against ``limit_mib``."""
        errors = f", {self.errors} ERRORS" if self.errors else ""
        lines = [f"  {self.scenario}: {self.requests:,} requests{errors}"]
        lines += [f"    RSS at {done:>9,} requests: {rss / MIB:7.1f} MiB"
                  for done, rss in self.checkpoints()]
        lines.append(f"    start to end, warm-up included: {self.delta_mib:+.1f} MiB")
        drift = self.drift_after_warmup_mib()
        if drift is None or self.warm_index is None:
            lines.append("    RSS flat: not met (the warm-up did not end before the last sample)")
            return "\n".join(lines)
        warm_done, warm_rss = self.samples[self.warm_index]
        verdict = "met" if drift <= limit_mib else "not met"
        lines.append(
            f"    warm-up over at {warm_done:,} requests (RSS {warm_rss / MIB:.1f} MiB); "
            f"after it every sample within {drift:.1f} MiB of that"
        )
        lines.append(f"    RSS flat (+-{limit_mib:g} MiB after warm-up): {verdict}")
        return "\n".join(lines)


def _feedback_sections(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if {"remembered", "keep"} <= node.keys() else []
        return found + [s for value in node.values() for s in _feedback_sections(value)]
    if isinstance(node, list):
        return [s for value in node for s in _feedback_sections(value)]
    return []


def feedback_full(admin_url: str) -> bool:
    """Whether every route's feedback store (in ``/admin/status``) has filled: it holds
    ``keep`` predictions, or has dropped its oldest (it drops them an eighth at a time)."""
    try:
        status = httpx.get(f"{admin_url}/admin/status", timeout=10, trust_env=False).json()
    except (httpx.HTTPError, ValueError):
        return False
    return all(
        s["remembered"] >= s["keep"] or s.get("dropped", 0) > 0 for s in _feedback_sections(status)
    )


def post_labels(admin_url: str, run: int, requests: int, rng: random.Random) -> int:
    """Labels (1 or 2 at random) for up to 2,000 of a chunk's POSTs; how many were joined.

    The chunk's wrk script numbered its requests ``request_id(run, thread, n)``; a sampled
    id that wrk did not reach is counted by the router as unknown.
    """
    per_thread = max(1, requests // 2)
    ids = [request_id(run, thread, rng.randint(1, per_thread)) for thread in (1, 2)
           for _ in range(1000)]
    body = [{"request_id": i, "label": rng.choice([1, 2])} for i in dict.fromkeys(ids)]
    response = httpx.post(f"{admin_url}/admin/feedback", json=body, timeout=30, trust_env=False)
    response.raise_for_status()
    return int(response.headers.get("x-feedback-joined", 0))


def run_soak(
    scenario: str,
    url: str,
    pid: int,
    script_for: Callable[[int], Path],
    total: int,
    rps_hint: float,
    warmed: Callable[[], bool] = lambda: True,
    after_chunk: Callable[[int, int], str] = lambda chunk, requests: "",
    progress: Callable[[str], None] = print,
) -> SoakResult:
    """Send at least ``total`` requests at 64 connections, chunk ``i`` with ``script_for(i)``.

    Chunks last about 10 s (estimated from ``rps_hint``) so RSS is sampled often; after
    each, ``warmed`` is asked (until it first says the bounded stores are full), then
    ``after_chunk(i, requests)`` runs and says what it did.
    """
    samples = [(0, rss_bytes(pid))]
    warm_index: int | None = 0 if warmed() else None
    done = errors = 0
    chunk = 0
    while done < total:
        remaining = total - done
        seconds = max(2.0, min(10.0, remaining / max(rps_hint, 1.0)))
        result = run_wrk(url, script_for(chunk), 64, seconds)
        done += result.requests
        errors += result.errors
        rps_hint = result.rps or rps_hint
        full = warm_index is None and warmed()  # before labels make holes in the stores
        did = after_chunk(chunk, result.requests)
        samples.append((done, rss_bytes(pid)))
        if full:
            warm_index = len(samples) - 1
        chunk += 1
        warm = "" if warm_index is not None else " (warming up)"
        progress(f"  soak {done:,}/{total:,} requests, RSS {samples[-1][1] / MIB:.1f} MiB{warm}"
                 f"{did}")
    return SoakResult(scenario, done, errors, samples, warm_index)


def soak_router(
    name: str, url: str, admin_url: str, pid: int, workdir: Path, total: int, rps: float
) -> SoakResult:
    """The soak of one router: GET and POST chunks in turn, labels posted after each POST one.

    Each POST carries its own request id, so the router remembers a prediction per
    request; the labels join some of them (the store's joins, the accuracy windows and
    the accuracy gate are exercised, not only its inserts).
    """
    rng = random.Random(0)
    body = post_body()
    get = write_script(workdir, "GET")

    def script_for(chunk: int) -> Path:
        return write_script(workdir, "POST", body, run=chunk) if chunk % 2 else get

    def after_chunk(chunk: int, requests: int) -> str:
        if not chunk % 2:
            return ""
        return f", {post_labels(admin_url, chunk, requests, rng):,} labels joined"

    return run_soak(name, url, pid, script_for, total, rps,
                    partial(feedback_full, admin_url), after_chunk)
