"""A Router's static files (``routes.static()``): types, conditional requests,
large files streamed, HEAD, and no way out of the directory, over real sockets."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from wsserver import Request, Router
from wsserver.app import static
from wsserver.response import Response, text

from .conftest import StartServer


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
            for path in ("/static", "/static/", "/static/index.html"):
                r = await client.get(path)
                assert (r.status_code, r.text) == (200, "<h1>home</h1>"), path
                assert r.headers["content-type"] == "text/html; charset=utf-8"
            r = await client.get("/static/sub/")
            assert r.text == "sub home"
            r = await client.get("/static/in")  # a link within the directory
            assert r.text == "let x = 'é';"
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
            # The file changed: a new validator.
            (site / "app.js").write_text("changed, longer")
            r = await client.get("/static/app.js", headers={"If-None-Match": etag})
            assert (r.status_code, r.text) == (200, "changed, longer")
            assert r.headers["etag"] != etag

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

    def test_a_directory_is_required(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="is not a directory"):
            Router().static("/s", tmp_path / "missing")
        (tmp_path / "f").write_text("x")
        with pytest.raises(ValueError, match="is not a directory"):
            Router().static("/s", tmp_path / "f")
