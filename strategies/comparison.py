"""The result of comparing a shadow's answer with the primary's (every compare mode)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Comparison", "Outcome"]

Outcome = Literal["match", "mismatch", "error"]


@dataclass(frozen=True, slots=True)
class Comparison:
    """One shadow answer compared with the primary's.

    ``first_difference`` is a path with both values, e.g.
    ``outputs[name=probabilities].data[3]: primary=0.1 shadow=0.2``.
    ``max_abs_diff`` is the largest ``|primary - shadow|`` over the numbers
    compared (``None`` when none were).
    """

    outcome: Outcome
    protocol: str
    first_difference: str | None = None
    max_abs_diff: float | None = None
    label_flip: bool | None = None
    detail: str = ""
