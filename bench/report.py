"""Turn measurements into medians, the results table, the comparisons and the JSON file."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cpu import CpuSplit
from scenarios import Comparison, Load
from wrk import WrkResult

__all__ = [
    "Measurement",
    "Summary",
    "Verdict",
    "assess",
    "render_comparisons",
    "render_cpu",
    "render_table",
    "render_worker_ceiling",
    "summarize",
    "write_json",
]

#: Two workers should reach this share of the ceiling the machine leaves them.
WORKERS_SHARE_OF_CEILING = 0.9


@dataclass(frozen=True, slots=True)
class Measurement:
    """One wrk run of one scenario under one load in one round."""

    scenario: str
    load: Load
    round: int
    result: WrkResult
    cpu: CpuSplit | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """Medians over the rounds of one scenario under one load; errors are summed."""

    scenario: str
    method: str
    connections: int
    rounds: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    socket_errors: int
    non_2xx: int
    # Median CPU microseconds per request: the target, the nginx stand-ins, wrk; busy cores.
    cpu_target_us: float | None = None
    cpu_stand_ins_us: float | None = None
    cpu_wrk_us: float | None = None
    busy_cores: float | None = None

    @property
    def cpu_total_us(self) -> float | None:
        """CPU per request of everything on the machine taking part in the measurement."""
        parts = (self.cpu_target_us, self.cpu_stand_ins_us, self.cpu_wrk_us)
        return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A comparison's value and whether it meets its target (None: no target or no data)."""

    comparison: Comparison
    value: float | None
    ok: bool | None


def summarize(measurements: Sequence[Measurement]) -> list[Summary]:
    """Median requests/s, p50 and p99 per (scenario, load), in first-seen order."""
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.scenario, m.load.key), []).append(m)
    summaries = []
    for (scenario, _), group in groups.items():
        results = [m.result for m in group]
        splits = [(m.cpu.per_request_us(m.result.requests), m.cpu.busy_cores)
                  for m in group if m.cpu is not None]
        cpu: dict[str, float] = {}
        if splits:
            for i, key in enumerate(("cpu_target_us", "cpu_stand_ins_us", "cpu_wrk_us")):
                cpu[key] = statistics.median(per_request[i] for per_request, _ in splits)
            cpu["busy_cores"] = statistics.median(busy for _, busy in splits)
        summaries.append(Summary(
            scenario=scenario,
            method=group[0].load.method,
            connections=group[0].load.connections,
            rounds=len(group),
            rps=statistics.median(r.rps for r in results),
            p50_ms=statistics.median(r.p50_ms for r in results),
            p99_ms=statistics.median(r.p99_ms for r in results),
            requests=sum(r.requests for r in results),
            socket_errors=sum(r.socket_errors for r in results),
            non_2xx=sum(r.non_2xx for r in results),
            **cpu,
        ))
    return summaries


def _find(summaries: Sequence[Summary], scenario: str, load: Load) -> Summary | None:
    for s in summaries:
        if s.scenario == scenario and (s.method, s.connections) == (load.method, load.connections):
            return s
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _value(kind: str, a: Summary, b: Summary) -> float | None:
    """The number a comparison of ``kind`` reports for ``a`` against ``b``."""
    if kind == "rps_ratio":
        return _ratio(a.rps, b.rps)
    if kind == "cpu_ratio":
        return _ratio(a.cpu_target_us, b.cpu_target_us)
    if kind == "p99_ratio":
        return _ratio(a.p99_ms, b.p99_ms)
    return a.p50_ms - b.p50_ms


def assess(comparisons: Sequence[Comparison], summaries: Sequence[Summary]) -> list[Verdict]:
    """Evaluate each comparison whose two sides were measured."""
    verdicts = []
    for c in comparisons:
        a, b = _find(summaries, c.a, c.load), _find(summaries, c.b, c.load)
        if a is None or b is None:
            continue
        value = _value(c.kind, a, b)
        at_least = c.kind == "rps_ratio"
        ok = None
        if c.target is not None and value is not None:
            ok = value >= c.target if at_least else value <= c.target
        verdicts.append(Verdict(c, value, ok))
    return verdicts


