"""The memory soak: N requests through one router in wrk chunks, sampling its RSS between them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from procs import rss_bytes
from wrk import run_wrk

__all__ = ["SoakResult", "run_soak"]

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SoakResult:
    """RSS (bytes, the router and its workers) before, during and after ``requests`` requests."""

    scenario: str
    requests: int
    errors: int
    rss_start: int
    rss_end: int
    rss_peak: int
    samples: list[tuple[int, int]] = field(default_factory=list)  # (requests so far, rss)

    @property
    def delta_mib(self) -> float:
        """End minus start, in MiB."""
        return (self.rss_end - self.rss_start) / MIB

    def render(self, limit_mib: float = 20.0) -> str:
        """A one-paragraph summary against the issue's bar (flat within ``limit_mib``)."""
        ok = "met" if abs(self.delta_mib) <= limit_mib else "NOT met"
        errors = f", {self.errors} ERRORS" if self.errors else ""
        return (
            f"  {self.scenario}: {self.requests:,} requests{errors}; RSS start "
            f"{self.rss_start / MIB:.1f} MiB, peak {self.rss_peak / MIB:.1f} MiB, end "
            f"{self.rss_end / MIB:.1f} MiB, delta {self.delta_mib:+.1f} MiB "
            f"(target within {limit_mib:g} MiB: {ok})"
        )


def run_soak(
    scenario: str,
    url: str,
    pid: int,
    scripts: Mapping[str, Path],
    total: int,
    rps_hint: float,
    progress: Callable[[str], None] = print,
) -> SoakResult:
    """Send at least ``total`` requests at 64 connections, alternating the scripts' methods.

    Chunks last about 10 s (estimated from ``rps_hint``) so RSS is sampled often.
    """
    methods = list(scripts)
    rss_start = rss_bytes(pid)
    samples = [(0, rss_start)]
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
        chunk += 1
        progress(f"  soak {done:,}/{total:,} requests, RSS {samples[-1][1] / MIB:.1f} MiB")
    return SoakResult(
        scenario=scenario, requests=done, errors=errors, rss_start=rss_start,
        rss_end=samples[-1][1], rss_peak=max(rss for _, rss in samples), samples=samples,
    )
