"""``traffic-router demo --scenario llm``: stand-in LLM servers, streamed chat, a TTFT rollback."""

from __future__ import annotations

import pytest

from tests.demo.test_demo_runner import Demo, leftovers


@pytest.mark.e2e
def test_the_llm_canary_is_rolled_back_for_its_first_token_and_everything_stops() -> None:
    demo = Demo(["--scenario", "llm", "--duration", "15"])
    code, summary, output = demo.run(timeout=100)
    assert code == 0, output
    assert summary["routes"]["chat"]["phase"] == "rolled_back", output
    assert summary["requests"]["chat"]["stable"]["requests"] > 0
    rollbacks = [line for line in demo.lines if line.startswith("event ") and " rollback " in line]
    assert rollbacks and "ttfb_ratio" in rollbacks[0], output
    assert any("ttft p99" in line for line in demo.lines), output  # the view shows TTFT
    assert leftovers(summary) == []
