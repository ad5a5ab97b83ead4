"""wrk as the load generator: one Lua script per method, results read back as JSON.

The scripts only set ``wrk.method``/``wrk.body``/``wrk.headers`` at the top level,
so wrk builds the request once and stays on its fast path; ``done()`` prints the
counts and latency percentiles as one JSON line prefixed with ``WRK_JSON``.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from procs import tool_path

__all__ = ["WrkResult", "post_body", "request_id", "run_wrk", "write_script", "wrk_version"]

_MARK = "WRK_JSON "

_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\\n',
    "WRK_JSON ", summary.requests, summary.duration, summary.bytes, e.connect, e.read,
    e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk measurement: throughput, latency percentiles (ms) and error counts."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx: int
    p999_ms: float = 0.0
    max_ms: float = 0.0

    @property
    def rps(self) -> float:
        """Requests per second over the measurement."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        """Socket errors (connect, read, write, timeout) plus non-2xx/3xx responses."""
        return self.socket_errors + self.non_2xx


def post_body(size: int = 2048) -> bytes:
    """An Open Inference Protocol V2 request of exactly ``size`` bytes of JSON."""

    def render(values: list[str]) -> str:
        data = ",".join(values)
        return (
            f'{{"inputs":[{{"name":"input-0","shape":[1,{len(values)}],'
            f'"datatype":"FP32","data":[{data}]}}]}}'
        )

    values: list[str] = []
    while len(render([*values, "0.0000"])) <= size:
        values.append(f"{len(values) % 97 / 10:.4f}")
    text = render(values)
    # Whitespace before the closing brace keeps the body valid JSON at the exact size.
    return (text[:-1] + " " * (size - len(text)) + text[-1]).encode()


#: Each request an X-Request-Id of 32 hex digits: the run's 8, wrk's thread's 8, a counter's 16.
_IDS = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local n = 0
request = function()
  n = n + 1
  wrk.headers["X-Request-Id"] = string.format("%s%08x%016x", RUN, tid, n)
  return wrk.format()
end
"""


def request_id(run: int, thread: int, n: int) -> str:
    """The X-Request-Id of the ``n``-th request (from 1) of wrk thread ``thread`` (from 1)."""
    return f"{run:08x}{thread:08x}{n:016x}"


def write_script(directory: Path, method: str, body: bytes = b"", run: int | None = None) -> Path:
    """A wrk Lua script for ``method`` (with ``body`` as JSON when given).

    With ``run``, every request carries its own ``request_id(run, thread, n)`` (off wrk's
    fast path: the request is formatted per request).
    """
    lines = [f'wrk.method = "{method}"']
    if body:
        escaped = body.decode().replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'wrk.body = "{escaped}"')
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    name = f"wrk-{method.lower()}"
    if run is not None:
        lines.append(f'RUN = "{run:08x}"' + _IDS)
        name += f"-{run}"
    path = directory / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n" + _DONE)
    return path


def run_wrk(
    url: str, script: Path, connections: int, duration: float, threads: int = 2
) -> WrkResult:
    """Run wrk against ``url`` and parse its ``done()`` line; raise RuntimeError on failure."""
    exe = tool_path("wrk") or "wrk"
    cmd = [
        exe, f"-t{min(threads, connections)}", f"-c{connections}", f"-d{max(1, round(duration))}s",
        "--timeout", "10s", "-s", str(script), url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith(_MARK)), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout}")
    data = json.loads(line.removeprefix(_MARK))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        non_2xx=data["status"],
        p999_ms=data["p999_us"] / 1000,
        max_ms=data["max_us"] / 1000,
    )


def wrk_version() -> str:
    """``wrk -v`` up to the first bracket, e.g. ``wrk debian/4.1.0-3+b2``."""
    exe = tool_path("wrk") or "wrk"
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).partition("[")[0].strip()
