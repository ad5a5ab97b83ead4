"""The CLI's status table: what it adds below the routes."""

from __future__ import annotations

from router.cli.client import format_status_table


def test_status_table_shows_accuracy_on_true_labels() -> None:
    feedback = {"window_s": 3600, "variants": {
        "candidate": {"labels": 40, "accuracy": 0.75}, "stable": {"labels": 60, "accuracy": 0.95},
    }}
    status = {"config": {}, "routes": {"iris": {"strategy": "canary", "phase": "progressing",
                                                "weights": {}, "feedback": feedback}}}
    assert "iris: accuracy on true labels candidate 75.0% (40) · stable 95.0% (60)" in (
        format_status_table(status)
    )
