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
from strategies.observation import LATENCY_BOUNDS, Tally, VariantStats

__all__ = ["Outcomes", "Traffic", "main", "peeking_fail_rate", "simulate", "simulate_latency"]


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


def _outcomes(firsts: list[tuple[int | None, int | None]]) -> Outcomes:
    fails = [f for f, _ in firsts if f is not None]
    passes = [p for f, p in firsts if f is None and p is not None]
    return Outcomes(len(firsts), len(fails), len(passes), tuple(fails), tuple(passes))


def simulate(
    spec: AnalysisSpec, traffic: Traffic, *, rollouts: int, checks: int, seed: int
) -> Outcomes:
    """Run ``rollouts`` rollouts of ``checks`` intervals each, checked after every interval."""
    rng = np.random.default_rng(seed)
    shape = (rollouts, checks)
    stable = rng.binomial(traffic.stable_per_check, traffic.stable_rate, shape).cumsum(axis=1)
    cand = rng.binomial(traffic.candidate_per_check, traffic.candidate_rate, shape).cumsum(axis=1)
    return _outcomes([_run_one(spec, traffic, stable[r], cand[r]) for r in range(rollouts)])


def peeking_fail_rate(traffic: Traffic, *, rollouts: int, checks: int, seed: int) -> float:
    """The control: a fixed-sample one-sided z-test at 95 % (no margin) looked at after every
    interval, on the same draws ``simulate`` makes. Peeking inflates its error well past 5 %."""
    rng = np.random.default_rng(seed)
    shape = (rollouts, checks)
    stable = rng.binomial(traffic.stable_per_check, traffic.stable_rate, shape).cumsum(axis=1)
    cand = rng.binomial(traffic.candidate_per_check, traffic.candidate_rate, shape).cumsum(axis=1)
    k = np.arange(1, checks + 1)
    n_s, n_c = k * traffic.stable_per_check, k * traffic.candidate_per_check
    p_s, p_c = stable / n_s, cand / n_c
    pooled = (stable + cand) / (n_s + n_c)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_s + 1 / n_c))
    z = np.divide(p_c - p_s, se, out=np.zeros(shape), where=se > 0)
    return float((z > 1.645).any(axis=1).mean())


def _latency_tallies(
    rng: np.random.Generator, scale: float, per_check: int, checks: int
) -> list[Tally]:
    """Running latency tallies of lognormal requests (median 50 ms x ``scale``), per check."""
    draws = scale * rng.lognormal(np.log(0.05), 0.5, size=(checks, per_check))
    buckets = np.searchsorted(np.asarray(LATENCY_BOUNDS), draws, side="left")
    counts = np.zeros(len(LATENCY_BOUNDS) + 1, dtype=np.int64)
    tallies = []
    for k in range(checks):
        counts += np.bincount(buckets[k], minlength=len(counts))
        tallies.append(Tally((k + 1) * per_check, 0, tuple(int(n) for n in counts)))
    return tallies


def simulate_latency(
    spec: AnalysisSpec, scale: float, *, rollouts: int, checks: int, per_check: int, seed: int
) -> Outcomes:
    """Rollouts whose candidate is stable slowed by ``scale``, through the rank test."""
    rng = np.random.default_rng(seed)
    firsts: list[tuple[int | None, int | None]] = []
    for _ in range(rollouts):
        stable = _latency_tallies(rng, 1.0, 4 * per_check, checks)
        cand = _latency_tallies(rng, scale, per_check, checks)
        first_fail = first_pass = None
        for k in range(checks):
            evidence = Evidence(VariantStats(), candidate_tally=cand[k], baseline_tally=stable[k])
            outcome = assess(spec, evidence, now=float(k)).outcome
            if outcome == "fail":
                first_fail = (k + 1) * per_check
                break
            if outcome == "pass" and first_pass is None:
                first_pass = (k + 1) * per_check
        firsts.append((first_fail, first_pass))
    return _outcomes(firsts)


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


LATENCY_SCENARIOS: tuple[tuple[str, float, float], ...] = (
    # name, max_latency_ratio, candidate latency / stable latency
    ("identical latency, ratio 1", 1.0, 1.0),
    ("identical latency, ratio 1.5", 1.5, 1.0),
    ("candidate 1.5x slower (at the limit)", 1.5, 1.5),
    ("candidate 2x slower", 1.5, 2.0),
    ("candidate 3x slower", 1.5, 3.0),
)


def latency_table() -> None:
    """Print the rank test's table (1,000 rollouts a row, 25 candidate requests a check)."""
    print("| candidate | max_latency_ratio | rollouts failed | candidate requests to fail "
          "(median / 95th pct) | rollouts passed within 500 requests |")
    print("|---|---|---|---|---|")
    for name, ratio, scale in LATENCY_SCENARIOS:
        spec = AnalysisSpec(judge="sequential", confidence=0.95, max_latency_ratio=ratio)
        out = simulate_latency(spec, scale, rollouts=1000, checks=20, per_check=25, seed=7)
        print(f"| {name} | {ratio:g} | {out.fail_rate:.1%} | {out.to_fail(0.5) or '-'} / "
              f"{out.to_fail(0.95) or '-'} | {out.passed / out.rollouts:.1%} |")


if __name__ == "__main__":
    main()
    print()
    latency_table()
