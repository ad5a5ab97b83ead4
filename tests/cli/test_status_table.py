"""The CLI's status table (what it adds below the routes) and the feedback options."""

from __future__ import annotations

import pytest

from router.cli.client import format_status_table
from router.cli.main import build_parser


def test_status_table_shows_accuracy_on_true_labels() -> None:
    feedback = {"window_s": 3600, "variants": {
        "candidate": {"labels": 40, "accuracy": 0.75}, "stable": {"labels": 60, "accuracy": 0.95},
    }}
    status = {"config": {}, "routes": {"iris": {"strategy": "canary", "phase": "progressing",
                                                "weights": {}, "feedback": feedback}}}
    assert "iris: accuracy on true labels candidate 75.0% (40) · stable 95.0% (60)" in (
        format_status_table(status)
    )


def test_feedback_batch_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["feedback", "labels.jsonl", "--batch", "0"])
    assert "--batch: must be 1 or more (got 0)" in capsys.readouterr().err
    assert build_parser().parse_args(["feedback", "labels.jsonl"]).batch == 1000
