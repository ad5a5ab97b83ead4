"""The forwarding hot path's HTTP/1.1 keep-alive client: one :class:`UpstreamPool` per backend.

Built on ``asyncio.Protocol`` and httptools' response parser instead of httpx,
whose pool costs 10-25x more CPU per request and can get stuck after bursts of
cancellations (httpcore #1093); see docs/architecture.md.

```python
pool = UpstreamPool("http://127.0.0.1:8001", max_connections=100)
async with await pool.request(b"GET", b"/v1/models?x=1", [(b"host", b"api")]) as resp:
    async for chunk in resp:
        ...
await pool.aclose()
```
"""

from router.upstream.connection import UpstreamResponse
from router.upstream.errors import (
    PoolTimeoutError,
    UpstreamConnectError,
    UpstreamConnectTimeout,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamReadTimeout,
    UpstreamResetError,
    safe_to_repeat,
)
from router.upstream.pool import UpstreamPool

__all__ = [
    "PoolTimeoutError",
    "UpstreamConnectError",
    "UpstreamConnectTimeout",
    "UpstreamError",
    "UpstreamPool",
    "UpstreamProtocolError",
    "UpstreamReadTimeout",
    "UpstreamResetError",
    "UpstreamResponse",
    "safe_to_repeat",
]
