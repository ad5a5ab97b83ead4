"""The weight and phase gauges: one phase series for a settled route, earlier phases at 0."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from router.telemetry.metrics import Metrics


def _samples(metrics: Metrics, name: str) -> dict[tuple[str, str], float]:
    text = metrics.render().decode()
    return {
        (sample.labels["route"], sample.labels.get("phase") or sample.labels["variant"]):
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_a_settled_route_has_one_phase_series_and_its_weights() -> None:
    metrics = Metrics()
    metrics.set_rollout("iris", "steady", {"stable": 90.0, "candidate": 10.0})
    assert _samples(metrics, "router_rollout_phase") == {("iris", "steady"): 1.0}
    assert _samples(metrics, "router_traffic_weight_percent") == {
        ("iris", "stable"): 90.0, ("iris", "candidate"): 10.0,
    }


def test_earlier_phases_stay_at_zero_and_a_removed_route_disappears() -> None:
    metrics = Metrics()
    metrics.set_rollout("iris", "steady", {"stable": 50.0, "candidate": 50.0})
    metrics.set_rollout("iris", "rolled_back", {"stable": 100.0, "candidate": 0.0})
    metrics.set_rollout("fraud", "mirroring", {"primary": 100.0})
    assert _samples(metrics, "router_rollout_phase") == {
        ("iris", "steady"): 0.0, ("iris", "rolled_back"): 1.0, ("fraud", "mirroring"): 1.0,
    }
    metrics.forget_route("iris", ("stable", "candidate"))
    assert _samples(metrics, "router_rollout_phase") == {("fraud", "mirroring"): 1.0}
    assert _samples(metrics, "router_traffic_weight_percent") == {("fraud", "primary"): 100.0}
