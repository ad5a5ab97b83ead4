"""Scoring a true label against a prediction, feedback parsing, tallies."""

from __future__ import annotations

from typing import Any

import pytest

from strategies.feedback import FeedbackError, LabelTally, accuracy_line, parse_feedback, score


@pytest.mark.parametrize(
    ("prediction", "label", "verdict", "error"),
    [
        ("1", 1, "correct", 0.0),
        ("1", 1.0, "correct", 0.0),
        ("1", "1", "correct", 0.0),
        ("1", 2, "wrong", 1.0),
        ("1", 1.5, "wrong", 1.0),
        ("setosa", "setosa", "correct", 0.0),
        ("true", True, "correct", 0.0),
        ("false", True, "wrong", 1.0),
        (12.5, 10, "scored", 2.5),
        (12.5, 13.0, "scored", 0.5),
        (12.5, "twelve", "wrong", 1.0),
    ],
)
def test_score(prediction: Any, label: Any, verdict: str, error: float) -> None:
    assert score(prediction, label) == (verdict, pytest.approx(error))


def test_parse_feedback_takes_an_object_or_a_list() -> None:
    one = parse_feedback({"request_id": "a", "label": 1})
    assert [(i.request_id, i.label) for i in one] == [("a", 1)]
    two = parse_feedback([{"request_id": "a", "label": "x"}, {"request_id": "b", "label": 0.5}])
    assert [i.request_id for i in two] == ["a", "b"]


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ("text", "body: must be an object or a list of objects"),
        ([], "body: the list is empty"),
        ([1], "[0].: must be an object"),
        ({"request_id": "", "label": 1}, "request_id: must be a non-empty string"),
        ({"request_id": "x" * 1025, "label": 1}, "request_id: longer than 1024"),
        ({"request_id": "a", "label": None}, "label: must be a string, number or boolean"),
        ({"request_id": "a", "label": float("nan")}, "label: must be a finite number"),
    ],
)
def test_parse_feedback_names_what_is_wrong(doc: Any, reason: str) -> None:
    with pytest.raises(FeedbackError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        parse_feedback(doc)


def test_tally_accuracy_and_mae() -> None:
    tally = LabelTally(correct=3, wrong=1).plus(LabelTally(scored=2, abs_error=3.0))
    assert (tally.labels, tally.accuracy, tally.mae) == (6, 0.75, 1.5)
    assert LabelTally().accuracy is None and LabelTally().mae is None


def test_accuracy_line_shows_accuracy_or_mae_per_version() -> None:
    feedback = {"variants": {
        "candidate": LabelTally(3, 1).render(), "stable": LabelTally(9, 1).render(),
        "default": LabelTally(scored=4, abs_error=10.0).render(),
    }}
    expected = "candidate 75.0% (4) · stable 90.0% (10) · default MAE 2.5 (4)"
    assert accuracy_line(feedback) == expected
    assert accuracy_line(None) == "" and accuracy_line({"variants": {}}) == ""
