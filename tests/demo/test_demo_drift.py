"""``traffic-router demo --scenario drift-and-truth`` end to end: the inputs drift halfway,
true labels come back, and the accuracy gate rolls the less accurate v2 back."""

from __future__ import annotations

import pytest

from tests.demo.test_demo_runner import Demo, leftovers


@pytest.mark.e2e
def test_drift_is_flagged_and_the_accuracy_gate_rolls_v2_back() -> None:
    demo = Demo(["--scenario", "drift-and-truth", "--duration", "45"])
    code, summary, output = demo.run(timeout=150)
    assert code == 0, output
    events = [line for line in demo.lines if line.startswith("event ")]
    shift = next(i for i, line in enumerate(events) if "the inputs drift" in line)
    # Before the shift v2 was accurate enough to take its step; after it, drift and rollback.
    assert any(" rollout_step " in line for line in events[:shift]), output
    assert any(" input_drift " in line and "input-0[3]" in line for line in events[shift:]), output
    rollback = next(line for line in events[shift:] if " rollback " in line)
    assert "accuracy_ratio" in rollback, output
    assert summary["routes"]["iris"]["phase"] == "rolled_back", output
    assert any("accuracy candidate" in line for line in demo.lines), output
    assert leftovers(summary) == []
