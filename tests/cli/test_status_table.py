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


def test_status_table_shows_the_replica_its_store_and_the_fleet() -> None:
    status = {
        "config": {}, "routes": {},
        "replica": {"id": "pod-a", "leader": False},
        "state_store": {"kind": "redis", "ok": False, "error": "redis at redis://r:6379/0: down"},
        "fleet": {"leader": "pod-b", "replicas": [
            {"id": "pod-a", "config_version": "3f9c2a1b", "leader": False,
             "last_seen": "2026-12-06T00:00:01Z"},
            {"id": "pod-b", "config_version": "77aa0c3e", "leader": True,
             "last_seen": "2026-12-06T00:00:00Z"},
        ]},
    }
    lines = format_status_table(status).splitlines()
    assert "replica pod-a · state store redis FAILING: redis at redis://r:6379/0: down" in lines
    assert "fleet: 2 replicas" in lines
    assert "  pod-b  config 77aa0c3e  seen 2026-12-06T00:00:00Z  leader" in lines
    one = {"config": {}, "routes": {}, "replica": {"id": "solo", "leader": True},
           "state_store": {"kind": "file", "ok": True},
           "fleet": {"leader": "solo", "replicas": [{"id": "solo"}]}}
    last = format_status_table(one).splitlines()[-1]
    assert last == "replica solo (leader) · state store file ok"
