"""A Router's static files (``routes.static()``): types, conditional requests,
large files streamed, HEAD, and no way out of the directory, over real sockets."""

from __future__ import annotations

import asyncio
import email.utils
import gc
import logging
import os
import socket
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from wsserver import Request, Router, serve
from wsserver.app import static
from wsserver.response import Response, text

from .conftest import StartServer
from .helpers import open_descriptors_of, slow_reader, wait_for
from .prefix_proxy import PrefixProxy
from .test_keepalive import tls_contexts


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "app.js").write_text("let x = 'é';")
    (root / "sub" / "index.html").write_text("sub home")
    (root / "sub" / "big.bin").write_bytes(os.urandom(static.PIECE * 10 + 17))
    (root / "empty").mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    (root / "out").symlink_to(tmp_path / "secret.txt")
    (root / "in").symlink_to(root / "app.js")
    return root


async def raw_get(port: int, target: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


class TestStatic:
    async def test_files_are_served_with_their_type_and_validators(
        self, run_server: StartServer, site: Path
    ) -> None:
        routes = Router()
        routes.static("/static/", site, cache_control="max-age=60")
        server = await run_server(routes)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            r = await client.get("/static/app.js")
            assert (r.status_code, r.text) == (200, "let x = 'é';")
            assert r.headers["content-type"] == "text/javascript; charset=utf-8"
            assert r.headers["content-length"] == str(len("let x = 'é';".encode()))
            assert r.headers["cache-control"] == "max-age=60"
            etag, modified = r.headers["etag"], r.headers["last-modified"]
            for path in ("/static/", "/static/index.html"):
                r = await client.get(path)
                assert (r.status_code, r.text) == (200, "<h1>home</h1>"), path
                assert r.headers["content-type"] == "text/html; charset=utf-8"
            r = await client.get("/static/sub/")
            assert r.text == "sub home"
            # A directory without its "/": its index's relative links would
            # resolve against the parent. Redirected, the query kept.
            redirects = (("/static", "./static/"), ("/static/sub?a=1", "./sub/?a=1"))
            for path, location in redirects:
                r = await client.get(path)
                assert (r.status_code, r.headers["location"]) == (307, location)
            r = await client.get("/static/sub", follow_redirects=True)
            assert (r.status_code, r.text) == (200, "sub home")
            r = await client.get("/static/app.js/")  # a file is no directory
            assert r.status_code == 404
            r = await client.get("/static/in")  # a link within the directory
            assert r.text == "let x = 'é';"
            # Its type is the name asked for's, as nginx's and Starlette's
            # (it was the target's: text/javascript).
            (site / "notes.txt").symlink_to(site / "app.js")
            r = await client.get("/static/notes.txt")
            assert r.text == "let x = 'é';"
            assert r.headers["content-type"] == "text/plain; charset=utf-8"
            # Conditional requests: the client has this version.
            r = await client.get("/static/app.js", headers={"If-None-Match": f"W/{etag}, x"})
            assert (r.status_code, r.content, r.headers["etag"]) == (304, b"", etag)
            r = await client.get("/static/app.js", headers={"If-Modified-Since": modified})
            assert r.status_code == 304
            # If-None-Match decides when both are there (RFC 9110 13.2.2).
            both = {"If-None-Match": '"other"', "If-Modified-Since": modified}
            r = await client.get("/static/app.js", headers=both)
            assert r.status_code == 200
            r = await client.get(
                "/static/app.js", headers={"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}
            )
            assert r.status_code == 200
            r = await client.get("/static/app.js", headers={"If-Modified-Since": "garbage"})
            assert r.status_code == 200
            # A date past datetime's years is no date either (RFC 9110 13.1.3:
            # ignored): it was an OverflowError, a 500.
            huge = "Mon, 1 Jan 99999999999999999999 00:00:00 GMT"
            for name in ("If-Modified-Since", "If-Unmodified-Since"):
                r = await client.get("/static/app.js", headers={name: huge})
                assert r.status_code == 200, name
            # The file changed: a new validator.
            (site / "app.js").write_text("changed, longer")
            r = await client.get("/static/app.js", headers={"If-None-Match": etag})
            assert (r.status_code, r.text) == (200, "changed, longer")
            assert r.headers["etag"] != etag

    async def test_a_file_dated_before_1970_in_fractions_of_a_second_is_not_modified_since_then(
        self, run_server: StartServer, site: Path
    ) -> None:
        # Last-Modified is the time rounded down (23:59:58 for -1.5 s), and the
        # comparisons took it rounded towards zero (-1 s): a client giving back
        # the Last-Modified it was sent never got its 304, and one sending it
        # as If-Unmodified-Since always got a 412. (A file whose time an
        # archive or a build set so; the time of a file is its own.)
        os.utime(site / "app.js", (-1.5, -1.5))
        routes = Router()
        routes.static("/static/", site)
        server = await run_server(routes)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            r = await client.get("/static/app.js")
            modified = r.headers["last-modified"]
            assert modified == "Wed, 31 Dec 1969 23:59:58 GMT"
            r = await client.get("/static/app.js", headers={"If-Modified-Since": modified})
            assert r.status_code == 304
            r = await client.get("/static/app.js", headers={"If-Unmodified-Since": modified})
            assert (r.status_code, r.text) == (200, "let x = 'é';")

    async def test_a_name_like_a_data_url_is_typed_by_its_extension(
        self, run_server: StartServer, site: Path
    ) -> None:
        # The type was mimetypes.guess_type()'s of the path asked for, which
        # reads a URL: "data:text/html,x.png" (a directory "data:text", say a
        # user's uploads) was a data: URL of type text/html (a picture served
        # as a page: its script run on this site), "data:,x.png" text/plain.
        (site / "data:text").mkdir()
        (site / "data:text" / "html,x.png").write_bytes(b"<script>alert(1)</script>")
        (site / "data:,x.png").write_bytes(b"\x89PNG")
        routes = Router()
        routes.static("/static", site)
        routes.static("/one.png", site / "data:,x.png")
        server = await run_server(routes)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            for path in ("/static/data:text/html,x.png", "/static/data:,x.png", "/one.png"):
                r = await client.get(path)
                assert r.status_code == 200, path
                assert r.headers["content-type"] == "image/png", path

    async def test_hosts_given_once_over_are_the_mount_s_own_path_s_too(
        self, run_server: StartServer, site: Path
    ) -> None:
        # static() adds two routes (the files, the mount's own path): hosts
        # given as a generator (read once) went to the first only, and the
        # mount's own path was for no host (404 wherever asked).
        routes = Router()
        routes.static("/static", site, host=(h for h in ["a.example", "b.example"]))
        assert [route.hosts for route in routes.routes] == [{"a.example", "b.example"}] * 2
        server = await run_server(routes)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            for host in ("a.example", "b.example"):
                r = await client.get("/static/", headers={"Host": host})
                assert (r.status_code, r.text) == (200, "<h1>home</h1>"), host
                r = await client.get("/static/app.js", headers={"Host": host})
                assert r.status_code == 200, host
            r = await client.get("/static/", headers={"Host": "c.example"})
            assert r.status_code == 404

    async def test_a_file_from_the_future_is_last_modified_now(
        self, run_server: StartServer, site: Path
    ) -> None:
        # RFC 9110 8.8.2.1: never a Last-Modified later than the Date (a clock
        # skewed on the machine that made the file): it was its mtime, 2033.
        future = 2_000_000_000
        os.utime(site / "app.js", (future, future))
        routes = Router()
        routes.static("/static/", site)
        server = await run_server(routes)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            r = await client.get("/static/app.js")
            modified = email.utils.parsedate_to_datetime(r.headers["last-modified"])
            assert modified <= email.utils.parsedate_to_datetime(r.headers["date"])
            # (Its ETag, from its mtime, still tells this version from others.)
            r = await client.get("/static/app.js", headers={"If-None-Match": r.headers["etag"]})
            assert r.status_code == 304

    async def test_a_large_file_is_streamed_whole(
        self, run_server: StartServer, site: Path
    ) -> None:
        routes = Router()
        routes.static("/files", site)
        server = await run_server(routes, write_limit=16384)
        big = (site / "sub" / "big.bin").read_bytes()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            async with client.stream("GET", "/files/sub/big.bin") as r:
                assert r.headers["content-length"] == str(len(big))
                assert "transfer-encoding" not in r.headers
                assert r.headers["content-type"] == "application/octet-stream"
                pieces = [piece async for piece in r.aiter_raw()]
            assert b"".join(pieces) == big
            r = await client.head("/files/sub/big.bin")
            assert (r.status_code, r.content) == (200, b"")
            assert r.headers["content-length"] == str(len(big))
            r = await client.head("/files/app.js")
            size = str(len("let x = 'é';".encode()))
            assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", size)

    async def test_nothing_outside_the_directory_is_reached(
        self, run_server: StartServer, site: Path
    ) -> None:
        routes = Router()
        routes.static("/static", site)
        server = await run_server(routes)
        for target in (
            "/static/../secret.txt",
            "/static/%2e%2e/secret.txt",
            "/static/sub/../../secret.txt",
            "/static/%2E%2E%2Fsecret.txt",
            "/static/..%5csecret.txt",
            "/static/out",  # a link to a file outside
            "/static/./app.js",
            "/static/app.js%00.png",
            "/static/empty",  # a directory without an index
            "/static/missing.txt",
        ):
            data = await raw_get(server.port, target)
            assert data.startswith(b"HTTP/1.1 404 "), (target, data[:80])
            assert b"secret" not in data.partition(b"\r\n\r\n")[2], target

    async def test_a_file_replaced_while_sent_is_sent_as_it_was(
        self, run_server: StartServer, site: Path
    ) -> None:
        # Described by its name, then opened later: a deploy replacing it in
        # between got the old version's ETag and length with the new body.
        routes = Router()
        routes.static("/files", site)
        server = await run_server(routes, write_limit=16384)
        old = (site / "sub" / "big.bin").read_bytes()
        # The reads wait for the executor's one thread, busy: the file is
        # replaced after the head went out, before the first read.
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        gate = threading.Event()
        busy = loop.run_in_executor(None, gate.wait, 10)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            async with client.stream("GET", "/files/sub/big.bin") as r:
                new = site / "sub" / "big.new"
                new.write_bytes(b"version 2" * 100)
                os.replace(new, site / "sub" / "big.bin")  # an atomic deploy, mid-response
                gate.set()
                body = b"".join([piece async for piece in r.aiter_raw()])
            await busy
            assert (int(r.headers["content-length"]), body) == (len(old), old)
            r = await client.get("/files/sub/big.bin")
            assert r.content == b"version 2" * 100

    async def test_what_is_no_regular_file_is_404_without_waiting(
        self, run_server: StartServer, site: Path
    ) -> None:
        # A FIFO: opened for reading, it would wait for a writer, and hold the
        # event loop (and every connection) meanwhile.
        os.mkfifo(site / "pipe")
        routes = Router()
        routes.static("/files", site)
        server = await run_server(routes)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            r = await asyncio.wait_for(client.get("/files/pipe"), 5)
            assert r.status_code == 404

    async def test_a_directory_redirect_stays_on_this_site(
        self, run_server: StartServer, site: Path
    ) -> None:
        routes = Router()
        routes.static("/", site)
        server = await run_server(routes)
        data = await raw_get(server.port, "//sub")
        assert data.startswith(b"HTTP/1.1 307 "), data
        assert b"\r\nLocation: ./sub/\r\n" in data  # (not //sub/: another host)

    async def test_a_directory_redirect_works_behind_a_proxy_s_path_prefix(
        self, run_server: StartServer, site: Path
    ) -> None:
        # Served at /app/ by a reverse proxy that strips the prefix (nginx's
        # "location /app/ { proxy_pass http://up/; }"), /app/static/sub came
        # as /static/sub and was sent to /static/sub/, a path the proxy does
        # not forward (a 404). A relative Location resolves against the URL
        # the client asked for, whatever the prefix.
        routes = Router()
        routes.static("/static", site)
        server = await run_server(routes)
        async with PrefixProxy(server.port, "/app/") as proxy, httpx.AsyncClient() as client:
            for path, body in (("static/sub?a=1", "sub home"), ("static", "<h1>home</h1>")):
                r = await client.get(proxy.url + path, follow_redirects=True)
                assert (r.status_code, r.text) == (200, body), (path, r.url)
            r = await client.get(proxy.url + "static/sub?a=1")
            assert (r.status_code, r.headers["location"]) == (307, "./sub/?a=1")
        # A last segment with a colon is not read as a scheme ("a:b/").
        (site / "a:b").mkdir()
        (site / "a:b" / "index.html").write_text("colon")
        data = await raw_get(server.port, "/static/a:b")
        assert b"\r\nLocation: ./a:b/\r\n" in data, data

    async def test_routes_added_before_are_tried_first(
        self, run_server: StartServer, site: Path
    ) -> None:
        routes = Router()

        @routes.get("/health")
        async def health(request: Request) -> Response:
            return text("ok")

        routes.static("/", site, index=None)
        server = await run_server(routes)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/health")).text == "ok"
            assert (await client.get("/app.js")).status_code == 200
            assert (await client.get("/")).status_code == 404  # (no index)
            assert (await client.post("/app.js")).status_code == 405

    async def test_the_mount_s_own_path_serves_its_index_with_strict_slashes(
        self, run_server: StartServer, site: Path
    ) -> None:
        # Router(strict_slashes=True): /static was redirected to /static/,
        # which no route matched (<path> wants a character): a 404.
        routes = Router(strict_slashes=True)
        routes.static("/static", site)
        server = await run_server(routes)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            r = await client.get("/static")
            assert (r.status_code, r.headers["location"]) == (307, "./static/")
            r = await client.get("/static/")
            assert (r.status_code, r.text) == (200, "<h1>home</h1>")
            assert (await client.get("/static/sub/")).text == "sub home"

    async def test_a_directory_switched_by_a_link_serves_the_new_release(
        self, run_server: StartServer, tmp_path: Path
    ) -> None:
        # Deploys that switch a "current" link to the new release (Capistrano,
        # Deployer): the link was resolved once, at start, and the old
        # release went on being served (then 404s once it was removed).
        for release in ("rel1", "rel2"):
            (tmp_path / release).mkdir()
            (tmp_path / release / "v.txt").write_text(release)
        current = tmp_path / "current"
        current.symlink_to(tmp_path / "rel1")
        routes = Router()
        routes.static("/s", current)
        server = await run_server(routes)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/s/v.txt")).text == "rel1"
            switched = tmp_path / "current.new"
            switched.symlink_to(tmp_path / "rel2")
            switched.replace(current)  # (atomic: ln -sfn)
            assert (await client.get("/s/v.txt")).text == "rel2"
            assert (await client.get("/s/../rel1/v.txt")).status_code == 404

    def test_a_directory_or_a_file_is_required(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="is not a directory or a file"):
            Router().static("/s", tmp_path / "missing")
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        with pytest.raises(ValueError, match="is not a directory or a file"):
            Router().static("/s", fifo)
        with pytest.raises(ValueError, match="Cache-Control"):
            (tmp_path / "f").write_text("x")
            Router().static("/f", tmp_path / "f", cache_control="a\r\nX-Evil: 1")

    async def test_one_file_is_served_at_the_mount_s_own_path(
        self, run_server: StartServer, tmp_path: Path
    ) -> None:
        # routes.static("/favicon.ico", "favicon.ico"), as Sanic's static()
        # takes a file: it was a ValueError ("is not a directory").
        icon = tmp_path / "favicon.ico"
        icon.write_bytes(b"\x00\x00\x01\x00" + os.urandom(300))
        (tmp_path / "robots.txt").write_text("User-agent: *\n")
        routes = Router()
        routes.static("/favicon.ico", icon, name="icon", cache_control="max-age=86400")
        routes.static("/robots.txt/", tmp_path / "robots.txt")  # (served at /robots.txt)
        server = await run_server(routes)
        assert routes.url_for("icon") == "/favicon.ico"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            r = await client.get("/favicon.ico")
            assert (r.status_code, r.content) == (200, icon.read_bytes())
            assert r.headers["content-type"] == "image/vnd.microsoft.icon"
            assert r.headers["cache-control"] == "max-age=86400"
            assert r.headers["content-length"] == "304"
            etag = r.headers["etag"]
            r = await client.get("/favicon.ico", headers={"If-None-Match": etag})
            assert (r.status_code, r.content) == (304, b"")
            r = await client.get("/favicon.ico", headers={"Range": "bytes=0-3"})
            assert (r.status_code, r.content) == (206, b"\x00\x00\x01\x00")
            r = await client.head("/favicon.ico")
            assert (r.status_code, r.headers["content-length"], r.content) == (200, "304", b"")
            r = await client.get("/robots.txt")
            assert (r.status_code, r.text) == (200, "User-agent: *\n")
            assert r.headers["content-type"] == "text/plain; charset=utf-8"
            for path in ("/favicon.ico/x", "/robots.txt/x", "/"):
                assert (await client.get(path)).status_code == 404, path
            assert (await client.post("/favicon.ico")).status_code == 405

    async def test_one_file_switched_by_a_link_or_removed_is_found_again(
        self, run_server: StartServer, tmp_path: Path
    ) -> None:
        # Its name is looked up at each request, as a directory's: the new
        # version after a deploy, a 404 (not a 500) once it is gone.
        for version in ("v1", "v2"):
            (tmp_path / f"{version}.css").write_text(f"/* {version} */")
        current = tmp_path / "site.css"
        current.symlink_to(tmp_path / "v1.css")
        routes = Router()
        routes.static("/site.css", current)
        server = await run_server(routes)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            r = await client.get("/site.css")
            assert (r.text, r.headers["content-type"]) == ("/* v1 */", "text/css; charset=utf-8")
            switched = tmp_path / "site.css.new"
            switched.symlink_to(tmp_path / "v2.css")
            switched.replace(current)
            assert (await client.get("/site.css")).text == "/* v2 */"
            current.unlink()
            assert (await client.get("/site.css")).status_code == 404
            current.mkdir()  # (no regular file: nothing to send)
            assert (await client.get("/site.css")).status_code == 404

    def test_a_uri_with_a_parameter_is_refused(self, tmp_path: Path, site: Path) -> None:
        # It was a TypeError about a handler the user never wrote
        # ("static_handler.<locals>.static_files(...) cannot be called as
        # static_files(request, lang, path)"), and nothing says a ValueError.
        for uri in ("/<lang>/static", "/s/<n:int>"):
            for where in (site, site / "app.js"):
                with pytest.raises(ValueError, match="without parameters") as caught:
                    Router().static(uri, where)
                assert repr(uri) in str(caught.value)

    def test_a_malformed_cache_control_is_refused_when_the_route_is_added(
        self, tmp_path: Path
    ) -> None:
        # Refused per request, it was a 500 each time (with the file opened
        # and left to the garbage collector to close).
        with pytest.raises(ValueError, match="Cache-Control"):
            Router().static("/s", tmp_path, cache_control="max-age=60\r\nX-Evil: 1")

    async def test_a_mount_that_clashes_adds_nothing(
        self, run_server: StartServer, site: Path
    ) -> None:
        # static() adds two routes, the files' and the mount's own path: a
        # clash of the second (a page already at /static) raised ValueError
        # with the first left in, so the files were served after all, and a
        # second try with the same name= said "a route named 'assets' already
        # exists". Nothing is added now, as include() adds nothing then.
        routes = Router()

        @routes.get("/static")
        async def page(request: Request) -> Response:
            return text("page")

        with pytest.raises(ValueError, match="would never be reached"):
            routes.static("/static", site, name="assets")
        assert [route.uri for route in routes.routes] == ["/static"]
        with pytest.raises(KeyError):
            routes.url_for("assets")
        routes.static("/static", site, name="assets", index=None)  # (the name is free)
        server = await run_server(routes)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/static")).text == "page"
            assert (await client.get("/static/app.js")).status_code == 200


class TestRanges:
    """``Range`` on a GET (RFC 9110 14): one byte range, ``206``; past the end, ``416``."""

    async def test_one_range_is_sent_as_206(self, run_server: StartServer, site: Path) -> None:
        routes = Router()
        routes.static("/files", site)
        server = await run_server(routes, write_limit=16384)
        big = (site / "sub" / "big.bin").read_bytes()
        size = len(big)
        cases = {
            "bytes=0-9": (0, 9),
            "bytes=10-10": (10, 10),
            f"bytes={size - 10}-": (size - 10, size - 1),
            "bytes=-5": (size - 5, size - 1),
            f"bytes=-{size + 100}": (0, size - 1),  # (more than there is: all of it)
            f"bytes={static.PIECE - 3}-{static.PIECE * 7 + 2}": (
                static.PIECE - 3,
                static.PIECE * 7 + 2,
            ),  # across pieces, starting in one
            f"bytes=100-{size * 2}": (100, size - 1),  # (the end past the file's)
            "Bytes=0-0": (0, 0),  # (the unit is case-insensitive)
            "bytes=0-": (0, size - 1),  # (a browser's media request)
        }
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            for value, (first, last) in cases.items():
                r = await client.get("/files/sub/big.bin", headers={"Range": value})
                assert r.status_code == 206, value
                assert r.headers["content-range"] == f"bytes {first}-{last}/{size}", value
                assert r.headers["content-length"] == str(last - first + 1), value
                assert r.content == big[first : last + 1], value
                assert r.headers["content-type"] == "application/octet-stream"
                assert "etag" in r.headers and "last-modified" in r.headers
            # The whole file says it takes ranges.
            r = await client.get("/files/sub/big.bin")
            assert (r.status_code, r.headers["accept-ranges"]) == (200, "bytes")

    async def test_a_range_past_the_end_is_416(self, run_server: StartServer, site: Path) -> None:
        routes = Router()
        routes.static("/files", site, cache_control="public, max-age=31536000")
        server = await run_server(routes)
        size = len("let x = 'é';".encode())
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            for value in (f"bytes={size}-", f"bytes={size + 5}-{size + 9}", "bytes=-0"):
                r = await client.get("/files/app.js", headers={"Range": value})
                assert r.status_code == 416, value
                assert r.headers["content-range"] == f"bytes */{size}", value
                # Nothing that would let a cache keep the error for the file.
                for name in ("cache-control", "etag", "last-modified"):
                    assert name not in r.headers, (value, name)
            # The connection goes on after it.
            r = await client.get("/files/app.js", headers={"Range": "bytes=0-2"})
            assert (r.status_code, r.content) == (206, b"let")

    async def test_what_is_not_served_as_a_range_is_the_whole_file(
        self, run_server: StartServer, site: Path
    ) -> None:
        (site / "nothing.txt").write_bytes(b"")
        routes = Router()
        routes.static("/files", site)
        server = await run_server(routes)
        whole = "let x = 'é';".encode()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            for value in (
                "bytes=0-1,4-5",  # several ranges
                "items=0-1",  # another unit
                "bytes=5-2",  # last before first
                "bytes=40-30",  # (the same, past the end: invalid before unsatisfiable)
                "bytes=-",
                "bytes=a-b",
                "bytes=0x1-2",
                "bytes= 0-1 ,",
                "bytes=\u0661-2",  # (a digit of another script: no number here)
                "bytes=" + "9" * 30 + "-",
            ):
                r = await client.get("/files/app.js", headers={"Range": value.encode()})
                assert (r.status_code, r.content) == (200, whole), value
                assert "content-range" not in r.headers, value
            # Two Range lines make one list (RFC 9110 5.3): two ranges.
            twice = [("Range", "bytes=0-1"), ("Range", "bytes=5-6")]
            r = await client.get("/files/app.js", headers=twice)
            assert (r.status_code, r.content) == (200, whole)
            # An empty file has no range to send.
            r = await client.get("/files/nothing.txt", headers={"Range": "bytes=-1"})
            assert (r.status_code, r.content) == (200, b"")
            # HEAD: ranges are a GET's (RFC 9110 14.2).
            r = await client.head("/files/app.js", headers={"Range": "bytes=0-1"})
            assert (r.status_code, r.headers["content-length"]) == (200, str(len(whole)))
            assert r.headers["accept-ranges"] == "bytes"

    async def test_if_range_sends_the_range_only_of_the_version_it_names(
        self, run_server: StartServer, site: Path
    ) -> None:
        routes = Router()
        routes.static("/files", site)
        server = await run_server(routes)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            r = await client.get("/files/app.js")
            etag, modified = r.headers["etag"], r.headers["last-modified"]
            headers = {"Range": "bytes=4-4", "If-Range": etag}
            r = await client.get("/files/app.js", headers=headers)
            assert (r.status_code, r.content) == (206, b"x")
            # A weak tag never matches (a strong comparison), nor does a date,
            # even this version's: Last-Modified counts whole seconds, and a
            # rewrite within the same second would be spliced to the old copy.
            for validator in (f"W/{etag}", '"other"', modified, "Thu, 01 Jan 1970 00:00:00 GMT"):
                headers = {"Range": "bytes=4-4", "If-Range": validator}
                r = await client.get("/files/app.js", headers=headers)
                assert (r.status_code, r.text) == (200, "let x = 'é';"), validator
            r = await client.get(
                "/files/app.js",
                headers=[("Range", "bytes=4-4"), ("If-Range", etag), ("If-Range", '"other"')],
            )
            assert r.status_code == 200
            # The file changed since: the whole new version, not a piece of it.
            (site / "app.js").write_text("a new version")
            r = await client.get("/files/app.js", headers={"Range": "bytes=0-4", "If-Range": etag})
            assert (r.status_code, r.text) == (200, "a new version")
            # The client has this version: 304 comes before any range.
            etag = r.headers["etag"]
            headers = {"Range": "bytes=0-4", "If-None-Match": etag}
            r = await client.get("/files/app.js", headers=headers)
            assert r.status_code == 304

    async def test_if_match_and_if_unmodified_since_refuse_another_version(
        self, run_server: StartServer, site: Path
    ) -> None:
        # A client resuming a download says which version it has this way too
        # (RFC 9110 13.1.1, 13.1.4): 412 rather than a range of another file.
        routes = Router()
        routes.static("/files", site)
        server = await run_server(routes)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            r = await client.get("/files/app.js")
            etag, modified = r.headers["etag"], r.headers["last-modified"]
            for headers in (
                {"If-Match": etag},
                {"If-Match": f'"other", {etag}'},
                {"If-Match": "*"},
                {"If-Unmodified-Since": modified},
                {"If-Unmodified-Since": asctime(modified)},  # (RFC 9110 5.6.7: all three forms)
                {"If-Unmodified-Since": "garbage"},  # (ignored)
                {"If-Match": etag, "If-Unmodified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"},
            ):
                r = await client.get("/files/app.js", headers={"Range": "bytes=0-2", **headers})
                assert (r.status_code, r.content) == (206, b"let"), headers
            (site / "app.js").write_text("a new version")
            os.utime(site / "app.js", (1e9, 2e9))
            for headers in (
                {"If-Match": etag},
                {"If-Match": f"W/{etag}"},  # (a strong comparison)
                {"If-Unmodified-Since": modified},
                {"If-Unmodified-Since": asctime(modified)},
            ):
                r = await client.get("/files/app.js", headers={"Range": "bytes=0-2", **headers})
                assert (r.status_code, r.content[:3]) == (412, b"Pre"), headers
            r = await client.head("/files/app.js", headers={"If-Match": etag})
            assert r.status_code == 412

    async def test_a_date_condition_that_is_no_one_http_date_is_ignored(
        self, run_server: StartServer, site: Path
    ) -> None:
        # RFC 9110 13.1.3, 13.1.4: If-Modified-Since and If-Unmodified-Since
        # are ignored unless they hold one valid HTTP-date; a list of dates
        # (one field line or several) is none. The first date was taken: a
        # 304 (or a 412) that the rest of the list, or the format, undid.
        routes = Router()
        routes.static("/files", site)
        server = await run_server(routes)
        old = "Thu, 01 Jan 1970 00:00:00 GMT"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            modified = (await client.get("/files/app.js")).headers["last-modified"]
            rfc850 = email.utils.parsedate_to_datetime(modified).strftime(
                "%A, %d-%b-%y %H:%M:%S GMT"
            )
            # (All three forms are dates, RFC 9110 5.6.7.)
            for date in (modified, asctime(modified), rfc850):
                r = await client.get("/files/app.js", headers={"If-Modified-Since": date})
                assert r.status_code == 304, date
                r = await client.get("/files/app.js", headers={"If-Unmodified-Since": old})
                assert r.status_code == 412
            for headers in (
                [("If-Modified-Since", f"{modified}, {old}")],
                [("If-Modified-Since", modified), ("If-Modified-Since", old)],
                [("If-Modified-Since", f"{modified} garbage")],
                [("If-Modified-Since", modified.removesuffix(" GMT"))],  # (no zone)
                [("If-Modified-Since", modified[5:])],  # (no day name)
                [("If-Unmodified-Since", f"{old}, {modified}")],
                [("If-Unmodified-Since", old), ("If-Unmodified-Since", modified)],
                [("If-Unmodified-Since", old.replace("GMT", "+0000"))],
            ):
                r = await client.get("/files/app.js", headers=headers)
                assert (r.status_code, r.text) == (200, "let x = 'é';"), headers


def asctime(http_date: str) -> str:
    """An IMF-fixdate written in C's asctime() form (``Sun Nov  6 08:49:37 1994``)."""
    when = email.utils.parsedate_to_datetime(http_date)
    return when.strftime("%a %b ") + f"{when.day:2d}" + when.strftime(" %H:%M:%S %Y")


def sent_by_the_kernel(caplog: pytest.LogCaptureFixture) -> int:
    """How many responses' files went out with sendfile() (the DEBUG line says so)."""
    return sum("sent with sendfile()" in r.getMessage() for r in caplog.records)


async def slowly_read(client: socket.socket, address: Any, target: str) -> bytes:
    """GET ``target`` and read the answer through a small receive buffer, 16 KiB
    every 10 ms (some 1.6 MB/s), for longer than the server's 0.5 s
    timeout_keep_alive: the server's sending waits on the client all along."""
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    client.setblocking(False)
    loop = asyncio.get_running_loop()
    received = b""
    try:
        await loop.sock_connect(client, address)
        request = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        await loop.sock_sendall(client, request.encode())
        started = loop.time()
        while chunk := await asyncio.wait_for(loop.sock_recv(client, 16384), 5):
            received += chunk
            await asyncio.sleep(0.01)
        assert loop.time() - started > 1.0
    finally:
        client.close()
    return received


class TestSendfile:
    """Over plain TCP under asyncio's loop (on Linux), a file's bytes go from
    the page cache to the socket with the kernel's sendfile(), never through
    Python; with TLS (which encrypts in Python), uvloop (no sendfile()) or a
    Unix socket, in pieces read in a thread. The same bytes either way."""

    @pytest.mark.parametrize(
        ("tls", "kernel"),
        [(False, True), (True, True), (False, False)],
        ids=["tcp", "tls", "tcp-no-kernel-sendfile"],
    )
    async def test_files_and_ranges_are_sent_whole_either_way(
        self,
        run_server: StartServer,
        site: Path,
        caplog: pytest.LogCaptureFixture,
        request: pytest.FixtureRequest,
        tls: bool,
        kernel: bool,
    ) -> None:
        # (No kernel sendfile(): its file system cannot. The pieces are read
        # from where the range begins, h11 having counted them already.)
        refused = [] if kernel else request.getfixturevalue("no_kernel_sendfile")
        caplog.set_level(logging.DEBUG, logger="wsserver.protocol")
        routes = Router()
        routes.static("/files", site)
        server_tls, client_tls = tls_contexts() if tls else (None, None)
        server = await run_server(routes, write_limit=16384, ssl=server_tls)
        big = (site / "sub" / "big.bin").read_bytes()
        scheme = "https" if tls else "http"
        async with httpx.AsyncClient(
            base_url=f"{scheme}://127.0.0.1:{server.port}", verify=client_tls or True
        ) as client:
            for _ in range(2):  # (one connection: the second request finds it in step)
                r = await client.get("/files/sub/big.bin")
                assert (r.status_code, r.content) == (200, big)
            r = await client.get("/files/sub/big.bin", headers={"Range": "bytes=70000-200000"})
            assert (r.status_code, r.content) == (206, big[70000:200001])
            r = await client.get("/files/app.js")
            assert r.text == "let x = 'é';"
        if not tls and kernel and os.environ.get("WSSERVER_TEST_LOOP") != "uvloop":
            # (Logged once sent: the client may have it all a moment before.)
            await wait_for(lambda: sent_by_the_kernel(caplog) == 4, what="4 sent by the kernel")
        else:
            assert sent_by_the_kernel(caplog) == 0
        if not kernel and os.environ.get("WSSERVER_TEST_LOOP") != "uvloop":
            assert refused == [len(big), len(big), 200000 - 70000 + 1, 13]  # (asked, refused)
        await wait_for(lambda: open_descriptors_of(site / "sub" / "big.bin") == 0, what="closed")

    async def test_a_client_that_takes_nothing_is_closed(
        self, run_server: StartServer, tmp_path: Path
    ) -> None:
        # The kernel waits on the socket as long as the client does not read:
        # timeout_keep_alive without progress ends it, as for any response.
        (tmp_path / "huge.bin").write_bytes(b"x" * 32_000_000)
        routes = Router()
        routes.static("/files", tmp_path)
        server = await run_server(routes, timeout_keep_alive=1.0, close_timeout=0.5)
        client = await slow_reader(server.port)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendall(client, b"GET /files/huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(loop.sock_recv(client, 1024), 5)
            assert head.startswith(b"HTTP/1.1 200 ")
            started = loop.time()
            await wait_for(lambda: open_descriptors_of(tmp_path / "huge.bin") == 0, what="closed")
            # (Within it and an eighth, and a margin for a loaded machine: not
            # after twice that, as it was. Its connection may take
            # close_timeout more: what waits is dropped then.)
            assert 1.0 - 0.05 <= loop.time() - started < 1.8
            await wait_for(lambda: not server.connections, what="the stalled client closed")
        finally:
            client.close()

    async def test_a_client_that_reads_slowly_gets_all_of_it(
        self, run_server: StartServer, tmp_path: Path
    ) -> None:
        data = os.urandom(4_000_000)
        (tmp_path / "data.bin").write_bytes(data)
        routes = Router()
        routes.static("/files", tmp_path)
        server = await run_server(routes, timeout_keep_alive=0.5)
        client = socket.socket()
        received = await slowly_read(client, ("127.0.0.1", server.port), "/files/data.bin")
        assert received.partition(b"\r\n\r\n")[2] == data

    async def test_a_client_that_leaves_midway_closes_the_file(
        self, run_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        (tmp_path / "huge.bin").write_bytes(b"x" * 32_000_000)
        routes = Router()
        routes.static("/files", tmp_path)
        server = await run_server(routes)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /files/huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(reader.readexactly(200_000), 5)
        writer.transport.abort()
        await wait_for(lambda: not server.connections, what="the connection gone")
        await wait_for(lambda: open_descriptors_of(tmp_path / "huge.bin") == 0, what="closed")
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    async def test_a_file_that_shrinks_while_sent_cuts_the_response_short(
        self, run_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        # (Truncated in place, not replaced: the descriptor sees it shrink.)
        path = tmp_path / "log.bin"
        path.write_bytes(b"x" * 8_000_000)
        routes = Router()
        routes.static("/files", tmp_path)
        server = await run_server(routes, write_limit=16384)
        client = await slow_reader(server.port)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendall(client, b"GET /files/log.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            received = await asyncio.wait_for(loop.sock_recv(client, 4096), 5)
            os.truncate(path, 1_000_000)
            while chunk := await asyncio.wait_for(loop.sock_recv(client, 65536), 5):
                received += chunk
        finally:
            client.close()
        body = received.partition(b"\r\n\r\n")[2]
        assert b"content-length: 8000000" in received.lower()
        assert len(body) < 8_000_000  # (the client can tell: fewer bytes, then the end)
        failures = [
            r.exc_info[1] for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR
        ]
        assert len(failures) == 1, caplog.text  # (the handler's error: its file let it down)
        assert "cannot send this response" in str(failures[0])
        await wait_for(lambda: not server.connections, what="the connection closed")

    async def test_over_a_unix_socket_a_slow_client_gets_all_of_it(
        self, tmp_path: Path, socket_path: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Only TCP tells, while the kernel sends a file, that the client takes
        # it (the bytes it acknowledged): over a Unix socket the file is sent
        # in pieces, and a client that reads slowly is not cut off.
        caplog.set_level(logging.DEBUG, logger="wsserver.protocol")
        data = os.urandom(4_000_000)
        (tmp_path / "data.bin").write_bytes(data)
        routes = Router()
        routes.static("/files", tmp_path)
        async with serve(routes, uds=socket_path, ping_interval=None, timeout_keep_alive=0.5):
            client = socket.socket(socket.AF_UNIX)
            received = await slowly_read(client, socket_path, "/files/data.bin")
            assert received.partition(b"\r\n\r\n")[2] == data
        assert sent_by_the_kernel(caplog) == 0

    async def test_a_client_that_leaves_with_its_request_is_no_error(
        self, run_server: StartServer, site: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Its request and its FIN in one read (a script's "printf ... | nc -N",
        # a health check that does not wait): the transport closes as the
        # kernel's sendfile() is about to start, which fails ("Transport is
        # closing") while the handler is cancelled. Nobody took that failure:
        # asyncio logged "Task exception was never retrieved" at ERROR, with
        # its traceback, for each such client.
        loop = asyncio.get_running_loop()
        errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        routes = Router()
        routes.static("/files", site)
        server = await run_server(routes)
        for target in ("/files/app.js", "/files/sub/big.bin"):
            for _ in range(3):
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                writer.write_eof()
                await asyncio.wait_for(reader.read(), 5)
                writer.close()
        await wait_for(lambda: not server.connections, what="the connections closed")
        gc.collect()  # (a task's unretrieved failure is logged as it is freed)
        assert not errors, errors
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
        await wait_for(lambda: open_descriptors_of(site / "sub" / "big.bin") == 0, what="closed")

    async def test_a_stalled_client_behind_an_earlier_response_is_closed_at_once(
        self, run_server: StartServer, tmp_path: Path
    ) -> None:
        # The file's response begins while an earlier one still fills the
        # transport's buffer (pipelined), and the client stalls. asyncio's
        # sendfile() waited for that buffer to empty where a cancel (the stall
        # noticed at timeout_keep_alive) left the transport broken: its close
        # came only with close_timeout's abort, with asyncio's InvalidStateError
        # logged. The buffer is emptied first now, as drain() does.
        loop = asyncio.get_running_loop()
        errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        (tmp_path / "f.bin").write_bytes(b"f" * 200_000)
        routes = Router()
        routes.static("/files", tmp_path)

        @routes.get("/big")
        async def big(request: Request) -> Response:
            return Response(b"y" * 600_000)

        server = await run_server(
            routes, timeout_keep_alive=0.5, close_timeout=3.0, write_limit=4_000_000
        )
        client = await slow_reader(server.port)
        try:
            await wait_for(lambda: server.connections, what="connected")
            (protocol,) = server.connections
            sock = protocol.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            await loop.sock_sendall(
                client,
                b"GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /files/f.bin HTTP/1.1\r\nHost: x\r\n\r\n",
            )
            await asyncio.sleep(1.5)  # stalled: the server gives up after 0.5 s
            started = loop.time()
            received = b""
            while chunk := await asyncio.wait_for(loop.sock_recv(client, 1 << 20), 5):
                received += chunk
            assert loop.time() - started < 1.0, "closed only by close_timeout's abort"
        finally:
            client.close()
        if os.environ.get("WSSERVER_TEST_LOOP") != "uvloop":  # (uvloop: no sendfile, no stall)
            assert len(received) < 600_000 + 200_000  # (cut short: it took nothing for 0.5 s)
        assert not errors, errors


class TestFileResponse:
    """``await file(path)``: one file as a handler's answer, as Sanic's
    ``sanic.response.file`` (and Starlette's ``FileResponse``) send it."""

    async def test_a_handler_answers_with_a_file(
        self, run_server: StartServer, site: Path, tmp_path: Path
    ) -> None:
        from wsserver.response import file

        big = site / "sub" / "big.bin"
        routes = Router()

        @routes.get("/report")
        async def report(request: Request) -> Any:
            return await file(big, filename="Q3 report é.bin", headers={"X-Kind": "report"})

        @routes.get("/page")
        async def page(request: Request) -> Any:
            return await file(site / "app.js", request=request)

        @routes.get("/gone")
        async def gone(request: Request) -> Any:
            return await file(tmp_path / "nothing.txt")

        @routes.get("/inline")
        async def inline(request: Request) -> Any:
            disposition = {"Content-Disposition": 'inline; filename="a.js"'}
            return await file(site / "app.js", filename="a.js", headers=disposition)

        @routes.get("/as")
        async def not_found_page(request: Request) -> Any:
            # (Another status: the whole file, the request's conditions not asked.)
            return await file(
                str(site / "index.html"), 404, request=request, mime_type="text/plain"
            )

        server = await run_server(routes)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            got = await client.get("/report")
            assert got.status_code == 200 and got.content == big.read_bytes()
            assert got.headers["content-length"] == str(big.stat().st_size)
            assert got.headers["content-type"] == "application/octet-stream"
            assert got.headers["x-kind"] == "report"
            # (A name that is no quoted-string's as it is: an ASCII fallback, and
            # RFC 6266's filename* that browsers and requests/httpx users read.)
            disposition = got.headers["content-disposition"]
            plain, encoded = disposition.split("; filename*=UTF-8''")
            assert plain == 'attachment; filename="Q3 report _.bin"'
            assert urllib.parse.unquote(encoded, errors="strict") == "Q3 report é.bin"
            head = await client.head("/report")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(big.stat().st_size)

            page = await client.get("/page")
            assert page.text == "let x = 'é';"
            assert page.headers["content-type"] == "text/javascript; charset=utf-8"
            assert "content-disposition" not in page.headers
            # Given the request: its conditional requests and ranges, as static files'.
            etag = page.headers["etag"]
            again = await client.get("/page", headers={"If-None-Match": etag})
            assert again.status_code == 304 and again.content == b""
            part = await client.get("/page", headers={"Range": "bytes=0-4"})
            assert part.status_code == 206 and part.content == b"let x"
            # Without it, the whole file whatever the request asks.
            whole = await client.get("/report", headers={"Range": "bytes=0-4"})
            assert whole.status_code == 200 and len(whole.content) == big.stat().st_size

            inline_one = await client.get("/inline")
            assert inline_one.headers.get_list("content-disposition") == ['inline; filename="a.js"']
            typed = await client.get("/as", headers={"Range": "bytes=0-1"})
            assert typed.status_code == 404 and typed.text == "<h1>home</h1>"
            # (A text type without a charset says UTF-8's, as a static file's and stream()'s.)
            assert typed.headers["content-type"] == "text/plain; charset=utf-8"
            # A file that is not there is the handler's failure (a 500, logged), as
            # Sanic's: not a 404 a typo in a path would hide behind.
            assert (await client.get("/gone")).status_code == 500

    async def test_what_is_no_file_is_refused(self, site: Path) -> None:
        from wsserver.response import file

        with pytest.raises(IsADirectoryError):
            await file(site / "sub")
        with pytest.raises(FileNotFoundError):
            await file(site / "nothing")

    async def test_what_file_is_refused_leaves_no_descriptor_open(self, site: Path) -> None:
        # (A filename that is no UTF-8, headers that are no headers, one that
        # the file's answer says itself: refused before the file is opened,
        # not with its descriptor left to the garbage collector.)
        from wsserver.response import file

        opened = len(os.listdir("/proc/self/fd"))
        for wrong, kwargs in [
            (UnicodeEncodeError, {"filename": "report-\udcff.pdf"}),
            (TypeError, {"headers": 5}),
            (ValueError, {"headers": {"Content-Length": "3"}}),
            (ValueError, {"headers": [("content-range", "bytes 0-1/2")]}),
        ]:
            with pytest.raises(wrong) as raised:
                await file(site / "app.js", **kwargs)
            assert len(os.listdir("/proc/self/fd")) == opened, kwargs
            del raised
