"""The floor under the router: its server and keep-alive pool forwarding, and nothing else.

``python bench/floor.py --port P --backend http://127.0.0.1:B`` serves a raw ASGI app
through the router's own uvicorn setup (``router.server.listener.build_uvicorn_config``: the
hardened httptools protocol, the one-write response cycle, uvloop) that forwards each
request to one backend through ``router.upstream.UpstreamPool``. No routing, strategy,
headers policy, metrics, analysis, inspection or log: what that costs is the difference
between this scenario and ``router-canary`` in ``make bench``, and what this one reaches
is the most the router could reach on this runtime and machine with every feature free.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn

from router.proxy.headers import HOP_BY_HOP
from router.server.listener import build_uvicorn_config
from router.upstream import UpstreamPool

__all__ = ["floor_app", "main"]

# The pool sets Host and the framing of what it sends; the server frames its answer from
# the Content-Length it is given (or chunks it), so only hop-by-hop headers go on the way back.
_REQUEST_DROP = HOP_BY_HOP | {b"host", b"content-length"}


def floor_app(backend: str) -> Any:
    """A raw ASGI app forwarding every request to ``backend`` (body read whole)."""
    pool: UpstreamPool | None = None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal pool
        if scope["type"] != "http":
            return
        if pool is None:
            pool = UpstreamPool(backend, max_connections=256)
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        query = scope["query_string"]
        target = scope["raw_path"] + (b"?" + query if query else b"")
        headers = [(k, v) for k, v in scope["headers"] if k not in _REQUEST_DROP]
        response = await pool.request(
            scope["method"].encode(), target, headers, body if body else None
        )
        try:
            await send({
                "type": "http.response.start", "status": response.status,
                "headers": [(k.lower(), v) for k, v in response.headers
                            if k.lower() not in HOP_BY_HOP],
            })
            async for chunk in response:
                await send({"type": "http.response.body", "body": chunk,
                            "more_body": not response.finished})
                if response.finished:
                    break
        finally:
            await response.aclose()

    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the floor proxy on 127.0.0.1 until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", required=True, help="http://host:port")
    args = parser.parse_args(argv)
    config = build_uvicorn_config(
        floor_app(args.backend), host="127.0.0.1", port=args.port, lifespan="off"
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