def render_table(summaries: Sequence[Summary]) -> str:
    """The results table: scenario | conns | method | req/s | p50 | p99 | errors."""
    header = (
        f"{'scenario':<18} {'conns':>5} {'method':<6} {'req/s':>9} {'p50':>9} {'p99':>9}  errors"
    )
    lines = [header, "-" * len(header)]
    for s in summaries:
        errors = s.socket_errors + s.non_2xx
        err = "0"
        if errors:
            err = f"{errors}  <-- ERRORS ({s.socket_errors} socket, {s.non_2xx} non-2xx)"
        lines.append(
            f"{s.scenario:<18} {s.connections:>5} {s.method:<6} {s.rps:>9,.0f} "
            f"{s.p50_ms:>7.2f}ms {s.p99_ms:>7.2f}ms  {err}"
        )
    return "\n".join(lines)


def render_cpu(summaries: Sequence[Summary]) -> str:
    """CPU microseconds per request by part, and the cores all parts kept busy."""
    header = (
        f"{'scenario':<18} {'conns':>5} {'method':<6} {'target':>8} {'stand-ins':>10} "
        f"{'wrk':>6} {'busy cores':>11}"
    )
    lines = [header, "-" * len(header)]
    for s in summaries:
        if s.cpu_target_us is None or s.busy_cores is None:
            continue
        lines.append(
            f"{s.scenario:<18} {s.connections:>5} {s.method:<6} {s.cpu_target_us:>6.0f}us "
            f"{s.cpu_stand_ins_us or 0:>8.0f}us {s.cpu_wrk_us or 0:>4.0f}us {s.busy_cores:>11.2f}"
        )
    return "\n".join(lines)


def render_worker_ceiling(
    summaries: Sequence[Summary], one: str, two: str, cores: int
) -> str:
    """How far ``two`` workers could scale over ``one`` on this machine, and how far they did.

    At best every core is busy at the CPU per request measured with one worker (router,
    stand-ins and wrk together); the ratio to the one-worker rate is the ceiling. The
    target is two workers at 90 % of it or more.
    """
    lines = []
    rates = {(s.scenario, s.method): s.rps for s in summaries if s.connections == 64}
    for s in summaries:
        total = s.cpu_total_us
        if s.scenario != one or s.connections != 64 or total is None or not s.rps:
            continue
        ceiling = cores / (total * 1e-6) / s.rps
        lines.append(
            f"  ceiling {two} / {one} {s.method}@64 here  {ceiling:>6.2f}x  ({cores} cores / "
            f"(router {s.cpu_target_us:.0f} + stand-ins {s.cpu_stand_ins_us:.0f} + wrk "
            f"{s.cpu_wrk_us:.0f} us of CPU per request) / {s.rps:,.0f} req/s)"
        )
        scaled = rates.get((two, s.method))
        if scaled:
            share = scaled / s.rps / ceiling
            verdict = "met" if share >= WORKERS_SHARE_OF_CEILING else "NOT met"
            lines.append(
                f"  {two} reached {scaled / s.rps:.2f}x = {share:.0%} of that ceiling "
                f"(target >= {WORKERS_SHARE_OF_CEILING:.0%}: {verdict})"
            )
    return "\n".join(lines)


def render_comparisons(verdicts: Sequence[Verdict]) -> str:
    """One line per comparison with its value and, if it has one, the target and verdict."""
    lines = []
    for v in verdicts:
        c = v.comparison
        if v.value is None:
            text = "n/a"
        elif c.kind == "p50_diff_ms":
            text = f"{v.value:+.2f} ms"
        else:
            text = f"{v.value:.2f}x"
        if c.target is None:
            goal = ""
        else:
            bar = {"rps_ratio": f">= {c.target:g}x", "p50_diff_ms": f"<= {c.target:g} ms"}.get(
                c.kind, f"<= {c.target:g}x"
            )
            goal = f"  (target {bar}: {'met' if v.ok else 'NOT met'})"
        lines.append(f"  {c.label:<40} {text:>10}{goal}")
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (dataclasses allowed) as indented JSON, creating the directory."""

    def default(obj: Any) -> Any:
        if hasattr(obj, "__dataclass_fields__"):
            return asdict(obj)
        raise TypeError(f"not JSON serializable: {type(obj).__name__}")

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=default) + "\n")
