"""``bench/traefik.py`` and the bench's comparison kinds: Traefik's config and the verdicts."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from report import Summary, assess
from scenarios import Comparison, Load
from traefik import render_dynamic, render_static


def test_static_config_listens_on_loopback_and_reads_the_dynamic_file(tmp_path: Path) -> None:
    static = yaml.safe_load(render_static(18080, tmp_path / "dynamic.yml"))
    assert static["entryPoints"]["web"]["address"] == "127.0.0.1:18080"
    assert static["providers"]["file"]["filename"] == str(tmp_path / "dynamic.yml")
    assert static["log"]["level"] == "ERROR"
    assert "accessLog" not in static


def test_dynamic_config_splits_by_weight_over_every_upstream() -> None:
    upstreams = {"model-a": ("http://127.0.0.1:1", 90), "model-b": ("http://127.0.0.1:2", 10)}
    http = yaml.safe_load(render_dynamic(upstreams))["http"]
    assert http["routers"]["bench"] == {
        "rule": "PathPrefix(`/`)", "entryPoints": ["web"], "service": "split",
    }
    weighted = http["services"]["split"]["weighted"]["services"]
    assert weighted == [{"name": "model-a", "weight": 90}, {"name": "model-b", "weight": 10}]
    for name, (url, _) in upstreams.items():
        assert http["services"][name]["loadBalancer"]["servers"] == [{"url": url}]


def _summary(name: str, rps: float, p99: float, cpu: float) -> Summary:
    return Summary(name, "GET", 64, 3, rps, 1.0, p99, 1000, 0, 0, cpu_target_us=cpu)


def test_cpu_and_p99_ratios_must_stay_under_their_target_and_rps_above() -> None:
    load = Load("GET", 64)
    summaries = [_summary("router", 900.0, 30.0, 60.0), _summary("traefik", 1000.0, 10.0, 50.0)]
    verdicts = assess([
        Comparison("rps", "router", "traefik", load, target=0.9),
        Comparison("cpu", "router", "traefik", load, kind="cpu_ratio", target=1.0),
        Comparison("p99", "router", "traefik", load, kind="p99_ratio", target=2.0),
    ], summaries)
    assert [(v.comparison.label, round(v.value or 0, 2), v.ok) for v in verdicts] == [
        ("rps", 0.9, True), ("cpu", 1.2, False), ("p99", 3.0, False),
    ]
