"""docs/observability.md lists every metric the router exposes, with its type."""

from __future__ import annotations

import re

from prometheus_client.exposition import generate_latest

from router.notify.sender import Notifier
from router.telemetry.metrics import Metrics
from tests.support import ROOT

DOC = ROOT / "docs" / "observability.md"


def exposed() -> dict[str, str]:
    """Every metric family on the router's registry (the notifier's counter included)."""
    metrics = Metrics()
    Notifier(metrics.registry, config_version=lambda: None, replica=lambda: None)
    text = generate_latest(metrics.registry).decode()
    found = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    # prometheus-client's creation-time sample of an unlabelled counter, not a metric of ours
    return {name: kind for name, kind in found.items() if not name.endswith("_created")}


def documented() -> dict[str, str]:
    """The metrics table of the doc: name to type."""
    return dict(re.findall(r"^\| `(router_\w+)` \| (\w+) \|", DOC.read_text(), re.M))


def test_every_exposed_metric_is_documented_with_its_type() -> None:
    have = exposed()
    assert len(have) > 20  # the registry was read, not an empty one
    doc = documented()
    missing = sorted(set(have) - set(doc))
    assert not missing, f"add these to docs/observability.md: {missing}"
    wrong = {name: (doc[name], kind) for name, kind in have.items() if doc[name] != kind}
    assert not wrong, f"documented type differs from the exposed one: {wrong}"


def test_the_doc_names_no_metric_that_is_gone() -> None:
    assert not sorted(set(documented()) - set(exposed()))
