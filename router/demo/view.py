"""The demo's terminal view: a frame redrawn in place with ANSI codes, or one line a second.

Everything here is a pure function of a ``Frame`` (what the router's admin API
and the load driver said), except ``Screen``, which writes to the terminal. The
router's status may lack keys (a strategy without analysis, shadow counters not
wired yet): every lookup tolerates that.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from router.demo.traffic import UNKNOWN, VariantNumbers
from strategies.feedback import accuracy_line

__all__ = ["Frame", "Screen", "event_line", "notable", "render", "status_line", "weight_bar"]

BAR_WIDTH = 40
_FILLS = ("█", "▒", "░", "▓")
_PHASE_COLOURS = {
    "promoted": "32", "steady": "32", "mirroring": "32", "progressing": "36",
    "waiting": "33", "paused": "33", "switching": "36", "rolled_back": "31",
}


@dataclass(frozen=True, slots=True)
class Frame:
    """What one redraw shows."""

    scenario: str
    elapsed_s: float
    status: Mapping[str, Any] | None
    events: Sequence[Mapping[str, Any]]
    numbers: Sequence[VariantNumbers]
    sent_rate: float
    hints: Sequence[str] = field(default_factory=tuple)


def _paint(text: str, code: str | None, colour: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code else text


def weight_bar(weights: Mapping[str, float], width: int = BAR_WIDTH) -> str:
    """``[████▒▒▒▒]``: one fill per variant, in order, proportional to its weight."""
    total = sum(max(0.0, float(w)) for w in weights.values()) or 1.0
    cells, used = [], 0.0
    for index, weight in enumerate(weights.values()):
        start = round(used / total * width)
        used += max(0.0, float(weight))
        cells.append(_FILLS[index % len(_FILLS)] * (round(used / total * width) - start))
    return "[" + "".join(cells).ljust(width, " ") + "]"


def notable(events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The events worth showing: decisions, and analysis checks only when they fail."""
    return [e for e in events if e.get("event") != "analysis" or e.get("outcome") == "fail"]


def event_line(event: Mapping[str, Any]) -> str:
    """``14:00:21  iris  rollback  error_rate 0.480 > 0.05 (48 of 100 requests)``."""
    at = str(event.get("at", ""))
    clock = at[11:19] if len(at) >= 19 else at
    parts = [clock, str(event.get("route") or "-"), str(event.get("event", "?"))]
    reason = event.get("reason")
    if reason:
        parts.append(str(reason))
    return "  ".join(parts)


def _pct(value: float | None) -> str:
    return "    -" if value is None else f"{value * 100:4.1f}%"


def _ms(value: float | None) -> str:
    return "    -" if value is None else f"{value:4.0f}ms"


