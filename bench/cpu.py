"""Where a measurement's CPU went: the target under load, the nginx stand-ins, and wrk.

On a 2-core machine the load generator and the backends share the cores with the
proxy being measured, so a throughput figure alone hides how much of the machine
was left for it. Each wrk run is bracketed by two readings: the CPU seconds of the
target's process tree (router workers, or nginx as the proxy) and of the stand-ins'
trees from ``/proc`` (psutil), and wrk's own from ``getrusage(RUSAGE_CHILDREN)``,
since wrk is a child this process waits for.
"""

from __future__ import annotations

import resource
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import psutil
from procs import process_tree

__all__ = ["CpuSplit", "metered", "tree_cpu_seconds"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CpuSplit:
    """CPU seconds spent during one measurement, by part, and its wall time."""

    target_s: float
    stand_ins_s: float
    wrk_s: float
    wall_s: float

    def per_request_us(self, requests: int) -> tuple[float, float, float]:
        """(target, stand-ins, wrk) in CPU microseconds per request."""
        n = max(requests, 1)
        return (self.target_s / n * 1e6, self.stand_ins_s / n * 1e6, self.wrk_s / n * 1e6)

    @property
    def busy_cores(self) -> float:
        """All three parts together, in cores kept busy on average."""
        total = self.target_s + self.stand_ins_s + self.wrk_s
        return total / self.wall_s if self.wall_s else 0.0


def tree_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of ``pid`` and its living descendants (0 if it is gone)."""
    total = 0.0
    for proc in process_tree(pid) if pid is not None else []:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def metered(
    run: Callable[[], T], target: int | None, stand_ins: Sequence[int], wall: Callable[[], float]
) -> tuple[T, CpuSplit]:
    """``run()`` (which starts and waits for wrk), with the CPU each part spent meanwhile."""
    target0 = tree_cpu_seconds(target)
    stand0 = sum(tree_cpu_seconds(pid) for pid in stand_ins)
    wrk0 = _children_cpu_seconds()
    start = wall()
    result = run()
    elapsed = wall() - start
    split = CpuSplit(
        target_s=tree_cpu_seconds(target) - target0,
        stand_ins_s=sum(tree_cpu_seconds(pid) for pid in stand_ins) - stand0,
        wrk_s=_children_cpu_seconds() - wrk0,
        wall_s=elapsed,
    )
    return result, split
