"""Prometheus checks of the analysis (``analysis.metrics``), queried off the request path.

A background loop queries, once per analysis ``interval`` and only while a route
is being analysed, each of its checks: the placeholders ``{{route}}``,
``{{stable}}``, ``{{candidate}}`` (backend names) and ``{{window}}`` (``2m``) filled
in, ``GET /api/v1/query`` with the top-level ``prometheus.timeout``. The answer
must be one number (a scalar, or a vector of one sample). Anything else — no
data, several series, NaN, an error, a timeout — is kept as the reason there is
no number, logged and counted in ``router_analysis_errors_total{route,check}``;
the check then holds (never passes). The controller reads the latest readings
when it observes a route; a reading older than two intervals plus the timeout
is no reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from router.config.model import PrometheusSpec
from router.routing.snapshot import CompiledRoute
from router.telemetry.logs import get_logger
from router.telemetry.metrics import Metrics
from strategies.analysis import AnalysisSpec

__all__ = ["MetricChecks", "fill", "parse_answer", "prometheus_duration"]

LOOP_S = 0.25
Reading = float | str


def prometheus_duration(seconds: float) -> str:
    """A window as a Prometheus duration: ``2m``, ``90s``, ``1h``."""
    whole = max(round(seconds), 1)
    for unit, size in (("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def fill(query: str, values: Mapping[str, str]) -> str:
    """``query`` with each ``{{name}}`` replaced by ``values[name]``."""
    for name, value in values.items():
        query = query.replace("{{" + name + "}}", value)
    return query


def parse_answer(doc: Any) -> Reading:
    """One number from a Prometheus query answer, or why there is none."""
    if not isinstance(doc, dict):
        return "error: not a Prometheus answer"
    if doc.get("status") != "success":
        return f"error: {doc.get('errorType', 'unknown')}: {doc.get('error', '')}".rstrip(": ")
    data = doc.get("data") or {}
    kind = data.get("resultType")
    result: Any = data.get("result")
    try:
        if kind == "scalar":
            return float(result[1])
        if kind == "vector":
            if not result:
                return "no data"
            if len(result) > 1:
                return f"query returned {len(result)} series, need one number"
            return float(result[0]["value"][1])
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        return f"error: unreadable answer ({exc!r})"
    return f"query returned a {kind}, need one number"


def _analysis(route: CompiledRoute) -> AnalysisSpec | None:
    analysis = getattr(route.spec, "analysis", None)
    return analysis if isinstance(analysis, AnalysisSpec) and analysis.metrics else None


def _placeholders(route: CompiledRoute, window_s: float) -> dict[str, str]:
    """Route, window, and the stable and candidate backends (blue-green: previous and active)."""
    roles = route.strategy.backends(route.spec, route.cell.state)
    active = getattr(route.cell.state, "active", None)
    if active is not None:  # blue-green: the colour being judged against the one before
        previous = getattr(route.cell.state, "previous", None) or active
        candidate, stable = roles.get(active, ""), roles.get(previous, "")
    else:
        candidate, stable = roles.get("candidate", ""), roles.get("stable", "")
    return {"route": route.name, "stable": stable, "candidate": candidate,
            "window": prometheus_duration(window_s)}


class MetricChecks:
    """Runs the Prometheus checks of every analysed route and keeps the latest readings."""

    def __init__(
        self,
        metrics: Metrics,
        routes: Callable[[], Iterable[CompiledRoute]],
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self.metrics = metrics
        self.routes = routes
        self.leading = leading  # with replicas only the leader judges, so only it queries
        self.spec: PrometheusSpec | None = None
        self.client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        self._readings: dict[tuple[str, str], tuple[float, Reading]] = {}
        self._last_run: dict[str, float] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._log = get_logger("router.control.metric_checks")

    def configure(self, spec: PrometheusSpec | None) -> None:
        """Use the config's ``prometheus`` section (None: no checks run)."""
        self.spec = spec

    async def run(self) -> None:
        """Start due queries until cancelled."""
        while True:
            await asyncio.sleep(LOOP_S)
            try:
                self.start_due(time.time())
            except Exception as exc:  # the loop must outlive one bad route
                self._log.exception("metric_checks_error", reason=repr(exc))

    def start_due(self, now: float) -> None:
        """Query the checks of each analysed route whose interval has passed."""
        if self.spec is None or not self.leading():
            return
        for route in self.routes():
            analysis = _analysis(route)
            if analysis is None or route.name in self._running:
                continue
            if route.strategy.analysis_window(route.spec, route.cell.state) is None:
                continue  # not being judged now: no queries
            if now - self._last_run.get(route.name, 0.0) < analysis.interval:
                continue
            self._last_run[route.name] = now
            task = asyncio.create_task(self._query_route(route, analysis, self.spec, now))
            self._running[route.name] = task
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        for name, running in list(self._running.items()):
            if running is task:
                del self._running[name]

    async def _query_route(
        self, route: CompiledRoute, analysis: AnalysisSpec, spec: PrometheusSpec, now: float
    ) -> None:
        values = _placeholders(route, analysis.window_s)
        queries = [fill(check.query, values) for check in analysis.metrics]
        results = await asyncio.gather(*(self._query(spec, q) for q in queries))
        for check, query, result in zip(analysis.metrics, queries, results, strict=True):
            self._readings[(route.name, check.name)] = (now, result)
            if isinstance(result, str) or math.isnan(result):
                reason = result if isinstance(result, str) else "query returned NaN"
                self.metrics.analysis_errors.labels(route.name, check.name).inc()
                self._log.warning("analysis_check_error", route=route.name, check=check.name,
                                  reason=reason, query=query)

    async def _query(self, spec: PrometheusSpec, query: str) -> Reading:
        url = spec.url.rstrip("/") + "/api/v1/query"
        try:
            response = await self.client.get(url, params={"query": query}, timeout=spec.timeout)
        except httpx.TimeoutException:
            return f"timeout after {spec.timeout:g}s"
        except httpx.HTTPError as exc:
            return f"error: {exc!r}"
        try:
            doc = response.json()
        except ValueError:
            return f"error: HTTP {response.status_code}, not a Prometheus answer"
        return parse_answer(doc)

    def readings(self, route: CompiledRoute, now: float) -> dict[str, Reading]:
        """The fresh readings of ``route``'s checks by name (missing: none yet)."""
        analysis = _analysis(route)
        if analysis is None:
            return {}
        timeout = self.spec.timeout if self.spec is not None else 0.0
        horizon = 2 * analysis.interval + timeout
        found: dict[str, Reading] = {}
        for check in analysis.metrics:
            reading = self._readings.get((route.name, check.name))
            if reading is None:
                continue
            at, value = reading
            found[check.name] = value if now - at <= horizon else "no fresh reading"
        return found

    def forget(self, route: str) -> None:
        """Drop a removed route's readings."""
        for key in [k for k in self._readings if k[0] == route]:
            del self._readings[key]
        self._last_run.pop(route, None)

    async def aclose(self) -> None:
        """Stop running queries and close the client."""
        for task in list(self._running.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.client.aclose()
