"""Pure header rules of the proxy (docs/http.md): hop-by-hop, X-Forwarded-*, x-router-*.

Headers are ASGI-style lists of ``(name, value)`` byte pairs with lower-case names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = [
    "HOP_BY_HOP",
    "ROUTER_REQUEST_HEADERS",
    "build_upstream_headers",
    "client_address",
    "connection_tokens",
    "filter_response_headers",
]

# RFC 9110 §7.6.1 plus the legacy names proxies strip (Keep-Alive, Proxy-Connection).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Request headers the router sets itself: a client's copies are dropped, never forwarded.
ROUTER_REQUEST_HEADERS = frozenset(
    {
        b"host",
        b"content-length",
        b"expect",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-request-id",
        b"x-router-shadow",
    }
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names listed in ``Connection`` (they are hop-by-hop for this message)."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)


def build_upstream_headers(
    headers: list[tuple[bytes, bytes]],
    *,
    host: bytes,
    client_ip: bytes,
    scheme: bytes,
    request_id: bytes,
    has_connection_header: bool,
) -> list[tuple[bytes, bytes]]:
    """The headers to send upstream.

    Drops hop-by-hop headers (and any named in ``Connection``) and the ones the
    router sets; appends the client to ``X-Forwarded-For``; sets
    ``X-Forwarded-Proto``/``-Host`` and ``X-Request-Id``. ``host`` is the Host to
    send (the backend's, or the client's with ``preserve_host``).
    """
    extra = connection_tokens(headers) if has_connection_header else frozenset()
    out: list[tuple[bytes, bytes]] = [(b"host", host)]
    forwarded_for: bytes | None = None
    client_host = b""
    for name, value in headers:
        if name in HOP_BY_HOP or name in extra:
            continue
        if name in ROUTER_REQUEST_HEADERS:
            if name == b"x-forwarded-for":
                forwarded_for = value if forwarded_for is None else forwarded_for + b", " + value
            elif name == b"host" and not client_host:
                client_host = value  # the first, as preserve_host sends
            continue
        out.append((name, value))
    out.append(
        (b"x-forwarded-for", forwarded_for + b", " + client_ip if forwarded_for else client_ip)
    )
    out.append((b"x-forwarded-proto", scheme))
    if client_host:
        out.append((b"x-forwarded-host", client_host))
    out.append((b"x-request-id", request_id))
    return out


def filter_response_headers(
    headers: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Response headers for the client, and the answer's content type (``b""`` if none).

    Hop-by-hop headers are removed (names lower-cased) and ``extra`` added.
    ``Content-Length`` is kept so the server frames the body the same way; a
    chunked upstream body is re-framed by the server. The content type is found
    in the same pass, so telling a stream from a plain answer costs no second scan.
    """
    out: list[tuple[bytes, bytes]] = []
    named: set[bytes] | None = None
    content_type = b""
    for name, value in headers:
        lowered = name.lower()
        if lowered in _NOTED:  # one lookup for the common header; the rare ones are told apart
            if lowered == b"content-type":
                if not content_type:
                    content_type = value
            else:
                if lowered == b"connection":
                    tokens = {t.strip().lower() for t in value.split(b",")} - _CONNECTION_OPTIONS
                    if tokens:
                        named = tokens if named is None else named | tokens
                continue
        out.append((lowered, value))
    if named:
        out = [(name, value) for name, value in out if name not in named]
    out += extra
    return out, content_type


_NOTED = HOP_BY_HOP | {b"content-type"}
_CONNECTION_OPTIONS = frozenset({b"keep-alive", b"close", b""})


def client_address(
    peer: str, headers: list[tuple[bytes, bytes]], trusted: tuple[IPNetwork, ...]
) -> str:
    """The router's view of the client: the peer, unless it is a trusted proxy.

    With a trusted peer, walk ``X-Forwarded-For`` from the right and return the
    first address that is not itself trusted (the usual right-most-untrusted rule).
    """
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    chain: list[str] = []
    for name, value in headers:
        if name == b"x-forwarded-for":
            chain.extend(p.strip() for p in value.decode("latin-1").split(","))
    for hop in reversed(chain):
        if not hop:
            continue
        if not _is_trusted(hop, trusted):
            return hop
    return peer


def _is_trusted(address: str, trusted: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
