"""Where the router's CPU goes: py-spy samples it under load (flamegraph SVG + a top list)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

__all__ = ["ensure_py_spy", "record", "top_frames"]


def ensure_py_spy() -> str | None:
    """The py-spy next to this interpreter, installed with pip when missing; None if that fails."""
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        print("installing py-spy into the virtualenv ...")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"], check=False)
    return str(exe) if exe.exists() else None


def record(
    py_spy: str, pid: int, output: Path, fmt: str, seconds: float, load: Callable[[], object]
) -> bool:
    """Sample ``pid`` (and its workers) for ``seconds`` while ``load()`` runs; True on success."""
    cmd = [
        py_spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
        "--rate", "250", "--duration", str(max(1, round(seconds))), "--format", fmt,
        "--output", str(output),
    ]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        load()
        _, err = spy.communicate(timeout=seconds + 30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    if spy.returncode != 0 or not output.exists():
        print(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace').strip()}")
        return False
    return True


def _function(frame: str) -> str:
    # "handle (router/proxy/entry.py:120)" -> "handle (router/proxy/entry.py)":
    # the lines of one function merge.
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def top_frames(raw: Path, limit: int = 15) -> str:
    """Top functions by self and by inclusive samples from py-spy's collapsed (raw) output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "  (no samples)"
    lines = [f"  {total} samples; top by self time:"]
    lines += [f"    {n / total:6.1%}  {f}" for f, n in own.most_common(limit)]
    lines.append("  top by inclusive time:")
    lines += [f"    {n / total:6.1%}  {f}" for f, n in inclusive.most_common(limit)]
    return "\n".join(lines)
