"""The fault matrix's router: real backends, some of them misbehaving, and steady traffic.

Routes (``/r/NAME``): ``healthy`` (the traffic every row checks is undisturbed), ``fault`` and
``patient`` (the misbehaving backend, with a 1 s and a 5 s read timeout), ``refused`` (nothing
listening), ``echo`` (describes the request it got), ``flood`` (200 MB answers), ``shadowed``
and ``shadowdead`` (shadows on the misbehaving backend and on nothing), ``colours`` (blue-green
over two event streams), ``canary`` (a ramp whose state the store keeps). Client deadlines
are 1 s so that the client rows are quick.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.backends import echo_app, flood_app, sse_app
from tests.faults.misbehaving import FaultServer
from tests.rollout_support import Knobs, Load, Stack, failures, knob_app
from tests.support import ServerThread, free_port

__all__ = ["ROUTES", "running_matrix", "state_file", "undisturbed"]

ROUTES = {
    "healthy": {"type": "direct", "backend": "healthy"},
    "fault": {"type": "direct", "backend": "fault"},
    "patient": {"type": "direct", "backend": "patient"},
    "refused": {"type": "direct", "backend": "refused"},
    "echo": {"type": "direct", "backend": "echo"},
    "flood": {"type": "direct", "backend": "flood"},
    "shadowed": {"type": "shadow", "primary": "healthy", "shadows": ["fault"]},
    "shadowdead": {"type": "shadow", "primary": "healthy", "shadows": ["refused"]},
    "colours": {"type": "blue_green", "blue": "blue", "green": "green", "active": "blue"},
    # Every request to the misbehaving candidate, which stable may rescue.
    "rescued": {
        "type": "canary", "stable": "healthy", "candidate": "fault", "weight": 100,
        "fallback_to_stable": True,
    },
    "canary": {
        "type": "canary", "stable": "healthy", "candidate": "echo",
        "steps": [{"weight": 10, "hold": "1h"}, {"weight": 50, "hold": "1h"}],
    },
}


@contextlib.contextmanager
def running_matrix(directory: Path) -> Iterator[Stack]:
    """A started router with every route above, its backends, all stopped on exit."""
    apps = {
        "healthy": knob_app("healthy", Knobs()),
        "echo": echo_app(None, "echo"),
        "flood": flood_app(),
        "blue": sse_app(events=6, gap_s=0.2),
        "green": sse_app(events=6, gap_s=0.2),
    }
    with contextlib.ExitStack() as running:
        urls = {name: running.enter_context(ServerThread(app)).url for name, app in apps.items()}
        fault = running.enter_context(FaultServer())
        urls["refused"] = f"http://127.0.0.1:{free_port()}"
        stack = Stack(directory, urls, "file")
        stack.backends["fault"] = {"url": fault.url, "timeout": {"read": "1s"}}
        stack.backends["patient"] = {"url": fault.url, "timeout": {"read": "5s"}}
        stack.routes = dict(ROUTES)
        stack.state_options = {"path": str(state_file(stack))}
        stack.sections["proxy"] = {
            "header_timeout": "1s", "body_timeout": "1s", "send_timeout": "1s",
            "max_request_body": "64MiB",
        }
        stack.start()
        running.callback(stack.stop)
        yield stack


def state_file(stack: Stack) -> Path:
    """Where the matrix router keeps its state: a directory of its own, which a row removes."""
    return stack.dir / "state" / "state.json"


@contextlib.contextmanager
def undisturbed(stack: Stack) -> Iterator[Load]:
    """Steady traffic to ``/r/healthy`` during the block; every request of it must succeed."""
    with Load(stack.url("healthy"), workers=2, gap_s=0.01) as load:
        yield load
    outcomes = load.outcomes
    assert outcomes, "no traffic ran"
    assert failures(outcomes) == [], failures(outcomes)[:3]
