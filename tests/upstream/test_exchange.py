"""One request/response exchange: framing of both bodies, heads without bodies, 1xx, Host."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from router.upstream import UpstreamPool
from router.upstream.connection import build_request_head
from tests.backends import RawServer, answer_each, described, read_head
from tests.support import ServerThread


def _header(description: dict[str, object], name: str) -> list[str]:
    headers = description["headers"]
    assert isinstance(headers, list)
    return [value for key, value in headers if key == name]


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.mark.parametrize(
    ("body", "content_length", "framing", "length"),
    [
        (None, None, None, 0),
        (b"hello", None, ("content-length", "5"), 5),
        (b"", None, ("content-length", "0"), 0),
        ("iterator", 11, ("content-length", "11"), 11),
        ("iterator", None, ("transfer-encoding", "chunked"), 11),
    ],
    ids=["no-body", "bytes", "empty-bytes", "iterator-with-length", "iterator-chunked"],
)
async def test_request_body_framing(
    pool: UpstreamPool,
    body: bytes | str | None,
    content_length: int | None,
    framing: tuple[str, str] | None,
    length: int,
) -> None:
    sent = _chunks(b"hello", b"", b" world") if body == "iterator" else body
    assert not isinstance(sent, str)
    response = await pool.request(b"POST", b"/echo", [], sent, content_length)
    seen = described(await response.read())
    assert seen["body_length"] == length
    framing_headers = {
        k: v for k, v in seen["headers"] if k in ("content-length", "transfer-encoding")
    }
    assert framing_headers == (dict([framing]) if framing else {})


async def test_target_is_raw_and_prefixed_by_the_base_path(backend: ServerThread) -> None:
    pool = UpstreamPool(backend.url + "/base/")
    try:
        response = await pool.request(b"GET", b"/a%2Fb/../c?q=%20x&r", [])
        seen = described(await response.read())
    finally:
        await pool.aclose()
    assert seen["raw_path"] == "/base/a%2Fb/../c"
    assert seen["query"] == "q=%20x&r"


async def test_host_defaults_to_the_backend_and_a_given_one_is_kept(
    pool: UpstreamPool, backend: ServerThread
) -> None:
    default = described(await (await pool.request(b"GET", b"/echo", [])).read())
    given = described(
        await (await pool.request(b"GET", b"/echo", [(b"Host", b"api.example")])).read()
    )
    assert _header(default, "host") == [f"127.0.0.1:{backend.port}"]
    assert _header(given, "host") == ["api.example"]


async def test_response_head_keeps_original_case_and_order(pool: UpstreamPool) -> None:
    async with await pool.request(b"GET", b"/echo", [(b"X-Custom", b"1")]) as response:
        assert response.status == 200
        assert response.reason == b"OK"
        names = [name for name, _ in response.headers]
        assert b"content-type" in names
        seen = described(await response.read())["headers"]
        assert seen[0][0] == "host"
        assert seen[1] == ["x-custom", "1"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [(b"HEAD", b"/echo", 200), (b"GET", b"/status/204", 204), (b"GET", b"/status/304", 304)],
    ids=["head", "204", "304"],
)
async def test_responses_without_body_end_at_the_head_and_keep_the_connection(
    pool: UpstreamPool, method: bytes, path: bytes, status: int
) -> None:
    response = await pool.request(method, path, [])
    assert response.status == status
    assert await response.read() == b""
    assert (pool.in_use, pool.idle) == (0, 1)
    after = described(await (await pool.request(b"GET", b"/echo", [])).read())
    assert after["method"] == "GET"
    assert pool.idle == 1


async def test_head_response_with_content_length_does_not_swallow_the_next_response() -> None:
    head_reply = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    get_reply = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_head(reader)
            writer.write(head_reply if head.startswith(b"HEAD") else get_reply)

    async with RawServer(handler) as server:
        pool = UpstreamPool(server.url)
        head = await pool.request(b"HEAD", b"/", [])
        assert (head.status, await head.read()) == (200, b"")
        get = await pool.request(b"GET", b"/", [])
        assert await get.read() == b"body"
        await pool.aclose()
        assert server.connections == 1


async def test_interim_1xx_responses_are_skipped() -> None:
    reply = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Final: yes\r\n\r\nok"
    )
    async with RawServer(answer_each(reply)) as server:
        pool = UpstreamPool(server.url)
        for _ in range(2):
            response = await pool.request(b"GET", b"/", [])
            assert (response.status, response.reason) == (201, b"Created")
            assert response.headers == [(b"Content-Length", b"2"), (b"X-Final", b"yes")]
            assert await response.read() == b"ok"
        await pool.aclose()
        assert server.connections == 1


@pytest.mark.parametrize(
    ("reply", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nTrailer: x\r\n\r\n",
            b"hello",
        ),
    ],
    ids=["content-length", "chunked-with-extension-and-trailer"],
)
async def test_response_body_framings_keep_the_connection(reply: bytes, body: bytes) -> None:
    async with RawServer(answer_each(reply)) as server:
        pool = UpstreamPool(server.url)
        for _ in range(3):
            assert await (await pool.request(b"GET", b"/", [])).read() == body
        await pool.aclose()
        assert server.connections == 1


@pytest.mark.parametrize(
    "status_line",
    [b"HTTP/1.0 200 OK", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity"],
    ids=["http10-no-length", "http11-non-chunked-coding"],
)
async def test_body_read_until_close(status_line: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(status_line + b"\r\nContent-Type: text/plain\r\n\r\npart one, ")
        await writer.drain()
        writer.write(b"part two")

    async with RawServer(handler) as server:
        pool = UpstreamPool(server.url)
        response = await pool.request(b"GET", b"/", [])
        assert await response.read() == b"part one, part two"
        assert (pool.in_use, pool.idle) == (0, 0)
        await pool.aclose()


@pytest.mark.parametrize(
    ("headers", "target"),
    [([(b"x-evil", b"a\r\nInjected: 1")], b"/"), ([], b"/ HTTP/1.1\r\nX: y")],
    ids=["header-value", "target"],
)
def test_request_head_refuses_cr_lf_injection(
    headers: list[tuple[bytes, bytes]], target: bytes
) -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        build_request_head(b"GET", target, headers, b"host: h", None)


async def test_no_cookies_no_redirects_no_proxy_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    reply = (
        b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nSet-Cookie: session=alice\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            heads.append(await read_head(reader))
            writer.write(reply)

    async with RawServer(handler) as server:
        pool = UpstreamPool(server.url)
        for _ in range(2):
            response = await pool.request(b"GET", b"/", [])
            assert (response.status, await response.read()) == (302, b"")
        await pool.aclose()
    assert len(heads) == 2
    assert all(b"cookie" not in head.lower() and b"/elsewhere" not in head for head in heads)


async def test_whole_gives_a_complete_body_at_once_and_nothing_while_it_is_arriving() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody")
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nhalf")
        await release.wait()
        writer.write(b"more")
        await reader.read()

    async with RawServer(handler) as server:
        pool = UpstreamPool(server.url)
        complete = await pool.request(b"GET", b"/", [])
        deadline = asyncio.get_running_loop().time() + 10
        while (body := complete.whole()) is None:  # the body may follow the head in a later read
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        assert body == b"body"
        assert (pool.in_use, pool.idle) == (0, 1)  # taken whole: the connection is back
        partial = await pool.request(b"GET", b"/", [])
        assert partial.whole() is None  # 4 of 8 bytes: it streams
        release.set()
        assert await partial.read() == b"halfmore"
        await pool.aclose()
