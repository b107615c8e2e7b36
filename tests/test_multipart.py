"""A multipart/form-data body read part by part as it comes (``request.multipart()``).

The parser is the one ``request.files`` uses, fed the whole body at once; here
it is fed in pieces of any size, and must read the same form (or refuse it
with the same reason) however the body is cut, holding no more than a
delimiter's length between pieces. Then through a real server: an upload
larger than what a route reads whole goes through in pieces, a part is in
the handler before the client sent the rest, and bad forms are 400s.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsserver import BadRequest, FormPart, Request, Router
from wsserver.app.forms import PART_END, MultipartParser, PartHead, encode_form
from wsserver.app.multipart import FormParts
from wsserver.response import json

from .conftest import StartServer

MULTIPART = "multipart/form-data; boundary=XyZ"


def field(name: str, value: bytes, extra: bytes = b"") -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\n'.encode() + extra + b"\r\n" + value


def multipart(*parts: bytes) -> bytes:
    return b"".join(b"--XyZ\r\n" + part + b"\r\n" for part in parts) + b"--XyZ--\r\n"


def read(body: bytes, cuts: list[int], max_parts: int = 5, boundary: str = "XyZ") -> Any:
    """The parts (head, content) the parser reads from ``body`` cut at ``cuts``,
    or the reason it refuses it."""
    parser = MultipartParser(boundary, max_parts)
    parts: list[tuple[PartHead, bytes]] = []
    head: PartHead | None = None
    content = b""
    try:
        start = 0
        for cut in [*sorted(cuts), len(body)]:
            for event in parser.feed(body[start:cut]):
                if isinstance(event, PartHead):
                    head, content = event, b""
                elif event is PART_END:
                    assert head is not None
                    parts.append((head, content))
                    head = None
                else:
                    assert isinstance(event, bytes) and event, event
                    content += event
            start = max(start, cut)
        parser.end()
    except BadRequest as exc:
        return str(exc)
    return parts


NEAR = st.lists(
    st.sampled_from(
        [
            b"--XyZ",
            b"\r\n",
            b"--",
            b"-",
            b"a",
            b" ",
            b"\r",
            b":",
            b"\r\n\r\n",
            b"Content-Disposition: form-data; name=a",
            b"; filename=f",
        ]
    ),
    max_size=30,
).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(NEAR, st.binary(max_size=200)),
    st.lists(st.integers(0, 400), max_size=12),
    st.integers(0, 4),
)
def test_a_body_reads_the_same_however_it_is_cut(
    body: bytes, cuts: list[int], max_parts: int
) -> None:
    assert read(body, cuts, max_parts) == read(body, [], max_parts)


NAMES = st.text("abcé€ -_", min_size=1)  # (names a browser sends as they are)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(NAMES, st.text()), max_size=4),
    st.lists(st.tuples(NAMES, st.text(), st.binary()), min_size=1, max_size=3),
    st.data(),
)
def test_an_encoded_form_reads_the_same_cut_byte_by_byte_or_anywhere(
    fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]], data: Any
) -> None:
    from wsserver.app.forms import UploadedFile, media_type

    content_type, body = encode_form(
        fields,
        [
            (name, UploadedFile(filename, "application/x-thing", content))
            for name, filename, content in files
        ],
    )
    boundary = media_type(content_type)[1]["boundary"]
    whole = read_with(boundary, body, [])
    assert [(h.name, c) for h, c in whole] == [(n, v.encode()) for n, v in fields] + [
        (n, c) for n, _, c in files
    ]
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=20))
    assert read_with(boundary, body, cuts) == whole
    assert read_with(boundary, body, list(range(len(body)))) == whole


def read_with(boundary: str, body: bytes, cuts: list[int]) -> Any:
    return read(body, cuts, 100, boundary)


def test_a_large_file_part_comes_out_as_it_comes_in() -> None:
    parser = MultipartParser("XyZ", 5)
    head = b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="big.bin"\r\n\r\n'
    piece = bytes(range(256)) * 256  # 64 KiB, with CRs, LFs and dashes
    # (The head is given once what follows its blank line shows that no
    # delimiter starts there: a part may have a head and no content.)
    assert parser.feed(head) == []
    events = parser.feed(piece)
    assert events[0] == PartHead(
        "f", "big.bin", "", (("content-disposition", 'form-data; name="f"; filename="big.bin"'),)
    )
    fed = len(piece)
    given_out = sum(len(e) for e in events[1:])
    for _ in range(160):  # 10 MiB
        out = parser.feed(piece)
        fed += len(piece)
        given_out += sum(len(e) for e in out)
        # All of it but what could be a delimiter's start.
        assert fed - given_out < len(b"\r\n--XyZ")
    assert parser.feed(b"\r\n--XyZ--\r\n")[-1] is PART_END
    parser.end()


def test_a_head_that_never_ends_is_refused_at_16_kib() -> None:
    parser = MultipartParser("XyZ", 5)
    parser.feed(b'--XyZ\r\nContent-Disposition: form-data; name="f"\r\n')
    with pytest.raises(BadRequest, match="head is over 16 KiB"):
        for _ in range(20):
            parser.feed(b"x" * 1024)
    # Whole, the same rule.
    body = multipart(field("a", b"v", b"x-long: " + b"y" * 16400 + b"\r\n"))
    assert read(body, []) == "A multipart form part's head is over 16 KiB."


def test_padding_that_never_ends_is_refused_and_a_cr_may_wait_for_its_lf() -> None:
    parser = MultipartParser("XyZ", 5)
    parser.feed(b"--XyZ  \r")
    parser.feed(b"\n" + field("a", b"1") + b"\r\n--XyZ")
    parser.feed(b" " * 1000)
    with pytest.raises(BadRequest, match="malformed boundary line"):
        parser.feed(b" " * 100)


@pytest.mark.parametrize("size", [16380, 16381, 16384, 16385])
def test_the_16_kib_head_rule_is_the_same_however_the_head_is_cut(size: int) -> None:
    head = b'Content-Disposition: form-data; name="a"\r\nx: '
    head += b"y" * (size - len(head))
    body = b"--XyZ\r\n" + head + b"\r\n\r\nv\r\n--XyZ--\r\n"
    whole = read(body, [])
    if size > 16384:
        assert whole == "A multipart form part's head is over 16 KiB."
    else:
        assert [(h.name, c) for h, c in whole] == [("a", b"v")]
    for cut in range(7 + size - 2, 7 + size + 6):  # (in and around its blank line)
        assert read(body, [cut]) == whole, cut


def test_padding_over_1_kib_is_refused_whole_or_cut() -> None:
    for padding, refused in ((1024, False), (1025, True)):
        body = b"--XyZ" + b" " * padding + b"\r\n" + field("a", b"v") + b"\r\n--XyZ--"
        whole = read(body, [])
        assert (whole == "The multipart form has a malformed boundary line.") is refused
        assert read(body, [600]) == whole


async def pieces(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_form_parts_skip_what_is_not_read_and_a_skipped_part_says_so() -> None:
    body = multipart(
        field("_charset_", b"latin-1"),
        field("a", b"\xe9t\xe9"),
        b'Content-Disposition: form-data; name="f"; filename="x.bin"\r\n\r\n' + b"z" * 3000,
        field("b", b"\xe9", b"Content-Type: text/plain; charset=utf-8\r\n"),
    )
    chunks = [body[i : i + 7] for i in range(0, len(body), 7)]
    form = FormParts(pieces(*chunks), MULTIPART, 10)
    seen = []
    skipped = None
    async for part in form:
        seen.append((part.name, part.filename, part.content_type))
        if part.name == "_charset_":
            assert await part.text() == "latin-1"
            assert await part.read() == b""  # (read: what a second read takes is nothing)
        elif part.name == "a":
            assert await part.text() == "été"  # in the _charset_ field's charset
        elif part.name == "f":
            piece = await part.__anext__()
            assert piece and piece == b"z" * len(piece)
            skipped = part
        else:
            assert await part.text() == "\ufffd"  # its own charset, not the form's
    assert seen == [
        ("_charset_", None, "text/plain"),
        ("a", None, "text/plain"),
        ("f", "x.bin", "application/octet-stream"),
        ("b", None, "text/plain; charset=utf-8"),
    ]
    assert skipped is not None
    with pytest.raises(RuntimeError, match="'f' read after the next part"):
        await skipped.read()


async def test_form_parts_refuse_a_body_of_another_type_or_a_broken_one_for_good() -> None:
    form = FormParts(pieces(b"a=1"), "application/x-www-form-urlencoded", 10)
    with pytest.raises(BadRequest, match="not a multipart/form-data form"):
        await form.__anext__()
    form = FormParts(pieces(b"--XyZ\r\n", field("a", b"1" * 50)), MULTIPART, 10)
    part = await form.__anext__()
    with pytest.raises(BadRequest, match="ends before its closing boundary"):
        await part.read()
    with pytest.raises(BadRequest, match="ends before its closing boundary"):
        await form.__anext__()


# ------------------------------------------------------------ through a server


def upload_app(log: list[Any], first_part: asyncio.Event | None = None) -> Router:
    routes = Router()

    @routes.post("/upload", stream=True, max_body_size=64 * 2**20)
    async def upload(request: Request) -> Any:
        parts = []
        async for part in request.multipart():
            assert isinstance(part, FormPart)
            if part.filename is None:
                parts.append([part.name, await part.text()])
                if first_part is not None:
                    first_part.set()
                continue
            digest = hashlib.sha256()
            size = largest = 0
            async for piece in part:
                digest.update(piece)
                size += len(piece)
                largest = max(largest, len(piece))
            log.append(largest)
            parts.append([part.name, part.filename, part.content_type, size, digest.hexdigest()])
        return json(parts)

    @routes.post("/whole")
    async def whole(request: Request) -> Any:
        return json(
            [[p.name, p.filename, (await p.read()).hex()] async for p in request.multipart()]
        )

    @routes.post("/twice", stream=True)
    async def twice(request: Request) -> Any:
        async for _ in request.multipart():
            pass
        try:
            request.multipart()
        except RuntimeError as exc:
            return json({"error": str(exc)})
        return json({"error": None})

    @routes.post("/streamed-first", stream=True)
    async def streamed_first(request: Request) -> Any:
        assert request.stream is not None
        await request.stream.__aiter__().__anext__()
        try:
            request.multipart()
        except RuntimeError as exc:
            return json({"error": str(exc)})
        return json({"error": None})

    return routes


async def test_an_upload_larger_than_a_whole_body_goes_through_in_pieces(
    run_server: StartServer,
) -> None:
    log: list[int] = []
    server = await run_server(upload_app(log), max_body_size=2**20)
    url = f"http://127.0.0.1:{server.port}"
    big = bytes(range(251)) * (24 * 2**20 // 251)  # 24 MiB, over the server's max_body_size
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(
            f"{url}/upload",
            data={"title": "Grüße"},
            files=[("doc", ("big.bin", big, "application/x-big")), ("doc", ("e.txt", b""))],
        )
        assert r.status_code == 200, r.text
        assert r.json() == [
            ["title", "Grüße"],
            ["doc", "big.bin", "application/x-big", len(big), hashlib.sha256(big).hexdigest()],
            ["doc", "e.txt", "text/plain", 0, hashlib.sha256(b"").hexdigest()],
        ]
        # In pieces as the socket gave them, never the file whole.
        assert 0 < log[0] <= 2**20
        # A route that reads its body whole gives its parts the same way.
        r = await client.post(f"{url}/whole", files={"f": ("a.txt", b"\r\n--x")})
        assert r.json() == [["f", "a.txt", b"\r\n--x".hex()]]
    form = aiohttp.FormData()
    form.add_field("doc", big[:300_000], filename="part.bin", content_type="application/pdf")
    async with aiohttp.ClientSession() as session, session.post(f"{url}/upload", data=form) as r2:
        assert r2.status == 200
        digest = hashlib.sha256(big[:300_000]).hexdigest()
        assert await r2.json() == [["doc", "part.bin", "application/pdf", 300_000, digest]]


async def test_a_part_is_in_the_handler_before_the_client_sent_the_rest(
    run_server: StartServer,
) -> None:
    first_part = asyncio.Event()
    server = await run_server(upload_app([], first_part))
    body = multipart(field("a", b"1"), field("b", b"2"))
    cut = body.index(b"--XyZ\r\n", 5) + 7  # the first part and the next one's boundary
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
        % (MULTIPART.encode(), len(body))
        + body[:cut]
    )
    await asyncio.wait_for(first_part.wait(), 5)
    writer.write(body[cut:])
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200 ")
    writer.close()


async def test_bad_forms_read_as_they_come_are_400s(run_server: StartServer) -> None:
    server = await run_server(upload_app([]), max_form_parts=2)
    url = f"http://127.0.0.1:{server.port}/upload"
    async with httpx.AsyncClient() as client:
        r = await client.post(url, data={"a": "1"})
        assert (r.status_code, r.text) == (
            400,
            "The request's body is not a multipart/form-data form.\n",
        )
        r = await client.post(url, files={f"f{n}": (f"{n}.txt", b"x") for n in range(3)})
        assert (r.status_code, r.text) == (400, "The form has more than 2 fields.\n")
        r = await client.post(
            url, content=b"--XyZ\r\n" + field("a", b"1"), headers={"content-type": MULTIPART}
        )
        assert (r.status_code, r.text) == (
            400,
            "The multipart form ends before its closing boundary.\n",
        )
        r = await client.post(url, files={"f": ("a.txt", b"fine")})
        assert r.status_code == 200
        # Read twice: the handler's mistake, not the client's (no 400).
        r = await client.post(url.replace("/upload", "/twice"), files={"f": ("a.txt", b"x")})
        assert r.json() == {"error": "request.multipart() reads the body once: it was read"}
        # After a piece taken from request.stream: the rest would be read as the
        # form's preamble, its first parts lost without a word (it was so).
        r = await client.post(
            url.replace("/upload", "/streamed-first"), files={"f": ("a.txt", b"x")}
        )
        assert r.json() == {
            "error": "request.multipart() reads the body from its start: request.stream was read"
        }


async def test_a_forms_own_charset_reads_its_parts_as_they_come(run_server: StartServer) -> None:
    # As request.files reads them: the Content-Type's charset (a Java
    # client's) for names, file names and fields that name none; they were
    # read as UTF-8, each such character a U+FFFD.
    server = await run_server(upload_app([]))
    body = multipart(
        field("nom", "Müller".encode("latin-1")),
        'Content-Disposition: form-data; name="f"; filename="café.txt"\r\n\r\nx'.encode("latin-1"),
    )
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"http://127.0.0.1:{server.port}/upload",
            content=body,
            headers={"content-type": MULTIPART + "; charset=ISO-8859-1"},
        )
    assert r.status_code == 200
    assert r.json() == [
        ["nom", "Müller"],
        ["f", "café.txt", "application/octet-stream", 1, hashlib.sha256(b"x").hexdigest()],
    ]


async def test_an_empty_form_body_has_no_parts_as_for_request_files(
    run_server: StartServer,
) -> None:
    # request.files of an empty body is empty (no 400); read as it comes,
    # the same body was a 400 "no part".
    routes = upload_app([])

    @routes.post("/files")
    async def files(request: Request) -> Any:
        return json([list(request.form.items()), list(request.files.items())])

    server = await run_server(routes)
    url = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as client:
        for path, empty in (("/files", [[], []]), ("/upload", []), ("/whole", [])):
            r = await client.post(url + path, content=b"", headers={"content-type": MULTIPART})
            assert (r.status_code, r.json()) == (200, empty), path


async def test_a_form_read_as_it_comes_leaves_no_reference_cycle(
    run_server: StartServer,
) -> None:
    # A form and its parts are freed by reference counting as soon as the
    # handler lets them go, whether it read them all or stopped half-way:
    # nothing is left for the garbage collector (see tests/test_robustness.py).
    import gc

    routes = Router()

    @routes.post("/first", stream=True)
    async def first(request: Request) -> Any:
        async for part in request.multipart():
            return json([part.name, (await part.read()).decode()])  # (the rest unread)
        return json(None)

    @routes.post("/all", stream=True)
    async def every(request: Request) -> Any:
        return json([[p.name, await p.text()] async for p in request.multipart()])

    server = await run_server(routes)
    url = f"http://127.0.0.1:{server.port}"

    def left() -> list[Any]:
        return [o for o in gc.get_objects() if type(o) in (FormParts, FormPart, MultipartParser)]

    gc.collect()
    gc.disable()
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(3):
                fields = {"a": "1", "b": "2"}
                assert (
                    await client.post(f"{url}/first", data=fields, files={"f": b"x"})
                ).json() == [
                    "a",
                    "1",
                ]
                assert (await client.post(f"{url}/all", data=fields, files={"f": b"x"})).json() == [
                    ["a", "1"],
                    ["b", "2"],
                    ["f", "x"],
                ]
                # A form that does not parse: the error the form keeps (to
                # raise it again) holds no frame of the form's.
                broken = b"--XyZ\r\n" + field("a", b"1" * 50)
                headers = {"content-type": MULTIPART}
                r = await client.post(f"{url}/all", content=broken, headers=headers)
                assert r.status_code == 400
        assert left() == [], "a form's objects left in reference cycles"
    finally:
        gc.enable()
