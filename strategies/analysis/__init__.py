"""Live analysis: judging a candidate against its baseline from live numbers.

Shared by canary and blue-green (one implementation, not a copy). ``spec`` is
the YAML section; ``checks`` and ``sequential`` hold one function per rule,
each giving a named ``CheckResult``; ``judge`` runs the configured judge
(``threshold`` or ``sequential``) and combines the results into a ``Verdict``;
``verdict`` keeps its cadence, failure count, store format and rendering.
"""

from __future__ import annotations

from strategies.analysis.checks import GATES, MIN_ANSWERS, MIN_PREDICTIONS, Evidence
from strategies.analysis.judge import (
    Mark,
    Roles,
    assess,
    begin_mark,
    judge,
    mark_from_dict,
    mark_to_dict,
)
from strategies.analysis.spec import AnalysisSpec, MetricCheckSpec
from strategies.analysis.verdict import (
    HEALTH_DOWN_REASON,
    CheckResult,
    Outcome,
    Verdict,
    analysis_event,
    check_due,
    count_failures,
    failure_trigger,
    format_instant,
    render_analysis,
    should_act,
    verdict_from_dict,
    verdict_to_dict,
)

__all__ = [
    "GATES",
    "HEALTH_DOWN_REASON",
    "MIN_ANSWERS",
    "MIN_PREDICTIONS",
    "AnalysisSpec",
    "CheckResult",
    "Evidence",
    "Mark",
    "MetricCheckSpec",
    "Outcome",
    "Roles",
    "Verdict",
    "analysis_event",
    "assess",
    "begin_mark",
    "check_due",
    "count_failures",
    "failure_trigger",
    "format_instant",
    "judge",
    "mark_from_dict",
    "mark_to_dict",
    "render_analysis",
    "should_act",
    "verdict_from_dict",
    "verdict_to_dict",
]