def _mapping(route: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = route.get(key)
    return value if isinstance(value, Mapping) else {}


def _route_numbers(frame: Frame, route: str) -> dict[str, VariantNumbers]:
    return {n.variant: n for n in frame.numbers if n.route == route}


def _headline(name: str, route: Mapping[str, Any], colour: bool) -> str:
    phase = str(route.get("phase", "?"))
    painted = _paint(phase, _PHASE_COLOURS.get(phase), colour)
    parts = [name, str(route.get("strategy", "?")), painted]
    ramping = phase in ("progressing", "waiting", "paused")
    if ramping and isinstance(route.get("step"), int) and isinstance(route.get("steps"), int):
        parts.append(f"step {route['step'] + 1}/{route['steps']}")
    if route.get("active"):
        parts.append(f"active {route['active']}")
    if route.get("pending_switch"):
        parts.append(f"switching to {route['pending_switch']}")
    return " · ".join(parts)


def _details(route: Mapping[str, Any]) -> list[str]:
    lines = []
    analysis = route.get("analysis")
    last = analysis.get("last") if isinstance(analysis, Mapping) else None
    if isinstance(last, Mapping):
        ok = last.get("ok")
        outcome = last.get("outcome") or ("pass" if ok else "-" if ok is None else "fail")
        reasons = "; ".join(str(r) for r in last.get("reasons") or [])
        lines.append(f"analysis: {outcome}" + (f" · {reasons}" if reasons else ""))
    if route.get("refused"):
        lines.append(f"switch refused: {route['refused']}")
    shadow = route.get("shadow")
    if isinstance(shadow, Mapping):
        compared, matched = shadow.get("compared") or 0, shadow.get("matched") or 0
        agreement = f"{matched / compared * 100:.1f}%" if compared else "-"
        lines.append(
            f"shadow: {shadow.get('mirrored', 0)} mirrored · agreement {agreement} "
            f"({matched}/{compared} compared) · {shadow.get('dropped', 0)} dropped"
        )
    accuracy = _accuracy(route)
    if accuracy:
        lines.append(f"accuracy on true labels: {accuracy}")
    if route.get("message"):
        lines.append(str(route["message"]))
    return lines


def _accuracy(route: Mapping[str, Any]) -> str:
    """The route's accuracy per version on true labels, or ''."""
    return accuracy_line(route.get("feedback"))


def _route_block(frame: Frame, name: str, route: Mapping[str, Any], colour: bool) -> list[str]:
    weights, backends = _mapping(route, "weights"), _mapping(route, "backends")
    seen = _route_numbers(frame, name)
    lines = [_headline(name, route, colour)]
    if weights:
        shares = " · ".join(f"{v} {float(w):g}%" for v, w in weights.items())
        lines.append(f"  {weight_bar(weights)} {shares}")
    for variant in [*weights, *(v for v in seen if v not in weights)]:
        numbers = seen.get(variant)
        backend = str(backends.get(variant) or (numbers.backend if numbers else "-"))
        rate = f"{numbers.rate:6.1f} req/s" if numbers else "     - req/s"
        error_rate = numbers.error_rate if numbers else None
        p99 = numbers.p99_ms if numbers else None
        line = f"  {variant:<10} {backend:<10} {rate}   errors {_pct(error_rate)}   p99 {_ms(p99)}"
        if numbers is not None and numbers.ttft_p99_ms is not None:
            line += f"   first token p99 {_ms(numbers.ttft_p99_ms)}"
        lines.append(line)
    lines.extend(f"  {line}" for line in _details(route))
    return lines


def _routes(frame: Frame) -> list[tuple[str, Mapping[str, Any]]]:
    routes = frame.status.get("routes") if frame.status else None
    if not isinstance(routes, Mapping):
        return []
    active = {n.route for n in frame.numbers}
    return [
        (name, route) for name, route in routes.items()
        if isinstance(route, Mapping) and (route.get("strategy") != "direct" or name in active)
    ]


def render(frame: Frame, *, colour: bool = True) -> list[str]:
    """The live view's lines."""
    title = f"traffic-router demo · scenario {frame.scenario} · {frame.elapsed_s:5.0f}s"
    lines = [_paint(title, "1", colour), f"client: sending {frame.sent_rate:.0f} req/s", ""]
    if frame.status is None:
        lines.append(_paint("router: not answering", "31", colour))
    for name, route in _routes(frame):
        lines.extend([*_route_block(frame, name, route, colour), ""])
    lost = _route_numbers(frame, UNKNOWN).get(UNKNOWN)
    if lost:
        lines.extend([f"no answer from the router: {lost.rate:.1f} req/s", ""])
    lines.append(_paint("latest events", "1", colour))
    shown = [event_line(e) for e in notable(frame.events)[:5]]
    lines.extend(f"  {line}" for line in shown or ["(none yet)"])
    lines.append("")
    lines.extend(frame.hints)
    return lines


def status_line(frame: Frame) -> str:
    """One compact line for ``--headless``."""
    parts = [f"[{frame.elapsed_s:5.1f}s] sent {frame.sent_rate:.0f}/s"]
    if frame.status is None:
        parts.append("router not answering")
    for name, route in _routes(frame):
        weights = _mapping(route, "weights")
        phase = route.get("phase", "?")
        head = f"{name} {phase}"
        if phase in ("progressing", "waiting", "paused") and isinstance(route.get("step"), int):
            head += f" step {route['step'] + 1}/{route.get('steps', '?')}"
        head += " " + " ".join(f"{v}={float(w):g}" for v, w in weights.items())
        seen = _route_numbers(frame, name)
        per = [
            f"{v} {n.rate:.0f}/s err {_pct(n.error_rate).strip()} p99 {_ms(n.p99_ms).strip()}"
            + (f" ttft p99 {_ms(n.ttft_p99_ms).strip()}" if n.ttft_p99_ms is not None else "")
            for v, n in seen.items()
        ]
        shadow = route.get("shadow")
        if isinstance(shadow, Mapping) and shadow.get("compared"):
            per.append(f"agreement {shadow.get('matched', 0) / shadow['compared'] * 100:.1f}%")
        if accuracy := _accuracy(route):
            per.append(f"accuracy {accuracy}")
        parts.append(head + (": " + ", ".join(per) if per else ""))
    return " | ".join(parts)


class Screen:
    """Redraws a frame in place on a terminal (alternate screen, hidden cursor)."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.width = shutil.get_terminal_size().columns

    def open(self) -> None:
        """Switch to the alternate screen and hide the cursor."""
        self.out.write("\x1b[?1049h\x1b[?25l\x1b[2J")
        self.out.flush()

    def draw(self, lines: Sequence[str]) -> None:
        """Overwrite the screen with ``lines``, clearing what is left of the last frame."""
        # A wrapped line would push the frame down and leave old lines behind: cut it.
        cut = [line if "\x1b" in line else line[: self.width] for line in lines]
        body = "".join(f"{line}\x1b[K\n" for line in cut)
        self.out.write(f"\x1b[H{body}\x1b[J")
        self.out.flush()

    def close(self) -> None:
        """Show the cursor and go back to the normal screen."""
        self.out.write("\x1b[?25h\x1b[?1049l")
        self.out.flush()
