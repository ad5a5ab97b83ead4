"""What the state store costs a router with many routes: start, and reloads, in one process.

For each size, a config of N canary routes (the route sweep's one-line routes) on the chosen
store: the wall time of ``RouterApp.start`` (every route's state created and written), of a
reload with every route's weight edited (states unchanged: nothing written), and of a reload
that changes every route's state (fixed weight -> steps: N writes). No traffic: this measures
the control plane, which the route sweep (``route_sweep.py``, memory store) leaves out.

    python bench/store_sweep.py --store file --sizes 1000 10000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from router.app import RouterApp  # noqa: E402
from router.telemetry.logs import configure_logging  # noqa: E402

BACKENDS = "backends:\n  a: {url: 'http://127.0.0.1:9'}\n  b: {url: 'http://127.0.0.1:10'}\n"


def render(count: int, state: str, strategy: str) -> str:
    """A config of ``count`` canary routes ``/m0/`` ... on one line each."""
    lines = [f"state: {state}", BACKENDS, "routes:"]
    lines += [f"- {{name: m{n},match: {{path_prefix: /m{n}/}},"
              f"strategy: {{type: canary,stable: a,candidate: b,{strategy}}}}}"
              for n in range(count)]
    return "\n".join(lines) + "\n"


async def measure(count: int, store: str, workdir: Path) -> tuple[float, float, float]:
    """(start, reload with no state change, reload changing every state) in seconds."""
    # Not beside the config: each write of it would wake the config watcher.
    state_file = workdir / "state" / f"state-{count}.json"
    state = f"{{store: file, path: '{state_file}'}}" if store == "file" else "{store: memory}"
    path = workdir / f"routes-{count}.yaml"
    path.write_text(render(count, state, "weight: 10"))
    app = RouterApp(path, access_log=False)
    started = time.perf_counter()
    await app.start()
    try:
        start_s = time.perf_counter() - started
        await asyncio.sleep(0)  # let the watcher task begin, so that it can be stopped
        app.reloader.stop()  # only the timed reloads load the edited file
        timings = [start_s]
        for strategy in ("weight: 20", "steps: [{weight: 10, hold: 1h}]"):
            path.write_text(render(count, state, strategy))
            began = time.perf_counter()
            result = await app.reload("api")
            timings.append(time.perf_counter() - began)
            assert result.ok and result.changed, result.errors
        return timings[0], timings[1], timings[2]
    finally:
        await app.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Print one line per size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("file", "memory"), default="file")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    args = parser.parse_args(argv)
    os.environ.setdefault("ROUTER_MAX_CONFIG_BYTES", "4MiB")  # 10,000 routes with steps
    configure_logging("json", "warning")  # a line per route would be much of what is timed
    print(f"  {'routes':>7} {'start':>8} {'reload, no state change':>24} "
          f"{'reload, every state changed':>28}   ({args.store} store)")
    with tempfile.TemporaryDirectory(prefix="store-sweep-") as tmp:
        for count in args.sizes:
            start_s, same_s, changed_s = asyncio.run(measure(count, args.store, Path(tmp)))
            print(f"  {count:>7,} {start_s:>7.2f}s {same_s:>23.2f}s {changed_s:>27.2f}s",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
