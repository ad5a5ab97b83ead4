"""Small parts of an exchange: the mirror's copy of a body, a variant's header, failure answers."""

from __future__ import annotations

from router.upstream import PoolTimeoutError, UpstreamError, UpstreamReadTimeout

__all__ = ["Capture", "upstream_failure", "variant_header"]


class Capture:
    """A body kept while it streams past, up to ``cap`` bytes (beyond that, nothing)."""

    __slots__ = ("cap", "over", "parts", "size")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[bytes] = []
        self.size = 0
        self.over = False

    def add(self, chunk: bytes) -> None:
        """Keep ``chunk``, or give up on the copy once it passes the cap."""
        if self.over:
            return
        self.size += len(chunk)
        if self.size > self.cap:
            self.over = True
            self.parts.clear()
        else:
            self.parts.append(chunk)

    def body(self) -> bytes | None:
        """The whole body, or None when it was larger than the cap."""
        return None if self.over else b"".join(self.parts)


_variant_headers: dict[str, tuple[bytes, bytes]] = {}


def variant_header(variant: str) -> tuple[bytes, bytes]:
    """``x-router-variant`` for ``variant``; strategies name a handful, encoded once each."""
    header = _variant_headers.get(variant)
    if header is None:
        header = _variant_headers[variant] = (b"x-router-variant", variant.encode())
    return header


def upstream_failure(exc: UpstreamError, backend: str) -> tuple[int, str, str]:
    """The (status, code, detail) of the answer to a failure before the upstream answered."""
    if isinstance(exc, PoolTimeoutError):
        return 503, "no_healthy_backend", f"all connections to {backend} are busy"
    if exc.kind == "timeout" or isinstance(exc, UpstreamReadTimeout):
        return 504, "upstream_timeout", f"{backend} timed out"
    return 502, "upstream_unavailable", f"{backend}: {exc.kind} error"
