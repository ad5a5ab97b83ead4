"""What the benchmark measures, as data: backends, scenarios, loads and the comparisons to print.

To add a scenario, append a ``Scenario`` to ``SCENARIOS`` (a router scenario
takes a ``strategy`` section and optional extra config), and, if it should be
compared with another, a ``Comparison`` to ``COMPARISONS``. A backend that
answers slowly (for a shadow) is one more ``StandIn`` with a ``delay``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "BACKENDS",
    "COMPARISONS",
    "LOADS",
    "SCENARIOS",
    "Comparison",
    "Load",
    "Scenario",
    "StandIn",
]

Target = Literal["direct", "nginx", "traefik", "router", "floor"]


@dataclass(frozen=True, slots=True)
class StandIn:
    """A model stand-in: nginx answering ``payload`` as ``content_type`` after ``delay`` s."""

    payload: str
    delay: float = 0.0
    content_type: str = "application/json"


def _v2_response(model: str, label: int) -> str:
    return (
        f'{{"model_name":"{model}","id":"bench","outputs":[{{"name":"predict","shape":[1],'
        f'"datatype":"INT64","data":[{label}]}}]}}'
    )


def _sse_response(events: int) -> str:
    chunk = '{"choices":[{"index":0,"delta":{"content":"tok"}}]}'
    return "".join(f"data: {chunk}\\n\\n" for _ in range(events)) + "data: [DONE]\\n\\n"


BACKENDS: Mapping[str, StandIn] = {
    "model-a": StandIn(_v2_response("model-a", 1)),
    "model-b": StandIn(_v2_response("model-b", 2)),
    # An LLM answering a server-sent event stream, for the streaming metrics (router-all).
    "llm-stream": StandIn(_sse_response(8), content_type="text/event-stream"),
}

#: The stable/candidate pair and the split, shared by nginx-as-proxy and the canary route.
STABLE, CANDIDATE, CANDIDATE_PERCENT = "model-a", "model-b", 10

DIRECT_ROUTE: Mapping[str, Any] = {"type": "direct", "backend": STABLE}
CANARY_ROUTE: Mapping[str, Any] = {
    "type": "canary", "stable": STABLE, "candidate": CANDIDATE, "weight": CANDIDATE_PERCENT,
}


@dataclass(frozen=True, slots=True)
class Load:
    """One wrk setting: the method (POST sends a 2 KB JSON body) and the connection count."""

    method: Literal["GET", "POST"]
    connections: int

    @property
    def key(self) -> str:
        """``GET@64`` and the like."""
        return f"{self.method}@{self.connections}"


LOADS: tuple[Load, ...] = (Load("GET", 64), Load("POST", 64), Load("GET", 16), Load("POST", 16))
AT_64 = frozenset({"GET@64", "POST@64"})


@dataclass(frozen=True, slots=True)
class Scenario:
    """One thing to load: a backend directly, nginx as the proxy, or a router configuration.

    ``loads`` restricts which of ``LOADS`` are run (all when empty); ``config``
    is merged into the router's YAML (e.g. a ``proxy`` section).
    """

    name: str
    target: Target
    description: str
    strategy: Mapping[str, Any] = field(default_factory=dict)
    workers: int = 1
    config: Mapping[str, Any] = field(default_factory=dict)
    loads: frozenset[str] = frozenset()

    def runs(self, load: Load) -> bool:
        """Whether this scenario is measured under ``load``."""
        return not self.loads or load.key in self.loads


# Replaced by the URL of the redis-server the bench starts (bench/stack.py).
BENCH_REDIS = "redis://bench-redis/0"

#: Every stage-two feature of a canary at once (``router-all``): the sequential judge with
#: its gates, feedback (default keep, 100,000), drift sampled at 0.1, a match.body route
#: read for every POST, notifications to a receiver that is down, and GETs answered by
#: an event stream (streaming metrics). The canary holds at 10 % (``hold: manual``) so
#: the judge runs for the whole soak.
ALL_FEATURES_ROUTE: Mapping[str, Any] = {
    "type": "canary", "stable": STABLE, "candidate": CANDIDATE,
    "steps": [{"weight": CANDIDATE_PERCENT, "hold": "manual"}, {"weight": 100, "hold": "1m"}],
    "analysis": {
        "interval": "5s", "window": "1m", "judge": "sequential", "confidence": 0.95,
        "max_error_rate": 0.02, "max_error_rate_increase": 0.01, "max_latency_ratio": 1.5,
        "max_ttfb_ratio": 1.5, "max_null_output_rate_increase": 0.01,
        "min_accuracy_ratio": 0.95, "min_feedback": 100,
    },
    "on_failure": "pause",
}
ALL_FEATURES: Mapping[str, Any] = {
    "routes": [
        {"name": "llm", "match": {"path_prefix": "/", "methods": ["POST"],
                                  "body": {"model": "llama-3-8b"}},
         "strategy": DIRECT_ROUTE},
        {"name": "stream", "match": {"path_prefix": "/", "methods": ["GET"]},
         "strategy": {"type": "direct", "backend": "llm-stream"}},
        {"name": "bench", "match": {"path_prefix": "/"}, "strategy": ALL_FEATURES_ROUTE,
         "feedback": {"window": "1h"},
         "drift": {"reference": "first 2000", "window": "10m", "sample": 0.1}},
    ],
    "state": {"store": "redis", "url": BENCH_REDIS},
    # Port 9 (discard) on loopback: nothing listens, every delivery is refused and retried.
    "notifications": [{"url": "http://127.0.0.1:9/hook", "format": "json", "timeout": "1s"}],
}

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("direct", "direct", f"wrk -> {STABLE} (nginx stand-in), no proxy"),
    Scenario(
        "nginx", "nginx",
        f"nginx proxy, 1 worker, keep-alive upstream, {CANDIDATE_PERCENT}% split",
    ),
    Scenario(
        "traefik", "traefik",
        f"Traefik (Go), GOMAXPROCS=1, file provider, weighted {100 - CANDIDATE_PERCENT}:"
        f"{CANDIDATE_PERCENT} service, logs at ERROR",
        loads=AT_64,
    ),
    Scenario(
        "floor", "floor",
        "the router's server + pool forwarding to the stable, no features (bench/floor.py)",
        loads=AT_64,
    ),
    Scenario("router-direct", "router", "router, direct route", strategy=DIRECT_ROUTE, loads=AT_64),
    Scenario(
        "router-canary", "router", f"router, canary at a fixed {CANDIDATE_PERCENT}%",
        strategy=CANARY_ROUTE,
    ),
    Scenario(
        "router-canary-w2", "router", "router, canary, --workers 2",
        strategy=CANARY_ROUTE, workers=2, loads=AT_64,
    ),
    Scenario(
        "router-canary-body", "router",
        "router, canary behind a route with a match.body rule that every request is read "
        "for and fails (the 2 KB POST body is parsed, then the canary route matches)",
        strategy=CANARY_ROUTE, config={"routes": [
            {"name": "llm", "match": {"path_prefix": "/", "body": {"model": "llama-3-8b"}},
             "strategy": DIRECT_ROUTE},
            {"name": "bench", "match": {"path_prefix": "/"}, "strategy": CANARY_ROUTE},
        ]}, loads=AT_64,
    ),
    Scenario(
        "router-canary-truth", "router",
        "router, canary with feedback (100,000 predictions kept) and input drift sampled at 0.1",
        strategy=CANARY_ROUTE, config={"routes": [
            {"name": "bench", "match": {"path_prefix": "/"}, "strategy": CANARY_ROUTE,
             "feedback": {"keep": 100_000, "window": "1h"},
             "drift": {"reference": "first 2000", "window": "10m", "sample": 0.1}},
        ]}, loads=AT_64,
    ),
    Scenario(
        "router-canary-file", "router", "router, canary, file state store",
        strategy=CANARY_ROUTE, config={"state": {"store": "file", "path": "state-file.json"}},
        loads=AT_64,
    ),
    Scenario(
        "router-canary-redis", "router",
        "router, canary, redis state store (a local redis-server; the router's CPU is counted)",
        strategy=CANARY_ROUTE, config={"state": {"store": "redis", "url": BENCH_REDIS}},
        loads=AT_64,
    ),
    Scenario(
        "router-all", "router",
        "router, every stage-two feature on: sequential judge and gates, feedback, drift at 0.1, "
        "a match.body rule, notifications to a dead receiver, an SSE route for GETs, Redis state",
        strategy=ALL_FEATURES_ROUTE, config=ALL_FEATURES, loads=AT_64,
    ),
    Scenario(
        "router-canary-noinspect", "router",
        "router, canary, model input/output inspection off (proxy.inspect_max_body: 0)",
        strategy=CANARY_ROUTE, config={"proxy": {"inspect_max_body": 0}}, loads=AT_64,
    ),
)


@dataclass(frozen=True, slots=True)
class Comparison:
    """``a`` against ``b`` under one load: a requests/s, CPU or p99 ratio, or a p50 difference.

    ``target`` is the bar (``a/b >= target`` for requests/s ratios, ``a/b <= target`` for
    CPU-per-request and p99 ratios, ``a - b <= target`` for p50 differences); None just
    reports.
    """

    label: str
    a: str
    b: str
    load: Load
    kind: Literal["rps_ratio", "p50_diff_ms", "cpu_ratio", "p99_ratio"] = "rps_ratio"
    target: float | None = None


def _both_methods(
    label: str, a: str, b: str, connections: int, **kw: Any
) -> tuple[Comparison, ...]:
    return tuple(
        Comparison(f"{label} {method}@{connections}", a, b, Load(method, connections), **kw)
        for method in ("GET", "POST")
    )


COMPARISONS: tuple[Comparison, ...] = (
    *_both_methods("router-canary / nginx", "router-canary", "nginx", 64, target=0.35),
    Comparison("router-canary / traefik GET@64", "router-canary", "traefik", Load("GET", 64),
               target=1.0),
    Comparison("router-canary / traefik POST@64", "router-canary", "traefik", Load("POST", 64),
               target=0.9),
    *_both_methods("CPU/req router-canary / traefik", "router-canary", "traefik", 64,
                   kind="cpu_ratio", target=1.0),
    *_both_methods("p99 router-canary / traefik", "router-canary", "traefik", 64,
                   kind="p99_ratio", target=2.0),
    *_both_methods("router-canary / direct", "router-canary", "direct", 64),
    *_both_methods("floor / nginx", "floor", "nginx", 64),
    *_both_methods("router-canary / floor", "router-canary", "floor", 64),
    *_both_methods("router-direct / direct", "router-direct", "direct", 64),
    *_both_methods("router-direct / nginx", "router-direct", "nginx", 64),
    *_both_methods("workers 2 / workers 1", "router-canary-w2", "router-canary", 64),
    *_both_methods("inspection on / off", "router-canary", "router-canary-noinspect", 64),
    *_both_methods("CPU/req match.body / none", "router-canary-body", "router-canary", 64,
                   kind="cpu_ratio", target=1.15),
    # Recording stays an O(1) in-memory update; the fleet's round trips are batched, once a second.
    *_both_methods("CPU/req redis / file store", "router-canary-redis", "router-canary-file", 64,
                   kind="cpu_ratio", target=1.05),
    # GET requests carry no model body: feedback and drift cost nothing there.
    Comparison("CPU/req feedback+drift / none POST@64", "router-canary-truth", "router-canary",
               Load("POST", 64), kind="cpu_ratio", target=1.05),
    *_both_methods(
        "p50 router-canary - nginx", "router-canary", "nginx", 16,
        kind="p50_diff_ms", target=1.0,
    ),
)
