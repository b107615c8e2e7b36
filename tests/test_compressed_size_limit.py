"""max_size bounds a message once inflated, whatever its compressed size: four real clients.

Random data does not compress: deflated, it grows by a few bytes. A message
of exactly max_size random bytes is therefore a little larger than max_size
on the wire, and must still be accepted; one byte more must get 1009.
The clients: the ``websockets`` library, aiohttp, Node's ``ws`` (installed
with npm into tests/node when missing) and headless Chromium.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets

from wsserver import Request, Router, WebSocket
from wsserver.app.response import html

from .browser import Browser, ChromiumUnavailable, install_chromium
from .conftest import StartServer
from .debian import one_installer

MAX_SIZE = 2**20  # the default
SIZES = [MAX_SIZE - 1, MAX_SIZE, MAX_SIZE + 1]
NODE_DIR = Path(__file__).parent / "node"

PAGE = """<!doctype html><title>size limit</title><script>
async function sendOne(size) {
  const payload = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(payload.subarray(i, Math.min(size, i + 65536)));
  }
  const ws = new WebSocket(`ws://${location.host}/echo`);
  ws.binaryType = "arraybuffer";
  return await new Promise((resolve) => {
    let result = {};
    ws.onopen = () => ws.send(payload);
    ws.onmessage = (event) => {
      const got = new Uint8Array(event.data);
      const same = got.length === size && got.every((byte, i) => byte === payload[i]);
      result = {echoed: got.length, same};
      ws.close(1000);
    };
    ws.onclose = (event) => resolve({...result, code: event.code, extensions: ws.extensions});
  });
}
</script>"""


def routes() -> Router:
    routes = Router()

    @routes.websocket("/echo")
    async def echo(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    @routes.get("/")
    async def page(request: Request) -> Any:
        return html(PAGE)

    return routes


def expected(size: int) -> dict[str, Any]:
    if size > MAX_SIZE:
        return {"code": 1009}
    return {"echoed": size, "same": True, "code": 1000}


def check(results: dict[int, dict[str, Any]], compression: str | None) -> None:
    for size, result in results.items():
        got = {k: result.get(k) for k in expected(size)}
        assert got == expected(size), (size, result)
        deflate = "permessage-deflate" in str(result.get("extensions", ""))
        assert deflate == (compression is not None), result


@pytest.fixture(params=["deflate", None], ids=["compression", "no-compression"])
def compression(request: pytest.FixtureRequest) -> str | None:
    return request.param  # type: ignore[no-any-return]


async def test_websockets_client(run_server: StartServer, compression: str | None) -> None:
    server = await run_server(routes(), compression=compression)
    results = {}
    for size in SIZES:
        payload = os.urandom(size)
        async with websockets.connect(
            f"ws://127.0.0.1:{server.port}/echo", max_size=None, compression="deflate"
        ) as ws:
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            await ws.send(payload)
            try:
                echo = await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed:
                results[size] = {"code": ws.close_code, "extensions": extensions}
                continue
        results[size] = {
            "echoed": len(echo),
            "same": echo == payload,
            "code": ws.close_code,
            "extensions": extensions,
        }
    check(results, compression)


async def test_aiohttp_client(run_server: StartServer, compression: str | None) -> None:
    server = await run_server(routes(), compression=compression)
    results: dict[int, dict[str, Any]] = {}
    async with aiohttp.ClientSession() as session:
        for size in SIZES:
            payload = os.urandom(size)
            async with session.ws_connect(
                f"http://127.0.0.1:{server.port}/echo", compress=15, max_msg_size=0
            ) as ws:
                extensions = ws._response.headers.get("Sec-WebSocket-Extensions", "")
                await ws.send_bytes(payload)
                message = await asyncio.wait_for(ws.receive(), 10)
                if message.type == aiohttp.WSMsgType.BINARY:
                    results[size] = {"echoed": len(message.data), "same": message.data == payload}
                    await ws.close()
                else:
                    await ws.close()
                    results[size] = {}
                results[size].update(code=ws.close_code, extensions=extensions)
    check(results, compression)


async def test_aiohttp_client_on_zlib_ng(run_server: StartServer) -> None:
    # aiohttp.set_zlib_backend(zlib_ng) is aiohttp's way to compress faster:
    # its level 1 is zlib-ng's, fixed Huffman codes, and random data grows
    # ~4% when deflated; a message of max_size bytes got 1009.
    zlib_ng = pytest.importorskip("zlib_ng.zlib_ng")
    server = await run_server(routes(), compression="deflate")
    payload = os.urandom(MAX_SIZE)
    aiohttp.set_zlib_backend(zlib_ng)
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                f"http://127.0.0.1:{server.port}/echo", compress=15, max_msg_size=0
            ) as ws,
        ):
            await ws.send_bytes(payload)
            message = await asyncio.wait_for(ws.receive(), 10)
    finally:
        aiohttp.set_zlib_backend(zlib)
    assert message.type == aiohttp.WSMsgType.BINARY, (message.data, message.extra)  # not 1009
    assert message.data == payload


def node_ws() -> Path:
    """tests/node with Node's ws installed (npm ci when missing); fails, never skips."""
    installed = NODE_DIR / "node_modules" / "ws" / "package.json"
    if installed.exists():
        return NODE_DIR
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed for the Node ws client test")
    with one_installer("node-ws"):  # npm ci starts by deleting node_modules
        if installed.exists():
            return NODE_DIR
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    if done.returncode != 0:
        pytest.fail(f"npm ci failed in {NODE_DIR}:\n{done.stderr[-2000:]}")
    return NODE_DIR


async def test_node_ws_client(run_server: StartServer, compression: str | None) -> None:
    directory = node_ws()
    server = await run_server(routes(), compression=compression)
    results = {}
    for size in SIZES:
        proc = await asyncio.create_subprocess_exec(
            "node",
            "send_one.mjs",
            f"ws://127.0.0.1:{server.port}/echo",
            str(size),
            "deflate",
            cwd=directory,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        results[size] = json.loads(out.decode().strip().splitlines()[-1])
    check(results, compression)


async def test_chromium(run_server: StartServer, compression: str | None) -> None:
    try:
        install_chromium()
    except ChromiumUnavailable as exc:
        pytest.fail(f"headless Chromium is required for the browser tests: {exc}")
    server = await run_server(routes(), compression=compression)
    async with Browser() as browser:
        page = await browser.new_page()
        await page.navigate(f"http://127.0.0.1:{server.port}/")
        results = {}
        for size in SIZES:
            results[size] = await page.evaluate(f"sendOne({size})", timeout=30)
    check(results, compression)
