"""A request target's path and query, as the scope carries them (uvicorn's rules)."""

from __future__ import annotations

import urllib.parse

import httptools

__all__ = ["split_target"]


def split_target(url: bytes) -> tuple[str, bytes, bytes]:
    """``(path, raw_path, query)`` of a request target: the path %-decoded, the raw path as
    sent, the query without its ``?`` (a fragment dropped)."""
    if url[:1] == b"/" and url.find(b"?") < 0 and url.find(b"#") < 0:
        raw_path, query = url, b""  # the usual target is its own path: nothing to parse
    else:
        parsed_url = httptools.parse_url(url)
        raw_path, query = parsed_url.path, parsed_url.query or b""
    path = raw_path.decode("ascii")
    if "%" in path:
        path = urllib.parse.unquote(path)
    return path, raw_path, query
