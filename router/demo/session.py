"""A running demo: traffic, the scenario's scripted action, and the view, until told to stop.

The view polls the router's admin API (``/admin/status``, ``/admin/events``) and
combines it with what the load driver saw. The scripted action of a scenario
(v2 starts failing, or ``promote``) happens once, some seconds into the run,
and shows up among the events as a ``demo`` note.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from router.demo.llm_traffic import drive_llm
from router.demo.traffic import LoadStats, body_maker, drive
from router.demo.truth import SHIFT, LabelledBodies
from router.demo.view import Frame, Screen, event_line, notable, render, status_line
from router.telemetry.events import iso_time

__all__ = ["FAULT", "LLM_ROUTE", "ROUTE", "Session"]

ROUTE = "iris"
LLM_ROUTE = "chat"
FAULT = {"error_rate": 0.5}
SKEW = {"skew": 0.8}
EVENTS_FETCHED = 30


def _event_key(event: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(event.get(k)) for k in ("at", "event", "route", "reason"))


class Session:
    """The live part of the demo, once every process is ready."""

    def __init__(
        self, scenario: str, admin_url: str, token: str, infer_url: str, v2_port: int, *,
        headless: bool, hints: Sequence[str] = (), labels: bool = False, llm: bool = False,
    ) -> None:
        self.scenario = scenario
        self.admin_url = admin_url
        self.token = token
        self.infer_url = infer_url
        self.v2_port = v2_port
        self.headless = headless
        self.hints = [*hints, "Ctrl-C stops the demo."]
        self.stats = LoadStats()
        # Labelled traffic whose true labels go back to the router (drift-and-truth).
        self.labelled = LabelledBodies() if labels else None
        self.llm = llm  # streamed chat completions (the llm scenario) instead of iris requests
        self.route = LLM_ROUTE if llm else ROUTE
        self.notes: list[dict[str, Any]] = []
        self._printed: set[tuple[str, ...]] = set()

    def note(self, reason: str) -> None:
        """Record something the demo itself did, shown among the router's events."""
        self.notes.append({"at": iso_time(time.time()), "event": "demo", "route": self.route,
                           "reason": reason})

    async def run(
        self, stop: asyncio.Event, duration: float | None, action: str | None, action_at: float
    ) -> dict[str, Any] | None:
        """Drive traffic and show the view until ``stop`` is set or ``duration`` has passed.

        Returns the router's last ``/admin/status`` (None if it did not answer).
        """
        headers = {"authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(
            base_url=self.admin_url, headers=headers, timeout=2.0, trust_env=False
        ) as admin:
            self.stats = LoadStats()
            loop = asyncio.get_running_loop()
            load = (
                drive_llm(self.infer_url, self.stats) if self.llm else
                drive(self.infer_url, self.stats, make=body_maker(), labelled=self.labelled)
            )
            tasks = [asyncio.create_task(load)]
            tasks[0].add_done_callback(self._driver_done)
            if self.labelled is not None:
                tasks.append(asyncio.create_task(self.labelled.send(admin)))
            if action is not None:
                tasks.append(asyncio.create_task(self._act(admin, stop, action, action_at)))
            timer = loop.call_later(duration, stop.set) if duration is not None else None
            screen = None if self.headless else Screen()
            if screen is not None:
                screen.open()
            try:
                await self._watch(admin, stop, screen)
            finally:
                if timer is not None:
                    timer.cancel()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if screen is not None:
                    screen.close()
            status, _ = await self._poll(admin)
            return status

    def _driver_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.note(f"the load driver stopped: {task.exception()!r}")

    async def _act(
        self, admin: httpx.AsyncClient, stop: asyncio.Event, action: str, at: float
    ) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), at)
            return
        try:
            if action in ("fault", "skew"):
                url = f"http://127.0.0.1:{self.v2_port}/admin/fault"
                async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
                    fault = FAULT if action == "fault" else SKEW
                    (await client.post(url, json=fault)).raise_for_status()
                if action == "fault":
                    self.note(f"v2 starts failing: {FAULT['error_rate']:.0%} of its answers are "
                              "now errors (POST /admin/fault on the model server)")
                else:
                    self.note(f"v2 goes wrong quietly: {SKEW['skew']:.0%} of its predictions "
                              "are now class 0, still 200 and fast (POST /admin/fault)")
            elif action == "shift" and self.labelled is not None:
                self.labelled.shift()
                self.note(f"the inputs drift: petal width now reads {SHIFT} cm more than the "
                          "flower has (labels stay true)")
            elif action == "promote":
                response = await admin.post(f"/admin/routes/{self.route}/promote")
                detail = response.json().get("detail", "") if response.is_error else ""
                self.note(f"promote {self.route}: HTTP {response.status_code} {detail}".rstrip())
        except (httpx.HTTPError, ValueError) as exc:
            self.note(f"{action} failed: {exc}")

    async def _poll(
        self, admin: httpx.AsyncClient
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        status: dict[str, Any] | None = None
        events: list[dict[str, Any]] = []
        try:
            got = await admin.get("/admin/status")
            if got.status_code == 200:
                status = got.json()
            got = await admin.get("/admin/events", params={"limit": EVENTS_FETCHED})
            if got.status_code == 200:
                events = list(got.json().get("events") or [])
        except (httpx.HTTPError, ValueError, AttributeError):
            pass
        merged = [*events, *self.notes]
        merged.sort(key=lambda e: str(e.get("at", "")), reverse=True)
        return status, merged

    async def _watch(
        self, admin: httpx.AsyncClient, stop: asyncio.Event, screen: Screen | None,
    ) -> None:
        started = time.monotonic()
        tick = 1.0 if screen is None else 0.5
        while not stop.is_set():
            status, events = await self._poll(admin)
            now = time.monotonic()
            frame = Frame(
                scenario=self.scenario, elapsed_s=now - started, status=status, events=events,
                numbers=self.stats.numbers(now), sent_rate=self.stats.sent_rate(now),
                hints=self.hints,
            )
            if screen is not None:
                screen.draw(render(frame))
            else:
                self._print_new_events(events)
                print(status_line(frame), flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick)

    def _print_new_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        for event in reversed(notable(events)):
            key = _event_key(event)
            if key not in self._printed:
                self._printed.add(key)
                print(f"event {event_line(event)}", flush=True)
