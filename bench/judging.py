"""Simulated rollouts through the sequential judge: how often it fails a good candidate,
how fast it fails a bad one.

Each rollout draws per-interval error counts for stable and candidate
(numpy, seeded) and runs the real ``strategies.analysis.assess`` on the running
tallies after every interval, as the controller would. ``python -m bench.judging``
prints the table that docs/judging.md quotes.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from strategies.analysis import AnalysisSpec, Evidence, assess
from strategies.base import Tally, VariantStats

__all__ = ["Outcomes", "Traffic", "main", "simulate"]


@dataclass(frozen=True, slots=True)
class Traffic:
    """Requests per check interval and the true error rates."""

    stable_rate: float
    candidate_rate: float
    stable_per_check: int = 200
    candidate_per_check: int = 50


@dataclass(frozen=True, slots=True)
class Outcomes:
    """What the judge did over the simulated rollouts."""

    rollouts: int
    failed: int
    passed: int  # reached a pass at some check and never failed
    requests_to_fail: tuple[int, ...]  # candidate requests seen when each failure happened
    requests_to_pass: tuple[int, ...]

    @property
    def fail_rate(self) -> float:
        """Share of rollouts failed at some check."""
        return self.failed / self.rollouts

    def to_fail(self, q: float) -> int | None:
        """The ``q`` quantile of candidate requests before a failure (None: no failure)."""
        if not self.requests_to_fail:
            return None
        ordered = sorted(self.requests_to_fail)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _run_one(spec: AnalysisSpec, traffic: Traffic, stable: np.ndarray, cand: np.ndarray,
             ) -> tuple[int | None, int | None]:
    """(candidate requests at the first fail, at the first pass) of one rollout."""
    first_pass = None
    for k in range(len(stable)):
        evidence = Evidence(
            VariantStats(),
            candidate_tally=Tally((k + 1) * traffic.candidate_per_check, int(cand[k])),
            baseline_tally=Tally((k + 1) * traffic.stable_per_check, int(stable[k])),
        )
        outcome = assess(spec, evidence, now=float(k)).outcome
        seen = (k + 1) * traffic.candidate_per_check
        if outcome == "fail":
            return seen, first_pass
        if outcome == "pass" and first_pass is None:
            first_pass = seen
    return None, first_pass


def simulate(
    spec: AnalysisSpec, traffic: Traffic, *, rollouts: int, checks: int, seed: int
) -> Outcomes:
    """Run ``rollouts`` rollouts of ``checks`` intervals each, checked after every interval."""
    rng = np.random.default_rng(seed)
    shape = (rollouts, checks)
    stable = rng.binomial(traffic.stable_per_check, traffic.stable_rate, shape).cumsum(axis=1)
    cand = rng.binomial(traffic.candidate_per_check, traffic.candidate_rate, shape).cumsum(axis=1)
    fails: list[int] = []
    passes: list[int] = []
    for r in range(rollouts):
        failed_at, passed_at = _run_one(spec, traffic, stable[r], cand[r])
        if failed_at is not None:
            fails.append(failed_at)
        elif passed_at is not None:
            passes.append(passed_at)
    return Outcomes(rollouts, len(fails), len(passes), tuple(fails), tuple(passes))


SCENARIOS: tuple[tuple[str, float, float, float, int], ...] = (
    # name, max_error_rate_increase, stable and candidate error rates, candidate requests a check
    ("identical (A/A), 1 % errors", 0.01, 0.01, 0.01, 50),
    ("identical (A/A), 5 % errors", 0.01, 0.05, 0.05, 50),
    ("identical (A/A), 2 % errors, limit 0", 0.0, 0.02, 0.02, 50),
    ("candidate +1 point (at the limit)", 0.01, 0.01, 0.02, 50),
    ("candidate +5 points", 0.01, 0.01, 0.06, 50),
    ("candidate fails every request", 0.01, 0.01, 1.0, 1),
)


def main() -> None:
    """Print the table of docs/judging.md (confidence 0.95, 1,000 rollouts a row, seed 7)."""
    print("| candidate | max_error_rate_increase | rollouts failed | candidate requests "
          "to fail (median / 95th pct) | rollouts passed (median requests to pass) |")
    print("|---|---|---|---|---|")
    for name, limit, stable_rate, cand_rate, per_check in SCENARIOS:
        spec = AnalysisSpec(judge="sequential", confidence=0.95, max_error_rate_increase=limit)
        traffic = Traffic(stable_rate, cand_rate, stable_per_check=per_check * 4,
                          candidate_per_check=per_check)
        checks = 4000 // per_check if per_check > 1 else 100
        out = simulate(spec, traffic, rollouts=1000, checks=checks, seed=7)
        median_pass = statistics.median(out.requests_to_pass) if out.requests_to_pass else "-"
        print(f"| {name} | {limit:g} | {out.fail_rate:.1%} | {out.to_fail(0.5) or '-'} / "
              f"{out.to_fail(0.95) or '-'} | {out.passed / out.rollouts:.1%} ({median_pass}) |")


if __name__ == "__main__":
    main()
