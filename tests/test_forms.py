"""Form bodies of Router HTTP routes: ``request.form`` and ``request.files``.

The parser (wsserver/app/forms.py) is checked against what real clients
encode (httpx's and aiohttp's multipart writers, through a real socket, and
offline under Hypothesis), and against malformed bodies, which must give a
400 with a reason, never a 500.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import Any
from urllib.parse import unquote_to_bytes

import aiohttp
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsserver import BadRequest, Request, Router, UploadedFile
from wsserver.app.forms import _codec, _decode, _percent_decode, encode_form, media_type, parse_form
from wsserver.protocol.http import Headers
from wsserver.response import json

from .conftest import StartServer

MULTIPART = "multipart/form-data; boundary=XyZ"
URLENCODED = "application/x-www-form-urlencoded"


def multipart(*parts: bytes, boundary: bytes = b"XyZ", end: bytes = b"--\r\n") -> bytes:
    """A multipart body of ``parts`` (each its headers, a blank line and content)."""
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return body + b"--" + boundary + end


def field(name: str, value: bytes, extra: bytes = b"") -> bytes:
    return b'Content-Disposition: form-data; name="%s"\r\n%s\r\n%s' % (
        name.encode(),
        extra,
        value,
    )


# ==================================================================== the parser


def test_urlencoded_fields_in_order_with_repeats_and_blanks() -> None:
    fields, files = parse_form(
        "application/x-www-form-urlencoded", b"a=1&b=%C3%A9+x&b=&c&a=2", 1000
    )
    assert fields == {"a": ["1", "2"], "b": ["é x", ""], "c": [""]}
    assert (fields.get("a"), fields.getlist("b"), fields.get("z", "-")) == ("1", ["é x", ""], "-")
    assert files == {}


def test_urlencoded_charset_and_bytes_beyond_ascii() -> None:
    latin = "application/x-www-form-urlencoded; charset=ISO-8859-1"
    assert parse_form(latin, b"n=%E9", 10)[0] == {"n": ["é"]}
    # An unknown charset is read as UTF-8; what does not decode is U+FFFD.
    assert parse_form("application/x-www-form-urlencoded; charset=nope", b"n=%FF", 10)[0] == {
        "n": ["\ufffd"]
    }
    # Bytes a client should have escaped are taken as they are (WHATWG URL's
    # parser; curl -d 'name=Zoë' sends them so).
    assert parse_form(URLENCODED, "n=Zoë&é=%C3%A9".encode(), 10)[0] == {"n": ["Zoë"], "é": ["é"]}
    assert parse_form(latin, "n=é".encode("latin-1"), 10)[0] == {"n": ["é"]}
    assert parse_form(URLENCODED, b"n=%zz%4&%=%%41", 10)[0] == {"n": ["%zz%4"], "%": ["%A"]}


def test_other_content_types_have_no_form() -> None:
    for content_type in ("", "application/json", "text/plain", "multipart/mixed; boundary=a"):
        assert parse_form(content_type, b"a=1", 10) == ({}, {})


def test_multipart_fields_and_files() -> None:
    body = multipart(
        field("title", "Grüße".encode()),
        b'Content-Disposition: form-data; name="doc"; filename="a b.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nline one --XyZ\r\n-XyZ\r\n",
        b'Content-Disposition: form-data; name="doc"; filename=""\r\n\r\n',
        field("title", b"second"),
    )
    fields, files = parse_form(MULTIPART, body, 1000)
    assert fields == {"title": ["Grüße", "second"]}
    first, empty = files.getlist("doc")
    assert first == UploadedFile(
        "a b.txt",
        "text/plain",
        b"line one --XyZ\r\n-XyZ\r\n",
        (
            ("content-disposition", 'form-data; name="doc"; filename="a b.txt"'),
            ("content-type", "text/plain"),
        ),
    )
    assert (empty.filename, empty.content_type, empty.body) == (
        "",
        "application/octet-stream",
        b"",
    )


def test_multipart_preamble_epilogue_padding_and_quoted_boundary() -> None:
    body = (
        b"This is a preamble.\r\n--a:b c\r\n"
        + field("x", b"1")
        + b"\r\n--a:b c \t\r\n"  # transport padding after a delimiter
        + field("y", b"2")
        + b"\r\n--a:b c--\r\nan epilogue, --a:b c\r\n"
    )
    fields, _ = parse_form('multipart/form-data; boundary="a:b c"', body, 10)
    assert fields == {"x": ["1"], "y": ["2"]}


def test_multipart_names_filename_star_and_charsets() -> None:
    body = multipart(
        b'Content-Disposition: form-data; name="q\\"uote"\r\n\r\nv',
        b'Content-Disposition: form-data; name=f; filename="fallback.txt"; '
        b"filename*=UTF-8''%E2%82%AC%20rates.txt\r\n\r\ndata",
        field("latin", b"\xe9", b"Content-Type: text/plain; charset=latin-1\r\n"),
        field("_charset_", b"iso-8859-1"),
        field("guess", b"\xe9"),
    )
    fields, files = parse_form(MULTIPART, body, 10)
    assert fields['q"uote'] == ["v"]
    assert files.get("f").filename == "€ rates.txt"
    # A part's own charset; RFC 7578's _charset_ for the parts that name none.
    assert (fields.get("latin"), fields.get("guess")) == ("é", "é")


def test_a_part_without_headers_is_refused_for_want_of_a_name() -> None:
    with pytest.raises(BadRequest, match="no 'form-data' disposition"):
        parse_form(MULTIPART, multipart(b"\r\ncontent"), 10)


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("multipart/form-data", multipart(field("a", b"1")), "no valid boundary"),
        ("multipart/form-data; boundary=" + "b" * 71, b"--", "no valid boundary"),
        ('multipart/form-data; boundary="end "', b"--", "no valid boundary"),
        (MULTIPART, b"no delimiter at all", "no part"),
        (MULTIPART, b"--XyZ\r\n" + field("a", b"1"), "ends before its closing boundary"),
        (MULTIPART, b"--XyZ", "malformed boundary line"),
        (MULTIPART, b"--XyZjunk\r\n" + field("a", b"1") + b"\r\n--XyZ--", "malformed boundary"),
        (MULTIPART, b"--XyZ-\r\n" + field("a", b"1") + b"\r\n--XyZ--", "malformed boundary"),
        (MULTIPART, multipart(b'Content-Disposition: form-data; name="a"\r\nx'), "no end"),
        (MULTIPART, multipart(b"Content-Disposition form-data\r\n\r\nx"), "malformed header"),
        (MULTIPART, multipart(b" folded: x\r\n\r\nx"), "malformed header"),
        (MULTIPART, multipart(b"Content-Disposition: attachment; name=a\r\n\r\nx"), "disposition"),
        (MULTIPART, multipart(b"Content-Disposition: form-data\r\n\r\nx"), "disposition"),
        (MULTIPART, multipart(b"Content-Type: text/plain\r\n\r\nx"), "disposition"),
    ],
)
def test_malformed_multipart_bodies_are_bad_requests(
    content_type: str, body: bytes, reason: str
) -> None:
    with pytest.raises(BadRequest, match=reason):
        parse_form(content_type, body, 10)


def test_max_parts_counts_fields_and_files() -> None:
    parts = [field("a", b"1"), b'Content-Disposition: form-data; name="f"; filename="x"\r\n\r\n']
    assert len(parse_form(MULTIPART, multipart(*parts), 2)[1]) == 1
    with pytest.raises(BadRequest, match="more than 1 fields"):
        parse_form(MULTIPART, multipart(*parts), 1)
    urlencoded = "application/x-www-form-urlencoded"
    assert parse_form(urlencoded, b"a=1&b=2", 2)[0] == {"a": ["1"], "b": ["2"]}
    with pytest.raises(BadRequest, match="more than 1 fields"):
        parse_form(urlencoded, b"a=1&b=2", 1)


def test_media_type_parameters() -> None:
    assert media_type('Multipart/Form-Data ; Boundary="a\\\\b" ; boundary=second;junk') == (
        "multipart/form-data",
        {"boundary": "a\\b"},
    )
    assert media_type("") == ("", {})


@st.composite
def forms(draw: Any) -> tuple[dict[str, list[str]], dict[str, list[tuple[str, str, bytes]]]]:
    # What form encoders percent-escape in names (", control characters) is
    # left as escaped: a "%22" may as well be a name's own, so it is not
    # decoded. (httpx doubles a backslash: it reads back as one.)
    names = st.text(
        st.characters(codec="utf-8", exclude_categories=["Cc"], exclude_characters='"'),
        min_size=1,
    )
    fields = draw(st.dictionaries(names, st.lists(st.text(), min_size=1, max_size=3), max_size=4))
    files = draw(
        st.dictionaries(
            names.filter(lambda name: name not in fields),
            st.lists(
                st.tuples(
                    names,
                    st.sampled_from(["text/plain", "application/octet-stream", "image/png"]),
                    st.binary() | st.sampled_from([b"\r\n--", b"--\r\n\r\n", b"\r\n\r\n"]),
                ),
                min_size=1,
                max_size=2,
            ),
            min_size=1,  # (else httpx sends no multipart body)
            max_size=3,
        )
    )
    return fields, files


@settings(max_examples=150, deadline=None)
@given(forms())
def test_what_httpx_encodes_parses_back(form: Any) -> None:
    fields, files = form
    request = httpx.Request(
        "POST",
        "http://test/",
        data=fields,
        files=[
            (name, (filename, body, content_type))
            for name, entries in files.items()
            for filename, content_type, body in entries
        ],
    )
    body = request.read()
    got_fields, got_files = parse_form(request.headers["content-type"], body, 1000)
    assert got_fields == fields
    assert {
        name: [(f.filename, f.content_type, f.body) for f in entries]
        for name, entries in got_files.items()
    } == files


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 5))
def test_any_body_is_a_form_or_a_bad_request(body: bytes, max_parts: int) -> None:
    for content_type in (MULTIPART, "application/x-www-form-urlencoded"):
        try:
            fields, files = parse_form(content_type, body, max_parts)
        except BadRequest:
            continue
        assert sum(map(len, fields.values())) + sum(map(len, files.values())) <= max_parts


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [b"--XyZ", b"\r\n", b"--", b"a", b" ", b":", b"Content-Disposition: form-data; name=a"]
        ),
        max_size=30,
    )
)
def test_near_multipart_bodies_are_a_form_or_a_bad_request(pieces: list[bytes]) -> None:
    try:
        fields, files = parse_form(MULTIPART, b"".join(pieces), 5)
    except BadRequest:
        return
    assert sum(map(len, fields.values())) + sum(map(len, files.values())) <= 5


def test_request_form_and_files_are_parsed_once_and_empty_without_a_body() -> None:
    for content_type in (MULTIPART, "application/x-www-form-urlencoded"):
        request = Request("POST", "/", Headers([("content-type", content_type)]))
        assert (request.form, request.files) == ({}, {})
    request = Request("POST", "/", Headers([("content-type", MULTIPART)]))
    request.body = multipart(field("a", b"1"))
    form = request.form
    assert form == {"a": ["1"]} and request.form is form
    request.body = b"--XyZ"  # (not looked at again)
    assert request.files == {} and request.form is form


# ================================================ through a server, real clients


def form_app() -> Router:
    routes = Router()

    @routes.post("/form")
    async def echo_form(request: Request) -> Any:
        files = {
            name: [[f.filename, f.content_type, f.body.hex()] for f in entries]
            for name, entries in request.files.items()
        }
        return json({"fields": request.form, "files": files})

    return routes


async def test_httpx_and_aiohttp_forms_reach_the_handler(run_server: StartServer) -> None:
    server = await run_server(form_app())
    url = f"http://127.0.0.1:{server.port}/form"
    png = bytes(range(256)) * 64
    async with httpx.AsyncClient() as client:
        r = await client.post(url, data={"name": "Zoë", "tag": ["a", "b"]})
        assert r.status_code == 200
        assert r.json() == {"fields": {"name": ["Zoë"], "tag": ["a", "b"]}, "files": {}}
        r = await client.post(
            url,
            data={"title": "Grüße\r\nzwei"},
            files=[("pic", ("p.png", png, "image/png")), ("pic", ("e.txt", b"", "text/plain"))],
        )
        assert r.status_code == 200
        assert r.json() == {
            "fields": {"title": ["Grüße\r\nzwei"]},
            "files": {"pic": [["p.png", "image/png", png.hex()], ["e.txt", "text/plain", ""]]},
        }
    form = aiohttp.FormData()
    form.add_field("note", "ça va")
    form.add_field(
        "doc", b"%PDF-1.4\r\n--", filename="rapport-final.pdf", content_type="application/pdf"
    )
    async with aiohttp.ClientSession() as session, session.post(url, data=form) as response:
        assert response.status == 200
        assert await response.json() == {
            "fields": {"note": ["ça va"]},
            "files": {"doc": [["rapport-final.pdf", "application/pdf", b"%PDF-1.4\r\n--".hex()]]},
        }


async def test_a_forms_own_charset_reads_its_fields_and_file_names(
    run_server: StartServer,
) -> None:
    # A Java client (HttpMime's setCharset, Spring's multipartCharset) says the
    # form's charset on its Content-Type and writes names, file names and
    # fields without a charset of their own in it; Starlette reads them so.
    # They were read as UTF-8: every such character a U+FFFD.
    server = await run_server(form_app())
    body = multipart(
        field("nom", "Müller".encode("latin-1")),
        field("u", "é".encode(), b"Content-Type: text/plain; charset=utf-8\r\n"),
        'Content-Disposition: form-data; name="fichier"; filename="café.txt"\r\n\r\nx'.encode(
            "latin-1"
        ),
    )
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"http://127.0.0.1:{server.port}/form",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=XyZ; charset=ISO-8859-1"},
        )
    assert r.status_code == 200
    assert r.json() == {
        "fields": {"nom": ["Müller"], "u": ["é"]},  # (a part's own charset first)
        "files": {"fichier": [["café.txt", "application/octet-stream", "78"]]},
    }
    # A _charset_ field is the form's in-band word: it wins over the header's.
    body = multipart(field("_charset_", b"windows-1251"), field("a", b"\xe9"))
    latin = "multipart/form-data; boundary=XyZ; charset=latin-1"
    assert parse_form(latin, body, 10)[0]["a"] == ["й"]
    # A charset without ASCII in it names the fields' text, not the headers'.
    body = multipart(field("é", "ü".encode("utf-16-le")))
    utf16 = "multipart/form-data; boundary=XyZ; charset=utf-16-le"
    assert parse_form(utf16, body, 10)[0] == {"é": ["ü"]}


async def test_a_malformed_form_or_too_many_parts_is_a_400(run_server: StartServer) -> None:
    server = await run_server(form_app(), max_form_parts=3)
    url = f"http://127.0.0.1:{server.port}/form"
    async with httpx.AsyncClient() as client:
        r = await client.post(url, data={"a": "1", "b": "2", "c": "3"})
        assert r.status_code == 200 and r.json()["fields"] == {"a": ["1"], "b": ["2"], "c": ["3"]}
        r = await client.post(url, data={"a": "1", "b": "2", "c": "3", "d": "4"})
        assert (r.status_code, r.text) == (400, "The form has more than 3 fields.\n")
        r = await client.post(url, files={f"f{n}": (f"{n}.txt", b"x") for n in range(4)})
        assert (r.status_code, r.text) == (400, "The form has more than 3 fields.\n")
        r = await client.post(
            url,
            content=b"--XyZ\r\n" + field("a", b"1"),
            headers={"content-type": MULTIPART},
        )
        assert r.status_code == 400
        assert r.text == "The multipart form ends before its closing boundary.\n"
        # The connection goes on serving (the 400 is an answer, not a failure).
        r = await client.post(url, data={"a": "1"})
        assert r.status_code == 200


async def test_an_unquoted_value_runs_to_its_semicolon(run_server: StartServer) -> None:
    # The multipart writer Java and Android apps copy (codejava.net's
    # MultipartUtility) makes its boundary "===" + millis + "===" and sends
    # it unquoted: '=' is a boundary's character but no token's. Starlette
    # (python-multipart), aiohttp and a browser's MIME type parser (WHATWG)
    # read an unquoted value to its ';'.
    server = await run_server(form_app())
    boundary = "===1765010000000==="
    body = multipart(
        field("description", b"holiday"),
        b'Content-Disposition: form-data; name="upload"; filename=beach photo.jpg\r\n'
        b"Content-Type: image/jpeg\r\n\r\nJPEG",
        boundary=boundary.encode(),
    )
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"http://127.0.0.1:{server.port}/form",
            content=body,
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "fields": {"description": ["holiday"]},
        # (Its file name whole, as Starlette reads it, not cut to "beach".)
        "files": {"upload": [["beach photo.jpg", "image/jpeg", b"JPEG".hex()]]},
    }
    assert media_type("text/plain; a=b c ; charset=utf-8 ;d=;e") == (
        "text/plain",
        {"a": "b c", "charset": "utf-8"},
    )


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.text(min_size=1), st.text()), max_size=5),
    st.lists(st.tuples(st.text(min_size=1), st.text(), st.binary()), max_size=3),
)
def test_what_encode_form_makes_parses_back(
    fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]
) -> None:
    def sent(name: str) -> str:  # (a browser's escapes, read back as sent)
        return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")

    uploads = [
        (name, UploadedFile(filename, "application/x-test", body)) for name, filename, body in files
    ]
    content_type, body = encode_form(fields, uploads)
    got_fields, got_files = parse_form(content_type, body, 1000)
    want: dict[str, list[str]] = {}
    for name, value in fields:
        want.setdefault(sent(name) if files else name, []).append(value)
    assert got_fields == want
    assert [
        (name, f.filename, f.content_type, f.body)
        for name, entries in got_files.items()
        for f in entries
    ] == sorted(
        (
            (sent(name), sent(filename), "application/x-test", body)
            for name, filename, body in files
        ),
        key=lambda item: [sent(n) for n, _, _ in files].index(item[0]),
    )


@pytest.mark.parametrize(
    ("disposition", "filename"),
    [
        ('form-data; name="f"; filename="x\\"', "x\\"),  # a browser's: its last character
        ('form-data; name="f"; filename="C:\\dir\\f.txt"', "C:\\dir\\f.txt"),
        ('form-data; name="f"; filename="a%22b"', "a%22b"),  # a browser's quote, as sent
        ('form-data; name="f"; filename="a\\"b"', 'a"b'),  # quoted pairs (RFC 9110)
        ('form-data; name="f"; filename="a\\\\b"', "a\\b"),  # (httpx's backslash)
        ('form-data; filename="x;y" ; name="f"', "x;y"),
    ],
)
def test_file_names_as_browsers_and_other_clients_quote_them(
    disposition: str, filename: str
) -> None:
    body = multipart(b"Content-Disposition: %s\r\n\r\nx" % disposition.encode())
    assert parse_form(MULTIPART, body, 10)[1].get("f").filename == filename


# ---------------------------------------------------------------- 1. 500s
# A charset the client names reaches bytes.decode()/unquote(): Python's
# bytes-to-bytes codecs (base64, hex, rot13, zlib, ...) raise LookupError, and
# idna/undefined/punycode raise UnicodeError even with errors="replace", a NUL
# in the name ValueError. None of them is BadRequest: a 500.

BAD_CHARSETS = ["base64", "hex", "rot13", "zlib", "uu", "idna", "undefined", "punycode"]


def _bodies(cs: str) -> list[tuple[str, str, bytes]]:
    return [
        ("urlencoded charset", f'{URLENCODED}; charset="{cs}"', b"a=%41%FF"),
        (
            "part charset",
            MULTIPART,
            multipart(
                field("a", b"A\xff", b"Content-Type: text/plain; charset=%s\r\n" % cs.encode())
            ),
        ),
        (
            "_charset_ field",
            MULTIPART,
            multipart(field("_charset_", cs.encode()), field("b", b"A\xff")),
        ),
        (
            "filename*",
            MULTIPART,
            multipart(
                b"Content-Disposition: form-data; name=f; filename*=%s''%%41%%FF\r\n\r\nx"
                % cs.encode()
            ),
        ),
    ]


_CASES = [(f"{where} {cs}", ct, body) for cs in BAD_CHARSETS for where, ct, body in _bodies(cs)] + [
    (
        "part charset NUL",
        MULTIPART,
        multipart(field("a", b"A\xff", b'Content-Type: text/plain; charset="utf-8\x00"\r\n')),
    )
]


@pytest.mark.parametrize(("where", "content_type", "body"), _CASES, ids=[c[0] for c in _CASES])
def test_a_client_named_charset_never_escapes_as_a_500(
    where: str, content_type: str, body: bytes
) -> None:
    # Each is a well-formed form: it is read in UTF-8 instead.
    fields, files = parse_form(content_type, body, 10)
    values = [*fields.values(), [f.filename for f in files.getlist("f")]]
    assert "A\ufffd" in [value for group in values for value in group]


async def test_charset_hex_through_the_server_is_not_a_500(run_server: StartServer) -> None:
    routes = Router()

    @routes.post("/form")
    async def echo(request: Request) -> Any:
        return json({"fields": request.form})

    server = await run_server(routes)
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"http://127.0.0.1:{server.port}/form",
            content=multipart(field("_charset_", b"hex"), field("b", b"x")),
            headers={"content-type": MULTIPART},
        )
    assert (r.status_code, r.json()) == (200, {"fields": {"_charset_": ["hex"], "b": ["x"]}})


# ------------------------------------------------ 2. what curl / browsers send
# HTML's multipart/form-data encoding (and curl -F, 7.88 checked) escapes only
# '"' (as %22), CR and LF: a backslash goes raw. Full quoted-pair unquoting
# drops it; a name ending in one swallows the closing quote.


def test_curl_and_browser_backslashes_are_kept() -> None:
    # bytes as curl 7.88 sent them for: curl -F 'n\m=v' -F 'file=@a\b"c.txt'
    body = multipart(
        b'Content-Disposition: form-data; name="n\\m"\r\n\r\nv',
        b'Content-Disposition: form-data; name="file"; filename="a\\b%22c.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nhello",
    )
    fields, files = parse_form(MULTIPART, body, 10)
    assert fields == {"n\\m": ["v"]}  # the first version: {"nm": ["v"]}
    assert files.get("file").filename == "a\\b%22c.txt"  # the first version: "ab%22c.txt"


def test_a_file_whose_name_ends_in_a_backslash_stays_a_file() -> None:
    # curl -F 'file=@foo\' (a legal Linux/macOS file name; browsers send the same)
    body = multipart(
        b'Content-Disposition: form-data; name="file"; filename="foo\\"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\x89PNG"
    )
    fields, files = parse_form(MULTIPART, body, 10)
    # the first version: ({'file': ['\ufffdPNG']}, {}): the upload is decoded into request.form
    assert fields == {}
    assert files.get("file").filename == "foo\\"


# ------------------------------------------------------ 3. filename* handling


def test_filename_star_with_an_underscore_charset_is_still_a_file() -> None:
    # RFC 8187 mime-charsetc includes "_" and "%": Shift_JIS, ISO_8859-1 ...
    body = multipart(
        b"Content-Disposition: form-data; name=f; filename*=Shift_JIS''%82%A0.txt\r\n"
        b"Content-Type: text/plain\r\n\r\nfile bytes"
    )
    fields, files = parse_form(MULTIPART, body, 10)
    assert fields == {}  # the first version: {'f': ['file bytes']}, no file
    assert files.get("f").filename == "\u3042.txt"


def test_an_unreadable_filename_star_still_makes_a_file() -> None:
    body = multipart(b"Content-Disposition: form-data; name=f; filename*=report.pdf\r\n\r\n%PDF")
    fields, files = parse_form(MULTIPART, body, 10)
    assert fields == {} and len(files.getlist("f")) == 1  # the first version: a field


# ------------------------------------------------------ 4. limits off by one


def test_urlencoded_trailing_ampersand_is_not_a_field() -> None:
    # parse_qsl counts separators, not fields: 2 fields, max 2 -> 400 on the first version
    assert parse_form(URLENCODED, b"a=1&b=2&", 2)[0] == {"a": ["1"], "b": ["2"]}


# ------------------------------------------ 5. memory for 1 MiB bodies (RSS)

_FILENAME_STAR = b"--XyZ\r\nContent-Disposition: form-data; name=a; filename*=utf-8''"

_MEMORY_PROBE = """
import resource, sys
from wsserver.app.forms import parse_form
from wsserver.errors import BadRequest
content_type, fill, head, tail = sys.argv[1], *map(bytes.fromhex, sys.argv[2:])
body = head + (fill * ((1 << 20) // len(fill) + 1))[: 1 << 20] + tail
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    parse_form(content_type, body, 10)
except BadRequest:
    pass
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


@pytest.mark.parametrize(
    ("content_type", "head", "fill", "tail"),
    [
        # A 1 MiB quoted name: sre kept a backtracking frame per character of
        # the first version's (?:[^"\\]|\\.)* (about 200 MiB, 360 ms).
        (
            MULTIPART,
            b'--XyZ\r\nContent-Disposition: form-data; name="',
            b"a",
            b'"\r\n\r\nx\r\n--XyZ--',
        ),
        # ... and one of quoted pairs.
        (
            MULTIPART,
            b'--XyZ\r\nContent-Disposition: form-data; name="',
            b'\\"',
            b'"\r\n\r\nx\r\n--XyZ--',
        ),
        # A 1 MiB value of "%": urllib's unquote() split it into a million
        # pieces (about 190 MiB, 850 ms).
        (URLENCODED, b"a=", b"%", b""),
        (URLENCODED, b"", b"%41=&", b""),
        # filename* went through unquote() too (190 MiB; with %41, 82 MiB).
        (MULTIPART, _FILENAME_STAR, b"%", b"\r\n\r\nx\r\n--XyZ--"),
        (MULTIPART, _FILENAME_STAR, b"%41", b"\r\n\r\nx\r\n--XyZ--"),
        # A tuple per header line: 262,144 of them took 49 MiB (now: a 400).
        (MULTIPART, b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n', b"a:\r\n", b"\r\n"),
    ],
    ids=[
        "quoted-name",
        "quoted-pairs",
        "percent-signs",
        "empty-fields",
        "filename*-%",
        "filename*-%41",
        "header-lines",
    ],
)
def test_a_1_mib_form_does_not_take_100_mib(
    content_type: str, head: bytes, fill: bytes, tail: bytes
) -> None:
    """Measured in a process of its own: its peak RSS (which tracemalloc does not
    see, for the regular expression engine's stack)."""
    root = pathlib.Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, content_type, fill.hex(), head.hex(), tail.hex()],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert float(out.stdout) < 64


def test_a_file_in_a_whole_body_is_copied_out_of_it_once() -> None:
    # request.files took three times the body at its peak: the part (its head
    # and content) was cut out of the body, then its content out of that.
    import tracemalloc

    size = 8 << 20
    content = bytes(range(256)) * (size // 256)
    body = multipart(field("a", b"1"), field("f", content, b"Content-Type: image/png\r\n"))
    body = body.replace(b'name="f"', b'name="f"; filename="f.png"')
    tracemalloc.start()
    try:
        _, files = parse_form(MULTIPART, body, 10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert files.get("f").body == content
    assert peak < size * 1.25, peak / size


# ------------------------------------ 6. gaps: these pass, but kill mutants
# that survive tests/test_forms.py


def test_a_parts_own_charset_is_used_without_charset_field() -> None:
    # survives in test_forms.py: "_codec(charset or default_charset)" ->
    # "_codec(default_charset)" (its _charset_ is latin-1 as well)
    body = multipart(field("latin", b"\xe9", b"Content-Type: text/plain; charset=latin-1\r\n"))
    assert parse_form(MULTIPART, body, 10)[0] == {"latin": ["\xe9"]}


def test_a_parts_own_charset_beats_charset_field() -> None:
    body = multipart(
        field("_charset_", b"windows-1251"),
        field("latin", b"\xe9", b"Content-Type: text/plain; charset=latin-1\r\n"),
    )
    assert parse_form(MULTIPART, body, 10)[0]["latin"] == ["\xe9"]


def test_charset_field_applies_to_the_fields_before_it() -> None:
    # a browser puts _charset_ where its hidden input is: often last
    body = multipart(field("a", b"\xe9"), field("_charset_", b"windows-1252"))
    assert parse_form(MULTIPART, body, 10)[0]["a"] == ["\xe9"]


def test_part_headers_keep_their_order() -> None:
    body = multipart(
        b"Content-Type: text/plain\r\nContent-Disposition: form-data; name=f; filename=a\r\n\r\nx"
    )
    assert [k for k, _ in parse_form(MULTIPART, body, 10)[1].get("f").headers] == [
        "content-type",
        "content-disposition",
    ]


def test_a_parameter_that_does_not_parse_is_skipped_and_a_part_may_have_no_content() -> None:
    body = b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\n--XyZ--\r\n'
    for content_type in (
        "multipart/form-data; charset; boundary=XyZ",
        'multipart/form-data; x="a;b"; =; boundary=XyZ',
        "multipart/form-data;;boundary=XyZ",
    ):
        # (RFC 2046 5.1.1: a part's headers may end it, without a blank line.)
        assert parse_form(content_type, body, 10) == ({"a": [""]}, {})
    assert media_type('text/plain; a="never closed; b=1') == ("text/plain", {})


# ------------------------------------------------ from a second review


def test_charset_names_a_client_makes_up_are_not_kept_for_good() -> None:
    # The encodings package caches every name codecs.lookup() is asked for,
    # found or not, for the life of the process: 1000 parts naming 1000 new
    # charsets grew the server by ~1.1 MiB per 1 MiB request, for good.
    import encodings

    before = len(encodings._cache)  # type: ignore[attr-defined]
    for r in range(3):
        body = (
            b"".join(
                b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n'
                b"Content-Type: text/plain; charset=x%d-%d-%s\r\n\r\nv\r\n" % (r, i, b"q" * 200)
                for i in range(300)
            )
            + b"--XyZ--"
        )
        assert parse_form(MULTIPART, body, 1000)[0].getlist("a") == ["v"] * 300
        parse_form(f"{URLENCODED}; charset=made-up-{r}", b"a=b", 10)
    assert len(encodings._cache) - before < 10  # type: ignore[attr-defined]


def test_a_huge_charset_field_is_not_kept_in_a_cache() -> None:
    # A cache of charsets by name kept the _charset_ field's whole value.
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(16):
            name = b"utf-8" + b"-" * (256 * 1024) + b"x%d" % i
            body = b'--XyZ\r\nContent-Disposition: form-data; name="_charset_"\r\n\r\n' + name
            parse_form(MULTIPART, body + b"\r\n--XyZ--", 10)
            del body, name
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert kept < 1 << 20, kept


def test_escape_codecs_are_no_charsets() -> None:
    # charset=unicode_escape turned a client's "\u0041" into "A".
    for charset in ("unicode_escape", "raw-unicode-escape"):
        fields = parse_form(f"{URLENCODED}; charset={charset}", b"a=%5Cu0041", 10)[0]
        assert fields == {"a": ["\\u0041"]}


@settings(max_examples=300, deadline=None)
@given(
    st.binary()
    | st.lists(st.sampled_from([b"%", b"4", b"1", b"e", b"G", b"\\", b"x"])).map(b"".join)
)
def test_percent_decoding_is_urllibs(raw: bytes) -> None:
    assert _percent_decode(raw) == unquote_to_bytes(raw)


def test_percent_decoding_across_its_pieces() -> None:
    # (It works 64 KiB at a time: an escape on the seam stays whole.)
    for shift in range(4):
        raw = b"a" * (65536 - shift) + b"%41%4" + b"\\%5c" * 10_000 + b"%"
        assert _percent_decode(raw) == unquote_to_bytes(raw)


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=64),
    st.sampled_from(["tis-620", "cp1253", "latin-1", "cp437", "utf-8", "shift_jis", "koi8-r"]),
)
def test_decoding_is_pythons_with_replacement(raw: bytes, codec: str) -> None:
    assert _decode(raw, _codec(codec)) == raw.decode(codec, "replace")


def test_filename_star_is_percent_decoded_as_before() -> None:
    body = (
        b"--XyZ\r\nContent-Disposition: form-data; name=f; filename*=iso-8859-1''"
        b"%E9%zz%4%%41.txt\r\n\r\nx\r\n--XyZ--"
    )
    assert parse_form(MULTIPART, body, 10)[1].get("f").filename == "\xe9%zz%4%A.txt"


def test_a_part_has_at_most_32_header_lines_and_a_value_32_parameters() -> None:
    def part(lines: int) -> bytes:
        head = b'Content-Disposition: form-data; name="a"\r\n' + b"x-a: 1\r\n" * (lines - 1)
        return b"--XyZ\r\n" + head + b"\r\nv\r\n--XyZ--"

    assert parse_form(MULTIPART, part(32), 10)[0] == {"a": ["v"]}
    with pytest.raises(BadRequest, match="too many headers"):
        parse_form(MULTIPART, part(33), 10)
    params = "".join(f"; p{n}=x" for n in range(31))
    assert media_type(f"form-data{params}; name=a")[1]["name"] == "a"
    assert "name" not in media_type(f"form-data{params}; p=x; name=a")[1]


def test_encode_form_refuses_a_content_type_of_two_lines() -> None:
    with pytest.raises(ValueError, match="one line"):
        encode_form([], [("f", UploadedFile("a.txt", "text/plain\r\nX-Injected: 1", b"x"))])


def test_a_part_header_not_in_utf_8_without_a_charset_is_read_as_latin_1() -> None:
    # An old client (or curl in a latin-1 shell) writes a file name's bytes as
    # they are, with no charset said: they became U+FFFD each, two names that
    # differ by those letters the same name. Read as latin-1 (as Starlette
    # does), the name keeps its letters; UTF-8 names are read as before.
    head = b'Content-Disposition: form-data; name="f"; filename="caf\xe9 \xfc.txt"'
    body = multipart(
        head + b"\r\n\r\nx", field("caf\xe9", b"v").replace(b"caf\xc3\xa9", b"caf\xe9")
    )
    fields, files = parse_form(MULTIPART, body, 10)
    assert files.get("f").filename == "café ü.txt"
    assert fields == {"café": ["v"]}
    body = multipart('Content-Disposition: form-data; name="f"; filename="é.txt"\r\n\r\nx'.encode())
    assert parse_form(MULTIPART, body, 10)[1].get("f").filename == "é.txt"
    # A field's content is not a header: what does not decode is still U+FFFD.
    assert parse_form(MULTIPART, multipart(field("a", b"\xe9")), 10)[0] == {"a": ["\ufffd"]}


async def test_a_sanic_handlers_file_name_and_type_say_what_to_read(
    run_server: StartServer,
) -> None:
    # Sanic's request.files gives File(type, body, name): a handler ported
    # from it reads upload.name and upload.type, which were a bare
    # "'UploadedFile' object has no attribute 'name'"; the error names
    # filename and content_type now (hasattr() still says False).
    routes = Router()

    @routes.post("/upload")
    async def upload(request: Request) -> Any:
        picture = request.files.get("picture")
        assert picture is not None
        said = {}
        for name in ("name", "type", "nothing"):
            try:
                getattr(picture, name)
            except AttributeError as exc:
                said[name] = str(exc)
        return json({"said": said, "has_name": hasattr(picture, "name")})

    server = await run_server(routes)
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"http://127.0.0.1:{server.port}/upload",
            files={"picture": ("cat.png", b"\x89PNG", "image/png")},
        )
    said = answer.json()["said"]
    assert answer.json()["has_name"] is False
    assert "filename" in said["name"] and "Sanic" in said["name"]
    assert "content_type" in said["type"] and "Sanic" in said["type"]
    assert said["nothing"] == "'UploadedFile' object has no attribute 'nothing'"
