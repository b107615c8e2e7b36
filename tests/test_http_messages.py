"""HTTP messages (sans-I/O): Headers, Response, and the one writer of responses."""

from __future__ import annotations

import h11
import pytest

from wsserver.app.response import json_response, stream
from wsserver.protocol import http as http_module
from wsserver.protocol.http import (
    Response,
    error_response,
    raw_field,
    render_response,
    request_field,
    split_absolute_form,
)

from .test_handshake import assert_complete_error, parse_response


def request_state(method: bytes = b"GET", extra: bytes = b"") -> h11.Connection:
    """A server's h11 state machine that has received one request (without a body)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(method + b" / HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
    assert type(conn.next_event()) is h11.Request
    return conn


def rendered(
    status: int, message: str | None = None, headers: list[tuple[str, str]] | None = None
) -> bytes:
    """An error response as sent: closing the connection."""
    return render_response(request_state(), error_response(status, message, headers), close=True)


def test_error_response_format() -> None:
    raw = rendered(404, "Not here", [("X-Extra", "1")])
    assert raw.startswith(b"HTTP/1.1 404 Not Found\r\n")
    headers = assert_complete_error(raw, 404)
    assert headers["X-Extra"] == "1"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert parse_response(raw)[2] == b"Not here\n"


def test_error_response_default_body_and_utf8_length() -> None:
    raw = rendered(503)
    assert raw.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert parse_response(raw)[2] == b"Service Unavailable\n"
    raw = rendered(400, "café ☕")
    assert_complete_error(raw, 400)
    assert parse_response(raw)[2] == "café ☕\n".encode()


def test_bytes_body_and_own_content_type() -> None:
    response = Response(b'{"e":1}', 400, [("Content-Type", "application/json")])
    raw = render_response(request_state(), response, close=True)
    headers = assert_complete_error(raw, 400)
    assert headers.getall("Content-Type") == ["application/json"]
    assert parse_response(raw)[2] == b'{"e":1}'


def test_header_values_beyond_ascii_are_sent_as_latin_1_and_beyond_that_refused() -> None:
    # "café" was accepted, then h11 failed to encode it when sending: a 500.
    response = Response("x", headers={"Content-Disposition": 'inline; filename="café.txt"'})
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_event()
    data = render_response(conn, response)
    assert b'\r\nContent-Disposition: inline; filename="caf\xe9.txt"\r\n' in data
    with pytest.raises(ValueError, match="latin-1"):
        Response("x", headers={"X-Arrow": "→"})
    with pytest.raises(ValueError, match="header"):
        Response("x", headers={"Bad Name": "v"})
    for value in ("bar ", " bar", "\tbar"):  # (h11 refuses these at sending)
        with pytest.raises(ValueError, match="header"):
            Response("x", headers={"X-A": value})
    Response("x", headers={"X-A": "", "X-B": "a b\tc"})


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_carry_no_content_length_and_no_body(status: int) -> None:
    # (RFC 9110 8.6: a 204 MUST NOT have one; a 304's would be the length of
    # the body it stands for, not 0.) A body with them failed when sent: 500.
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_event()
    data = render_response(conn, Response(b"", status))
    assert data.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"content-length" not in data.lower()
    assert conn.our_state is h11.DONE
    with pytest.raises(ValueError, match="no body"):
        Response("hello", status)


def test_a_205_has_no_content_and_says_so_with_a_zero_length() -> None:
    # RFC 9110 15.3.6: a server MUST NOT generate content in a 205 (Reset
    # Content); its end is a Content-Length of 0. text("hi", 205) sent "hi".
    with pytest.raises(ValueError, match="no body"):
        Response("hi", 205)
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_event()
    data = render_response(conn, Response(b"", 205))
    assert data.startswith(b"HTTP/1.1 205 ") and data.endswith(b"Content-Length: 0\r\n\r\n")
    with pytest.raises(ValueError, match="not 205"):
        stream(["hi"], 205)


def test_a_content_length_given_to_a_204_is_left_out_one_given_to_a_304_kept() -> None:
    # RFC 9110 8.6: a 204 has none; a 304's is the length of what it stands for.
    for status, kept in ((204, False), (304, True)):
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.next_event()
        data = render_response(conn, Response(b"", status, {"Content-Length": "5"}))
        assert (b"Content-Length: 5\r\n" in data) is kept, data
        assert conn.our_state is h11.DONE


def test_unknown_status_has_a_reason_phrase_too() -> None:
    assert rendered(599, "x").startswith(b"HTTP/1.1 599 Unknown\r\n")


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        (413, b"Content Too Large"),
        (414, b"URI Too Long"),
        (416, b"Range Not Satisfiable"),
        (422, b"Unprocessable Content"),
    ],
)
def test_reason_phrases_are_rfc_9110s(status: int, phrase: bytes) -> None:
    # Python 3.11's http.HTTPStatus still has RFC 7231's names for these four.
    assert rendered(status, "x").startswith(b"HTTP/1.1 %d %s\r\n" % (status, phrase))


def test_every_response_carries_its_reason_phrase() -> None:
    raw = render_response(request_state(), Response("hi"))
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize(
    "header",
    [("X-A", "a\r\nSet-Cookie: evil=1"), ("X-A", "a\nb"), ("X-A", "a\rb"), ("X\r\nB", "v")],
)
def test_response_refuses_crlf_in_headers(header: tuple[str, str]) -> None:
    with pytest.raises(ValueError):
        error_response(400, "x", [header])
    with pytest.raises(ValueError):
        Response("x", 200, [header])


def test_keep_alive_after_a_response() -> None:
    conn = request_state()
    raw = render_response(conn, Response("hi"))
    assert parse_response(raw)[2] == b"hi"
    assert (conn.our_state, conn.their_state) == (h11.DONE, h11.SEND_BODY)
    assert type(conn.next_event()) is h11.EndOfMessage
    assert (conn.our_state, conn.their_state) == (h11.DONE, h11.DONE)


def test_close_ends_the_connection() -> None:
    conn = request_state()
    render_response(conn, Response("bye"), close=True)
    assert conn.our_state is h11.MUST_CLOSE


def test_head_leaves_out_the_body_but_keeps_its_length() -> None:
    raw = render_response(request_state(b"HEAD"), Response("twelve bytes"), head=True)
    status, headers, body = parse_response(raw)
    assert (status, headers["Content-Length"], body) == (200, "12", b"")


def test_an_error_before_any_request_is_rendered_too() -> None:
    # A malformed request line: h11 has seen no request, and can still answer.
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"NOT HTTP\r\n\r\n")
    with pytest.raises(h11.RemoteProtocolError):
        conn.next_event()
    raw = render_response(conn, error_response(400, "Bad request"), close=True)
    assert_complete_error(raw, 400)


def test_a_body_that_does_not_match_its_length_is_refused() -> None:
    conn = request_state()
    with pytest.raises(h11.LocalProtocolError):
        render_response(conn, Response("too long", 200, [("Content-Length", "3")]))


# ------------------------------------------------- received headers, shared


def test_request_field_decodes_checks_and_shares_what_repeats() -> None:
    upgrade = request_field(b"upgrade", b"websocket")
    assert upgrade == ("upgrade", "websocket")
    # Built from other bytes objects (as every request's are): the same pair.
    assert request_field(b"".join([b"up", b"grade"]), b"".join([b"web", b"socket"])) is upgrade
    # Names are shared; per-connection values are not kept.
    key1 = request_field(b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ==")
    key2 = request_field(b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ==")
    assert key1 == key2 == ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    assert key1 is not key2 and key1[0] is key2[0]
    # Secrets are never kept between requests (a subprotocol may be a token).
    for name in (b"authorization", b"cookie", b"sec-websocket-protocol"):
        assert request_field(name, b"secret-value") == (name.decode(), "secret-value")
    assert not [k for k in http_module._FIELDS if k[1] == b"secret-value"]
    # Invalid values are refused, shared header or not, and not kept.
    for name in (b"user-agent", b"x-thing"):
        assert request_field(name, b"a\x01b") is None
    assert (b"user-agent", b"a\x01b") not in http_module._FIELDS
    assert request_field(b"x-thing", b"a\tb") == ("x-thing", "a\tb")  # a tab may
    # Long values and names are not kept.
    long = b"x" * 300
    assert request_field(b"user-agent", long) is not request_field(b"user-agent", long)
    name = b"x-" + b"n" * 200_000
    assert request_field(name, b"v") == (name.decode(), "v")
    assert name not in http_module._NAMES


def test_the_shared_fields_are_bounded() -> None:
    for i in range(5000):
        assert request_field(b"host", b"h%d" % i) == ("host", f"h{i}")
        assert request_field(b"x-name-%d" % i, b"v") == (f"x-name-{i}", "v")
        assert raw_field("origin", f"o{i}") == (b"origin", b"o%d" % i)
    assert 0 < len(http_module._FIELDS) <= 1024
    assert 0 < len(http_module._NAMES) <= 1024
    assert 0 < len(http_module._RAW_FIELDS) <= 1024


def test_raw_field_shares_what_repeats() -> None:
    pair = raw_field("upgrade", "websocket")
    assert pair == (b"upgrade", b"websocket")
    assert raw_field("upgrade", "".join(["web", "socket"])) is pair
    assert raw_field("sec-websocket-key", "abc") == (b"sec-websocket-key", b"abc")
    assert raw_field("x-thing", "é") == (b"x-thing", "é".encode("latin-1"))


@pytest.mark.parametrize(
    ("target", "split"),
    [
        (b"/a?b", None),
        (b"*", None),
        (b"http://h:8080/a?b=1", (b"h:8080", b"/a?b=1")),
        (b"HtTpS://H", (b"H", b"/")),
        (b"http://h?q=/x", (b"h", b"/?q=/x")),
        (b"ws://h/", None),  # not an http URI: routed as it is (and found by no route)
    ],
)
def test_split_absolute_form(target: bytes, split: tuple[bytes, bytes] | None) -> None:
    assert split_absolute_form(target) == split


@pytest.mark.parametrize(
    "target", [b"http://", b"http:///a", b"https://u:p@h/", b"http://?x", b"http://a#frag"]
)
def test_split_absolute_form_refuses_no_host_and_userinfo(target: bytes) -> None:
    with pytest.raises(ValueError):
        split_absolute_form(target)


def test_json_refuses_what_json_cannot_say() -> None:
    # json({"x": float("nan")}) sent {"x": NaN}, which no JSON parser of a
    # browser takes (RFC 8259 6); Starlette's JSONResponse raises too.
    for value in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError):
            json_response({"x": value})
    assert json_response({"x": 1.5}).body == b'{"x": 1.5}'
