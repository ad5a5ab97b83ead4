"""The memory soak: N requests through one router in wrk chunks, sampling its RSS between them.

RSS is read after every chunk (about 10 s of load) and reported at the start, at each
100,000 requests and at the end. Bounded stores fill once and then stay at their bound
(feedback's remembered predictions, 100,000 by default, fill during the first 100,000
inspected answers): that fill is the warm-up. The verdict "RSS flat" compares every
sample after the warm-up with the first one after it, within +-20 MiB; the delta from
the very start, fill included, is printed beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from procs import rss_bytes
from wrk import run_wrk

__all__ = ["MIB", "SoakResult", "feedback_full", "run_soak"]

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
    """Whether every route's feedback store (in ``/admin/status``) holds ``keep`` predictions."""
    try:
        status = httpx.get(f"{admin_url}/admin/status", timeout=10, trust_env=False).json()
    except (httpx.HTTPError, ValueError):
        return False
    return all(s["remembered"] >= s["keep"] for s in _feedback_sections(status))


def run_soak(
    scenario: str,
    url: str,
    pid: int,
    scripts: Mapping[str, Path],
    total: int,
    rps_hint: float,
    warmed: Callable[[], bool] = lambda: True,
    progress: Callable[[str], None] = print,
) -> SoakResult:
    """Send at least ``total`` requests at 64 connections, alternating the scripts' methods.

    Chunks last about 10 s (estimated from ``rps_hint``) so RSS is sampled often;
    ``warmed`` is asked after each chunk until it first says the bounded stores are full.
    """
    methods = list(scripts)
    samples = [(0, rss_bytes(pid))]
    warm_index: int | None = 0 if warmed() else None
    done = errors = 0
    chunk = 0
    while done < total:
        remaining = total - done
        seconds = max(2.0, min(10.0, remaining / max(rps_hint, 1.0)))
        result = run_wrk(url, scripts[methods[chunk % len(methods)]], 64, seconds)
        done += result.requests
        errors += result.errors
        rps_hint = result.rps or rps_hint
        samples.append((done, rss_bytes(pid)))
        if warm_index is None and warmed():
            warm_index = len(samples) - 1
        chunk += 1
        warm = "" if warm_index is not None else " (warming up)"
        progress(f"  soak {done:,}/{total:,} requests, RSS {samples[-1][1] / MIB:.1f} MiB{warm}")
    return SoakResult(scenario, done, errors, samples, warm_index)
