"""The sequential judge: always-valid confidence sequences instead of a ``min_requests`` wait.

Each rate is bounded by Robbins' beta-binomial mixture confidence sequence
(Robbins 1970; Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-uniform,
nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2)): with
a Beta(1, 1) mixing prior,

    M_n(p) = B(1 + S, 1 + n - S) / B(1, 1) / (p^S (1 - p)^(n - S))

is a nonnegative martingale under rate ``p`` for observations in [0, 1] (they
are sub-Bernoulli), so by Ville's inequality the set {p : M_n(p) < 1/a} holds the
true rate at every n at once with probability at least 1 - a. A check may
therefore look after every request, or every interval, without inflating its
error: that is what "always valid" means here.

Rules, with ``a = 1 - confidence``:

- ``error_rate_increase``: the candidate's and stable's intervals at ``a/2`` each
  bound the difference d = p_cand - p_stable by [L_c - U_s, U_c - L_s] with
  probability 1 - a at all times. Fail when the lower end exceeds
  ``max_error_rate_increase``; pass when the upper end is at or below it.
- ``error_rate``: the candidate's interval against ``max_error_rate``.
- ``p99_latency``: the share of candidate requests slower than ``max_p99_latency``
  against 1 %.
- ``latency_ratio`` (a rank test): each candidate request scores
  F_stable(latency / ratio), the share of stable requests faster than it
  scaled down by ``max_latency_ratio`` (a Mann-Whitney placement). Its mean is
  P(stable < candidate / ratio), which exceeds 1/2 exactly when the candidate is
  more than ``ratio`` times slower for a change of scale. Stable's distribution
  is taken as known from its (larger) sample; fail when the interval of the mean
  score is above 1/2, pass when it is at or below.

Otherwise hold. Evidence counts from when the rollout (or switch) began.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence

from strategies.analysis.checks import Check, Evidence
from strategies.analysis.spec import AnalysisSpec
from strategies.analysis.verdict import CheckResult
from strategies.observation import LATENCY_BOUNDS, Tally

__all__ = ["MIN_BASELINE", "SEQUENTIAL_CHECKS", "confidence_interval", "log_mixture"]

MIN_BASELINE = 30
"""Stable requests needed before its latency distribution serves as the reference."""

_TAIL = 0.01  # p99: at most 1 % of requests above the limit


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def log_mixture(successes: float, trials: float, p: float) -> float:
    """log M_n(p): the beta-binomial mixture martingale at rate ``p`` (see the module)."""
    failures = trials - successes
    value = _log_marginal(successes, failures)
    if successes:
        value -= successes * math.log(p) if p > 0 else -math.inf
    if failures:
        value -= failures * math.log1p(-p) if p < 1 else -math.inf
    return value


def _log_marginal(successes: float, failures: float) -> float:
    return _log_beta(1.0 + successes, 1.0 + failures) - _log_beta(1.0, 1.0)


def _softplus(x: float) -> float:
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _bound(successes: float, trials: float, level: float, side: int) -> float:
    """Where the log likelihood falls to ``level`` on one ``side`` (+1 up, -1 down) of its peak.

    In log-odds t the log likelihood g(t) = S t - n log(1 + e^t) is concave, so
    Newton's method started outside the crossing walks to it monotonically.
    """
    centre = min(max(successes / trials, 1e-12), 1.0 - 1e-12)
    peak = math.log(centre / (1.0 - centre))

    def excess(t: float) -> float:
        return successes * t - trials * _softplus(t) - level

    step = 1.0
    t = peak + side * step
    while excess(t) > 0:
        step *= 2.0
        t = peak + side * step
    for _ in range(60):
        value = excess(t)
        if value > -1e-10:
            break
        t -= value / (successes - trials * _sigmoid(t))
    return _sigmoid(t)


def confidence_interval(successes: float, trials: float, alpha: float) -> tuple[float, float]:
    """The rates ``p`` with M_n(p) < 1/alpha: valid at every n at once w.p. 1 - alpha.

    M_n(p) < 1/alpha is: log likelihood(p) > log marginal - log(1/alpha).
    """
    if trials <= 0:
        return 0.0, 1.0
    successes = min(max(successes, 0.0), trials)
    level = _log_marginal(successes, trials - successes) - math.log(1.0 / alpha)
    low = 0.0 if successes <= 0 else _bound(successes, trials, level, -1)
    high = 1.0 if successes >= trials else _bound(successes, trials, level, +1)
    return low, high


def _alpha(spec: AnalysisSpec) -> float:
    return 1.0 - spec.confidence


def _conf(spec: AnalysisSpec) -> str:
    return f"{spec.confidence:.0%} confidence"


def _result(
    rule: str, estimate: float, bounds: tuple[float, float], limit: float, text: str
) -> CheckResult:
    """Fail when the whole interval is above ``limit``, pass when at or below, else hold.

    The statistic is the running estimate; ``{rule}_low``/``_high`` its interval.
    """
    low, high = bounds
    numbers = {f"{rule}_low": low, f"{rule}_high": high, f"{rule}_limit": limit}
    if low > limit:
        return CheckResult(rule, "fail", text, numbers, estimate, limit, decisive=True)
    if high <= limit:
        return CheckResult(rule, "pass", text, numbers, estimate, limit, decisive=True)
    return CheckResult(rule, "hold", text, numbers, estimate, limit)


Body = Callable[[AnalysisSpec, float, Tally, Tally], CheckResult]


def _sequential(rule: str, limit_of: Callable[[AnalysisSpec], float | None],
                boundary: Callable[[float], float], body: Body) -> Check:
    """A check of ``rule``: absent without its limit, holding until evidence exists."""

    def check(spec: AnalysisSpec, evidence: Evidence) -> CheckResult | None:
        limit = limit_of(spec)
        if limit is None:
            return None
        cand = evidence.candidate_tally
        if cand is None:
            return CheckResult(rule, "hold", f"{rule}: no evidence yet (counting starts)",
                               boundary=boundary(limit))
        if not cand.requests:
            return CheckResult(rule, "hold", f"{rule}: no candidate requests yet",
                               boundary=boundary(limit))
        return body(spec, limit, cand, evidence.baseline_tally or Tally())

    check.__name__ = f"sequential_{rule}"
    return check


def _error_rate_increase(spec: AnalysisSpec, limit: float, cand: Tally, base: Tally
                         ) -> CheckResult:
    c_low, c_high = confidence_interval(cand.errors, cand.requests, _alpha(spec) / 2)
    s_low, s_high = confidence_interval(base.errors, base.requests, _alpha(spec) / 2)
    low, high = max(c_low - s_high, -1.0), c_high - s_low
    counts = (f"{cand.errors:,}/{cand.requests:,} vs {base.errors:,}/{base.requests:,} "
              "errors since start")
    if low > limit:
        text = (f"error rate: candidate worse by >= {low:.1%} (> {limit:.1%}) at "
                f"{_conf(spec)} after {cand.requests:,} requests ({counts})")
    elif high <= limit:
        text = (f"error rate: candidate worse by at most {high:.1%} (<= {limit:.1%}) at "
                f"{_conf(spec)} ({counts})")
    else:
        text = (f"error rate: candidate - stable in [{low:+.1%}, {high:+.1%}] at "
                f"{_conf(spec)}, limit {limit:.1%}: no verdict yet ({counts})")
    base_rate = base.errors / base.requests if base.requests else 0.0
    estimate = cand.errors / cand.requests - base_rate
    return _result("error_rate_increase", estimate, (low, high), limit, text)


def _error_rate(spec: AnalysisSpec, limit: float, cand: Tally, base: Tally) -> CheckResult:
    low, high = confidence_interval(cand.errors, cand.requests, _alpha(spec))
    verdict = "above" if low > limit else "at or below" if high <= limit else "around"
    text = (f"error_rate in [{low:.1%}, {high:.1%}] at {_conf(spec)}: {verdict} {limit:.1%} "
            f"({cand.errors:,} of {cand.requests:,} requests)")
    return _result("error_rate", cand.errors / cand.requests, (low, high), limit, text)


def _bucket_edges(index: int) -> tuple[float, float]:
    low = LATENCY_BOUNDS[index - 1] if index > 0 else 0.0
    high = LATENCY_BOUNDS[index] if index < len(LATENCY_BOUNDS) else LATENCY_BOUNDS[-1] * 1.12
    return low, high


def _share_below(hist: Sequence[int], total: int, x: float) -> float:
    """The share of a latency histogram below ``x``, linear within a bucket."""
    index = bisect.bisect_left(LATENCY_BOUNDS, x)
    below = float(sum(hist[:index]))
    if index < len(hist):
        low, high = _bucket_edges(index)
        if high > low:
            below += hist[index] * min(max((x - low) / (high - low), 0.0), 1.0)
    return below / total


def _p99_latency(spec: AnalysisSpec, limit: float, cand: Tally, base: Tally) -> CheckResult:
    if not cand.latency:
        return CheckResult("p99_latency", "hold", "p99_latency: no latency histogram",
                           boundary=_TAIL)
    slow = cand.requests * (1.0 - _share_below(cand.latency, cand.requests, limit))
    low, high = confidence_interval(slow, cand.requests, _alpha(spec))
    text = (f"p99_latency: share of requests over {limit * 1000:g}ms in [{low:.1%}, {high:.1%}]"
            f" at {_conf(spec)}, limit 1% ({cand.requests:,} requests)")
    return _result("p99_latency", slow / cand.requests, (low, high), _TAIL, text)


def _latency_ratio(spec: AnalysisSpec, ratio: float, cand: Tally, base: Tally) -> CheckResult:
    rule = "latency_ratio"
    if base.requests < MIN_BASELINE or not base.latency or not cand.latency:
        text = f"{rule}: {base.requests:,} stable requests, need {MIN_BASELINE}"
        return CheckResult(rule, "hold", text, boundary=0.5)
    score = 0.0
    for index, count in enumerate(cand.latency):
        if count:
            low_edge, high_edge = _bucket_edges(index)
            middle = math.sqrt(low_edge * high_edge) if low_edge else high_edge / 2
            score += count * _share_below(base.latency, base.requests, middle / ratio)
    low, high = confidence_interval(score, cand.requests, _alpha(spec))
    text = (f"latency_ratio: P(stable < candidate / {ratio:g}) in [{low:.2f}, {high:.2f}] at "
            f"{_conf(spec)}, limit 0.5 (rank test, {cand.requests:,} vs "
            f"{base.requests:,} requests)")
    return _result(rule, score / cand.requests, (low, high), 0.5, text)


SEQUENTIAL_CHECKS: tuple[Check, ...] = (
    _sequential("error_rate", lambda s: s.max_error_rate, lambda x: x, _error_rate),
    _sequential("error_rate_increase", lambda s: s.max_error_rate_increase, lambda x: x,
                _error_rate_increase),
    _sequential("p99_latency", lambda s: s.max_p99_latency, lambda x: _TAIL, _p99_latency),
    _sequential("latency_ratio", lambda s: s.max_latency_ratio, lambda x: 0.5, _latency_ratio),
)
"""The sequential judge's rules on errors and latency."""
