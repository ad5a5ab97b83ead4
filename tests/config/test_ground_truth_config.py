"""Config rules of docs/drift.md: the accuracy gate needs the route's labels."""

from __future__ import annotations

import pytest

from router.config.loader import ConfigError, parse_config

ROUTE = """
backends: {{a: {{url: "http://127.0.0.1:1"}}, b: {{url: "http://127.0.0.1:2"}}}}
routes:
  - name: r
    strategy: {{type: canary, stable: a, candidate: b, weight: 10,
               analysis: {{min_accuracy_ratio: 0.9}}}}
{feedback}
"""


def test_min_accuracy_ratio_without_feedback_is_refused_with_its_place() -> None:
    with pytest.raises(ConfigError, match=r"routes\[0\]: strategy\.analysis\.min_accuracy_ratio "
                                          r"needs a feedback section"):
        parse_config(ROUTE.format(feedback=""))


def test_min_accuracy_ratio_with_feedback_loads() -> None:
    config = parse_config(ROUTE.format(feedback="    feedback: {keep: 10, window: 5m}"))
    assert config.routes[0].feedback is not None and config.routes[0].feedback.window == 300


def test_drift_and_feedback_need_body_inspection() -> None:
    text = """
proxy: {inspect_max_body: 0}
backends: {a: {url: "http://127.0.0.1:1"}}
routes:
  - name: r
    strategy: {type: direct, backend: a}
    feedback: {}
    drift: {}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    places = [issue.place for issue in caught.value.issues]
    assert places == ["routes[0].drift", "routes[0].feedback"]
    assert "needs proxy.inspect_max_body above 0" in str(caught.value)
