"""``--metrics-path``: Prometheus metrics through prometheus_client, one process and workers."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from wsserver import Request, Router, WebSocket, serve
from wsserver.response import text

from .test_cli import run_cli_to_end, running_cli
from .test_workers import children, on_every_worker, wait_for


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def echo_routes() -> Router:
    routes = Router()

    @routes.websocket("/echo")
    async def echo(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    return routes


async def get_metrics(port: int, path: str = "/metrics") -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{port}{path}")


async def test_metrics_of_one_process_are_exact() -> None:
    server = serve(echo_routes(), "127.0.0.1", 0, ping_interval=None, metrics_path="/metrics")
    async with server:
        # (From an audit.) Every series there from the start, at 0: each
        # route's connection lives too (they came with its first end).
        first = scrape((await get_metrics(server.port)).text)
        assert first[("wsserver_connection_duration_seconds_count", (("route", "echo"),))] == 0
        assert server.stats()["durations"]["connections"]["echo"]["count"] == 0
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
            for message in ("a", "bb", b"ccc"):
                await ws.send(message)
                await ws.recv()
            response = await get_metrics(server.port)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain; version=")
            during = scrape(response.text)
            assert during[("wsserver_connections_open", (("route", "echo"),))] == 1
        for _ in range(100):
            if not server.connections:
                break
            await asyncio.sleep(0.01)
        after = scrape((await get_metrics(server.port)).text)
    msgs = "wsserver_messages_total"
    assert after[(msgs, (("direction", "in"), ("route", "echo"), ("type", "text")))] == 2
    assert after[(msgs, (("direction", "out"), ("route", "echo"), ("type", "binary")))] == 1
    payload = "wsserver_payload_bytes_total"
    assert after[(payload, (("direction", "in"), ("route", "echo")))] == 6
    assert after[("wsserver_handshakes_total", (("status", "101"),))] == 1
    assert after[("wsserver_connections_opened_total", (("route", "echo"),))] == 1
    assert after[("wsserver_http_responses_total", (("status", "200"),))] == 2  # the scrapes
    assert ("wsserver_connections_open", (("route", "echo"),)) in during
    # None open now: the gauge says 0 (it had vanished; under workers it said 0).
    assert after[("wsserver_connections_open", (("route", "echo"),))] == 0


async def test_durations_are_histograms_of_how_long_each_took() -> None:
    routes = echo_routes()

    @routes.get("/slow")
    async def slow(request: Request) -> Any:
        await asyncio.sleep(0.03)
        return text("done")

    server = serve(routes, "127.0.0.1", 0, ping_interval=None, metrics_path="/metrics")
    async with server:
        async with httpx.AsyncClient() as client:
            for _ in range(2):
                await client.get(f"http://127.0.0.1:{server.port}/slow")
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/echo"):
            await asyncio.sleep(0.2)
        await wait_for(lambda: not server.connections, what="the connection gone")
        found = scrape((await get_metrics(server.port)).text)
        stats = server.stats()["durations"]

    def histogram(name: str, **labels: str) -> dict[str, float]:
        return {
            dict(key)["le"]: value
            for (sample, key), value in found.items()
            if sample == f"{name}_bucket" and {**dict(key), "le": ""} == {**labels, "le": ""}
        }

    responses = histogram("wsserver_http_response_duration_seconds")
    assert responses["0.025"] == 0 and responses["0.25"] == responses["+Inf"] == 2, responses
    assert found[("wsserver_http_response_duration_seconds_count", ())] == 2
    # (uvloop's clock counts whole milliseconds, and a timer may fire on the last one.)
    assert found[("wsserver_http_response_duration_seconds_sum", ())] >= 0.06 - 0.002
    assert histogram("wsserver_handshake_duration_seconds")["+Inf"] == 1
    lives = histogram("wsserver_connection_duration_seconds", route="echo")
    assert lives["0.1"] == 0 and lives["10.0"] == lives["+Inf"] == 1, lives
    assert found[("wsserver_connection_duration_seconds_sum", (("route", "echo"),))] >= 0.2 - 0.001
    # server.stats() has the same figures (and, since, the scrape's response).
    assert stats["connections"]["echo"]["buckets"] == lives
    assert stats["http"]["count"] == 3 and stats["handshakes"]["count"] == 1


async def test_the_application_s_own_metrics_are_served_by_one_process_too() -> None:
    # Under workers a scrape has the app's prometheus_client metrics (from the
    # shared files); one process served only wsserver's.
    from prometheus_client import REGISTRY, Counter

    hits = Counter("test_app_hits", "An application's own counter.")
    try:
        routes = echo_routes()

        @routes.get("/hit")
        async def hit(request: Request) -> Any:
            hits.inc()
            return text("ok")

        server = serve(routes, "127.0.0.1", 0, metrics_path="/metrics")
        async with server, httpx.AsyncClient() as client:
            for _ in range(3):
                await client.get(f"http://127.0.0.1:{server.port}/hit")
            found = scrape((await get_metrics(server.port)).text)
        assert found[("test_app_hits_total", ())] == 3
        assert found[("wsserver_http_responses_total", (("status", "200"),))] == 3
    finally:
        REGISTRY.unregister(hits)


async def test_a_metrics_token_keeps_the_figures_to_whoever_has_it() -> None:
    # The metrics are served on the application's port: without a way to
    # ask for a token, whoever reached the port read the routes and traffic.
    server = serve(
        echo_routes(),
        "127.0.0.1",
        0,
        ping_interval=None,
        metrics_path="/metrics",
        metrics_token="s3cret",
    )
    async with server, httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{server.port}/metrics"
        for headers, params in (({}, {}), ({"Authorization": "Bearer wrong"}, {})):
            refused = await client.get(url, headers=headers, params=params)
            assert refused.status_code == 401
            assert refused.headers["WWW-Authenticate"] == "Bearer"
            assert "wsserver_" not in refused.text
        bearer = await client.get(url, headers={"Authorization": "Bearer s3cret"})
        assert bearer.status_code == 200 and "wsserver_http_responses_total" in bearer.text
        query = await client.get(url, params={"token": "s3cret"})
        assert query.status_code == 200
        found = scrape(query.text)
        assert found[("wsserver_http_responses_total", (("status", "401"),))] == 2


async def test_the_metrics_and_the_status_page_are_never_stored_by_a_cache() -> None:
    # The figures are live, and kept to whoever has the token: a cache in
    # front (nginx's proxy_cache keys by URL, not by Authorization) that
    # stored a scrape served stale figures, and served them to requests
    # without the token; so did a Cache-Control every response gets (headers,
    # --header: 'public, max-age=3600' for the static files). The server's own
    # endpoints say no-store, their 401 too, in place of such a header.
    routes = echo_routes()

    @routes.get("/page")
    async def page(request: Request) -> Any:
        return text("hi")

    public = ("Cache-Control", "public, max-age=3600")
    for headers in ([], [public]):
        server = serve(
            routes,
            "127.0.0.1",
            0,
            ping_interval=None,
            metrics_path="/metrics",
            metrics_token="m3trics",
            status_path="/_status",
            status_token="st4tus",
            headers=headers,
        )
        async with server, httpx.AsyncClient() as client:
            base = f"http://127.0.0.1:{server.port}"
            answers = {
                "metrics": await client.get(
                    base + "/metrics", headers={"Authorization": "Bearer m3trics"}
                ),
                "metrics refused": await client.get(base + "/metrics"),
                "page": await client.get(base + "/_status", params={"token": "st4tus"}),
                "page refused": await client.get(base + "/_status"),
            }
            assert [r.status_code for r in answers.values()] == [200, 401, 200, 401]
            for name, answer in answers.items():
                assert answer.headers.get_list("cache-control") == ["no-store"], (name, headers)
            # The application's responses get the configured header as before.
            app = await client.get(base + "/page")
            assert app.headers.get_list("cache-control") == [v for _, v in headers]


async def test_a_metrics_token_beyond_ascii_is_taken_as_a_bearer_token_too() -> None:
    # A token is any text; Prometheus's `authorization` setting sends it in
    # the header as UTF-8, as ?token= sends it percent-encoded. The header's
    # was compared as read (each byte a character, as header values are), and
    # never matched: a scraper configured as documented got 401 for ever (and
    # the token's characters as latin-1 bytes, which no client sends, passed).
    token = "s\u00e9same"
    server = serve(echo_routes(), "127.0.0.1", 0, metrics_path="/metrics", metrics_token=token)
    async with server, httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{server.port}/metrics"
        assert (await client.get(url, params={"token": token})).status_code == 200
        bearer = {"Authorization": b"Bearer " + token.encode()}
        assert (await client.get(url, headers=bearer)).status_code == 200
        latin = {"Authorization": b"Bearer " + token.encode("latin-1")}
        assert (await client.get(url, headers=latin)).status_code == 401


async def test_a_base64_token_is_taken_as_written_in_the_url() -> None:
    # `openssl rand -base64 24` makes the token; pasted into a scrape URL or
    # the status page's address as ?token=..., its "+" was read as a space
    # (form decoding) and the token never matched. Both readings are taken;
    # a token of spaces written "+" still passes.
    token = "a+b/c="
    server = serve(echo_routes(), "127.0.0.1", 0, metrics_path="/metrics", metrics_token=token)
    async with server, httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{server.port}/metrics"
        assert (await client.get(url + "?token=a+b/c=")).status_code == 200
        assert (await client.get(url + "?token=a%2Bb%2Fc%3D")).status_code == 200
        assert (await client.get(url + "?token=a+b/c")).status_code == 401
        assert (await client.get(url + "?token=a b/c=")).status_code == 401
    server = serve(echo_routes(), "127.0.0.1", 0, metrics_path="/metrics", metrics_token="a b")
    async with server, httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{server.port}/metrics"
        assert (await client.get(url + "?token=a+b")).status_code == 200
        assert (await client.get(url + "?token=a%20b")).status_code == 200


async def test_a_right_bearer_token_is_taken_whatever_the_url_s_token_says() -> None:
    # A scraper with the new token in its Authorization header, its URL still
    # holding the old ?token= (a rotation half done, a bookmark's): the URL's
    # was taken in place of the header's, and the right token got a 401.
    server = serve(echo_routes(), "127.0.0.1", 0, metrics_path="/metrics", metrics_token="new")
    async with server, httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{server.port}/metrics"
        right = {"Authorization": "Bearer new"}
        assert (await client.get(url + "?token=old", headers=right)).status_code == 200
        wrong = {"Authorization": "Bearer old"}
        assert (await client.get(url + "?token=new", headers=wrong)).status_code == 200
        assert (await client.get(url + "?token=old", headers=wrong)).status_code == 401
        assert (
            await client.get(url + "?token=", headers={"Authorization": "Bearer  x"})
        ).status_code == 401


async def test_close_codes_clients_choose_are_not_a_label_each_without_bound() -> None:
    # Clients pick any of the 2,000 application close codes (3000-4999) and
    # the server echoes it: one label pair each, sent and received, so a
    # client could add 4,000 series per process. Past a few dozen distinct
    # codes, the others are counted together as "other".
    server = serve(echo_routes(), "127.0.0.1", 0, ping_interval=None, metrics_path="/metrics")
    async with server:
        for code in range(3000, 3100):
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
                await ws.close(code)
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
            await ws.close(3000)  # a code already counted goes on being counted
        await wait_for(lambda: not server.connections, what="the connections gone")
        found = scrape((await get_metrics(server.port)).text)
    stats = server.stats()["close_codes"]
    for side in ("sent", "received"):
        codes = {
            dict(labels)["code"]: value
            for (name, labels), value in found.items()
            if name == "wsserver_close_codes_total" and dict(labels)["side"] == side
        }
        assert len(codes) <= 65, side
        assert sum(codes.values()) == 101
        assert codes["3000"] == 2 and codes["other"] == 101 - sum(
            v for k, v in codes.items() if k != "other"
        )
        assert {str(k): v for k, v in stats[side].items()} == codes


def test_close_codes_stay_bounded_as_workers_end(tmp_path: Any, monkeypatch: Any) -> None:
    # Each worker kept 64 codes, and an ended worker's counts joined the
    # retired ones key by key: every worker replaced (a crash, a SIGHUP,
    # --limit-max-requests) could add 64 more series, without end.
    from prometheus_client import mmap_dict

    from wsserver.server.metrics import RETIRED, retire_process
    from wsserver.server.stats import CLOSE_CODES_KEPT

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metric, sample, text = "wsserver_close_codes", "wsserver_close_codes_total", "WebSocket codes."

    def key(side: str, code: str) -> str:
        return mmap_dict.mmap_key(metric, sample, ["side", "code"], [side, code], text)

    sent = 0.0
    for n, pid in enumerate((4_000_001, 4_000_002, 4_000_003)):
        counts = mmap_dict.MmapedDict(str(tmp_path / f"counter_{pid}.db"))
        codes = ["1000", "1001", *(str(3000 + 60 * n + i) for i in range(60)), "other"]
        for i, code in enumerate(codes):
            counts.write_value(key("received", code), float(i + 1), 0.0)
            sent += i + 1
        counts.write_value(key("sent", "1000"), 5.0, 0.0)
        counts.close()
        retire_process(pid)
    kept: dict[str, dict[str, float]] = {"sent": {}, "received": {}}
    for k, value, _, _ in mmap_dict.MmapedDict.read_all_values_from_file(str(tmp_path / RETIRED)):
        name, _, labels, _ = json.loads(k)
        assert name == metric
        kept[labels["side"]][labels["code"]] = value
    assert kept["sent"] == {"1000": 15.0}
    received = kept["received"]
    assert len(received) <= CLOSE_CODES_KEPT + 1, len(received)  # (and "other")
    assert sum(received.values()) == sent  # nothing lost
    assert received["1000"] == 3.0 and received["1001"] == 6.0  # (not application codes)


def test_folding_close_codes_never_takes_a_series_down(tmp_path: Any, monkeypatch: Any) -> None:
    # (From a review.) The fold kept the codes counted most: a code kept in
    # the retired counts, still counted by a live worker, went to "other"
    # when another worker ended with codes counted more. Its series went
    # down, which Prometheus takes for a counter reset.
    from prometheus_client import CollectorRegistry, mmap_dict, multiprocess

    from wsserver.server.metrics import retire_process

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metric, sample, text = "wsserver_close_codes", "wsserver_close_codes_total", "WebSocket codes."

    def worker(pid: int, counts: dict[str, float]) -> None:
        files = mmap_dict.MmapedDict(str(tmp_path / f"counter_{pid}.db"))
        for code, value in counts.items():
            key = mmap_dict.mmap_key(metric, sample, ["side", "code"], ["received", code], text)
            files.write_value(key, value, 0.0)
        files.close()

    def scraped() -> dict[str, float]:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
        return {
            found.labels["code"]: found.value
            for family in registry.collect()
            for found in family.samples
            if found.name == sample
        }

    worker(4_000_001, {str(3000 + i): (1.0 if i == 0 else 10.0) for i in range(64)})
    retire_process(4_000_001)
    worker(4_000_099, {"3000": 7.0, "4001": 5.0})  # (live: never ends here)
    worker(4_000_002, {"4000": 50.0, "4001": 50.0})
    before = scraped()
    retire_process(4_000_002)
    after = scraped()
    # A series goes on or ends (the code new to the retired counts, past
    # the cap and no live worker's: its counts join "other"), but never
    # goes down (one a live worker counts too stays whole).
    assert not {code: n for code, n in before.items() if code in after and after[code] < n}
    assert before["3000"] == after["3000"] == 8.0
    assert before["4001"] == after["4001"] == 55.0
    assert "4000" not in after and after["other"] == before.get("other", 0) + 50.0
    assert sum(after.values()) == sum(before.values())


def test_close_codes_stay_bounded_through_rolling_restarts(tmp_path: Any, monkeypatch: Any) -> None:
    # (Found by an audit.) In a rolling restart the worker ending shares its
    # hostile codes with the one still live, so they were kept in the
    # retired counts, and never folded after: 28 to 64 more series a side
    # at each SIGHUP, without end. A code no live worker counts, past the
    # cap, now joins "other", the retired counts' own included.
    from prometheus_client import mmap_dict

    from wsserver.server.metrics import RETIRED, retire_process
    from wsserver.server.stats import CLOSE_CODES_KEPT

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metric, sample, text = "wsserver_close_codes", "wsserver_close_codes_total", "WebSocket codes."

    def worker(pid: int, codes: list[str]) -> None:
        files = mmap_dict.MmapedDict(str(tmp_path / f"counter_{pid}.db"))
        for code in codes:
            key = mmap_dict.mmap_key(metric, sample, ["side", "code"], ["received", code], text)
            files.write_value(key, 1.0, 0.0)
        files.close()

    def retired_codes() -> dict[str, float]:
        path = str(tmp_path / RETIRED)
        return {
            json.loads(k)[2]["code"]: value
            for k, value, _, _ in mmap_dict.MmapedDict.read_all_values_from_file(path)
        }

    pid = 5_000_000
    live: list[int] = []
    for generation in range(8):
        codes = [str(3000 + 64 * generation + i) for i in range(64)]
        started = [pid + 1, pid + 2]
        pid += 2
        for new in started:
            worker(new, codes)  # (both see the same clients' codes)
        for old in live:  # (the generation before retires, one by one)
            retire_process(old)
        live = started
    application = [c for c in retired_codes() if c != "other" and int(c) >= 3000]
    assert len(application) <= CLOSE_CODES_KEPT + 64, len(application)  # (and the live ones)
    for old in live:
        retire_process(old)
    assert sum(retired_codes().values()) == 8 * 2 * 64  # nothing lost
    assert len(retired_codes()) <= CLOSE_CODES_KEPT + 1


def test_an_ended_worker_s_summaries_and_gauges_join_the_retired_files(
    tmp_path: Any, monkeypatch: Any
) -> None:
    # An application's Summary (prometheus_client's first example) and its
    # gauges of mode sum, max, min and mostrecent left a file per ended
    # worker, each read at every scrape: with --limit-max-requests, files
    # without end. They now join one file each, their figures unchanged.
    from prometheus_client import CollectorRegistry, Gauge, Summary, multiprocess, values

    from wsserver.server.metrics import retire_process

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    modes = ("sum", "max", "min", "mostrecent")

    def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
        return {
            (found.name, tuple(sorted(found.labels.items()))): found.value
            for family in registry.collect()
            for found in family.samples
        }

    pids = (4_000_001, 4_000_002, 4_000_003)
    for n, pid in enumerate(pids):  # each worker's metrics, written as prometheus_client does
        monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda pid=pid: pid))
        registry = CollectorRegistry()
        Summary("app_seconds", "An application's summary.", registry=registry).observe(n + 1)
        for mode in modes:
            gauge = Gauge(f"app_{mode}", "A gauge.", registry=registry, multiprocess_mode=mode)
            gauge.set((10, 12, 11)[n])  # (the last set neither the largest nor the smallest)
    before = scraped()
    assert before[("app_seconds_count", ())] == 3 and before[("app_seconds_sum", ())] == 6
    assert [before[(f"app_{mode}", ())] for mode in modes] == [33, 12, 10, 11]
    for pid in pids:
        retire_process(pid)
        assert scraped() == before
    left = sorted(path.name for path in tmp_path.glob("*.db"))
    assert left == sorted(
        ["summary_retired.db", *(f"gauge_{mode}_retired.db" for mode in modes)]
    ), left


async def test_the_metrics_path_of_an_asgi_app_is_the_servers() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"the app"})

    server = serve(app, "127.0.0.1", 0, metrics_path="/metrics")
    async with server:
        assert (await get_metrics(server.port, "/other")).text == "the app"
        assert "wsserver_http_responses_total" in (await get_metrics(server.port)).text


async def test_a_percent_encoded_metrics_path_is_served_where_it_leads() -> None:
    # A served path is printable ASCII: the rest percent-encoded. Such a path
    # was accepted, and served nowhere: requests are routed by their decoded
    # path, and the endpoint was at the encoded text (404, by either form).
    for setting, paths in (
        ("/m%C3%A9trics", ("/m%C3%A9trics", "/m%c3%a9trics")),
        ("/me%74rics", ("/me%74rics", "/metrics")),
    ):
        server = serve(echo_routes(), "127.0.0.1", 0, metrics_path=setting)
        async with server:
            for path in paths:
                response = await get_metrics(server.port, path)
                assert response.status_code == 200, (setting, path)
                assert "wsserver_connections_opened_total" in response.text


async def test_replaced_workers_leave_their_counts_not_their_files(tmp_path: Any) -> None:
    # Every worker wrote its counters to a file of its own, which stayed after
    # it ended (--limit-max-requests, restarts): files without end, all read
    # at each scrape. An ended worker's counts now join one file.
    directory = tmp_path / "metrics"
    directory.mkdir()
    args = ("--limit-max-requests", "2", "--metrics-path", "/metrics", "--ping-interval", "none")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    async with running_cli("tests.worker_app:routes", *args, env=env) as cli:
        await wait_for(lambda: "1 worker accepting" in cli.stderr, what="the worker")
        made = 0
        while cli.stderr.count("retiring") < 3:  # two requests a worker: three replaced
            assert made < 100, cli.stderr
            assert (await get_metrics(cli.port)).status_code == 200
            made += 1
            await asyncio.sleep(0.05)

        def files(kind: str = "counter") -> list[str]:
            return sorted(path.name for path in directory.glob(f"{kind}_*.db"))

        # The worker's own file, and the ended ones' (the files stayed, one a worker).
        await wait_for(lambda: len(files()) <= 2, timeout=30, what=f"files folded: {files()}")

        def ended_histograms() -> list[str]:
            live = {f"histogram_{pid}.db" for pid in children(cli.proc.pid)}
            return [name for name in files("histogram") if name not in live]

        await wait_for(
            lambda: ended_histograms() == ["histogram_retired.db"],
            what=f"histograms folded: {files('histogram')}",
        )
        counted = scrape((await get_metrics(cli.port)).text)
    assert counted[("wsserver_http_responses_total", (("status", "200"),))] >= made
    assert counted[("wsserver_http_response_duration_seconds_count", ())] >= made


async def test_a_killed_process_s_gauges_leave_the_shared_files(tmp_path: Any) -> None:
    # With PROMETHEUS_MULTIPROC_DIR set and no supervisor to see a process
    # end, a killed one's open connections stayed in the gauge for good.
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    args = ("--metrics-path", "/metrics", "--ping-interval", "none")
    async with running_cli("tests.worker_app:routes", *args, env=env) as cli:
        clients = [await websockets.connect(f"{cli.url}/pid") for _ in range(3)]
        # A scrape writes this process's figures to the files first.
        found = scrape((await get_metrics(cli.port)).text)
        assert found[("wsserver_connections_open", (("route", "pid"),))] == 3
        cli.proc.kill()
        await cli.proc.wait()
        for ws in clients:
            ws.transport.abort()
    async with running_cli("tests.worker_app:routes", *args, env=env) as cli:
        found = scrape((await get_metrics(cli.port)).text)
    assert found.get(("wsserver_connections_open", (("route", "pid"),)), 0) == 0
    assert found[("wsserver_connections_opened_total", (("route", "pid"),))] == 3  # kept


async def test_the_copy_to_the_shared_files_outlives_a_failure(tmp_path: Any) -> None:
    # The once-a-second copy of the counters to PROMETHEUS_MULTIPROC_DIR died
    # for good at its first error (the directory removed by a cleaner before
    # the first copy, say), without a line: the files stayed empty after the
    # directory was back, and the shutdown's last copy failed the exit.
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    args = ("--metrics-path", "/metrics", "--ping-interval", "none")
    async with running_cli("tests.worker_app:routes", *args, env=env) as cli:
        directory.rename(tmp_path / "away")  # (before the first copy, a second on)
        await wait_for(lambda: "copying" in cli.stderr, what="the failure's line")
        said = [line for line in cli.stderr.splitlines() if "copying" in line]
        assert len(said) == 1 and "trying again every second" in said[0], cli.stderr
        directory.mkdir()
        await wait_for(lambda: any(directory.glob("counter_*.db")), what="the counters copied")
        await wait_for(lambda: "copied again" in cli.stderr, what="the recovery's line")
        cli.proc.terminate()
        assert await asyncio.wait_for(cli.proc.wait(), 30) == 0, cli.stderr
    assert "Traceback" not in cli.stderr, cli.stderr


FOLDING = """
import json, os, sys, time
from prometheus_client import mmap_dict
from wsserver.server.metrics import retire_process

directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
key = json.dumps(("ended", "ended_total", {}, "help"), sort_keys=True)
pid = 3_000_000
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:  # a worker ends, again and again
    pid += 1
    # (Made aside: a scrape would find it empty for an instant, prometheus_client's own race.)
    made = os.path.join(directory, f"counter_{pid}.made")
    counts = mmap_dict.MmapedDict(made)
    counts.write_value(key, 1.0, 0.0)
    counts.close()
    os.replace(made, os.path.join(directory, f"counter_{pid}.db"))
    retire_process(pid)
print(pid - 3_000_000)
"""


async def test_a_scrape_while_an_ended_worker_s_counts_are_folded_succeeds(
    tmp_path: Any, monkeypatch: Any
) -> None:
    # The fold removes the ended worker's file: a scrape that had listed it
    # failed (FileNotFoundError, 500), or counted it twice for an instant.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    server = serve(echo_routes(), "127.0.0.1", 0, ping_interval=None, metrics_path="/metrics")
    async with server:
        folding = await asyncio.create_subprocess_exec(
            sys.executable, "-c", FOLDING, "2", stdout=asyncio.subprocess.PIPE
        )
        statuses: list[int] = []
        async with httpx.AsyncClient() as client:
            while folding.returncode is None and len(statuses) < 2000:
                response = await client.get(f"http://127.0.0.1:{server.port}/metrics")
                statuses.append(response.status_code)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(folding.wait(), 0.001)
        folds = int((await folding.communicate())[0])
    assert folds > 20 and len(statuses) > 20, (folds, len(statuses))
    assert set(statuses) == {200}, collections.Counter(statuses)


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_metrics_without_prometheus_client_are_refused_before_listening(
    tmp_path: Path, workers: str
) -> None:
    # The supervisor bound the socket and started the workers, each of which
    # then exited 2 with this line: refused first, as a TLS problem is.
    # (prometheus_client as if not installed: None in sys.modules makes its
    # import raise ModuleNotFoundError, in each process with this PYTHONPATH.)
    (tmp_path / "sitecustomize.py").write_text(
        'import sys\nsys.modules["prometheus_client"] = None\n'
    )
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    socket_path = str(tmp_path / "never.sock")
    code, err = await run_cli_to_end(
        "examples.echo:routes",
        *("--metrics-path", "/metrics", "--uds", socket_path, "--workers", workers),
        env={"PYTHONPATH": pythonpath},
    )
    assert code == 2, err
    said = "error: metrics_path needs prometheus_client: pip install wsserver[metrics]"
    assert err.strip().splitlines()[-1] == said, err
    assert "listening on" not in err and "worker" not in err, err
    assert not os.path.exists(socket_path), err


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_a_prometheus_multiproc_dir_that_is_no_directory_is_refused_before_listening(
    tmp_path: Path, workers: str
) -> None:
    # prometheus_client writes there and never makes it: the server started,
    # every scrape was a 500 (FileNotFoundError), the copy to the files died
    # unseen, and the shutdown failed with it.
    socket_path = str(tmp_path / "never.sock")
    for directory in (tmp_path / "missing", tmp_path / "a-file"):
        if directory.name == "a-file":
            directory.write_text("")
        code, err = await run_cli_to_end(
            "examples.echo:routes",
            *("--metrics-path", "/metrics", "--uds", socket_path, "--workers", workers),
            env={"PROMETHEUS_MULTIPROC_DIR": str(directory)},
        )
        assert code == 2, err
        said = (
            f"error: PROMETHEUS_MULTIPROC_DIR {str(directory)!r}, where prometheus_client "
            "keeps the metrics of each process, is not a directory: make it first"
        )
        assert err.strip().splitlines()[-1] == said, err
        assert "listening on" not in err and "worker" not in err, err
        assert not os.path.exists(socket_path), err


async def test_one_scrape_sees_every_worker() -> None:
    async with running_cli(
        "tests.worker_app:routes",
        "--workers",
        "2",
        "--metrics-path",
        "/metrics",
        "--ping-interval",
        "none",
    ) as cli:
        await wait_for(lambda: "workers accepting" in cli.stderr, what="the workers")
        # (From an audit.) Before any connection or response, the series are
        # there at 0, as in one process: "no data" is not 0 to an alert.
        first = scrape((await get_metrics(cli.port)).text)
        assert first[("wsserver_connections_open", (("route", "pid"),))] == 0
        assert first[("wsserver_connections_opened_total", (("route", "pid"),))] == 0
        assert first[("wsserver_handshake_duration_seconds_count", ())] == 0
        assert first[("wsserver_http_response_duration_seconds_count", ())] == 0
        # (And each route's connection lives: there only after its first one.)
        assert first[("wsserver_connection_duration_seconds_count", (("route", "pid"),))] == 0
        workers = children(cli.proc.pid)
        connections = await on_every_worker(cli.url, workers)
        clients = [ws for ws, _ in connections]
        assert {pid for _, pid in connections} == workers  # both workers have connections
        n = len(connections)

        async def totals() -> tuple[float, float]:
            found = scrape((await get_metrics(cli.port)).text)
            opened = found.get(("wsserver_connections_opened_total", (("route", "pid"),)), 0)
            open_now = found.get(("wsserver_connections_open", (("route", "pid"),)), 0)
            return opened, open_now

        async def all_counted() -> bool:
            return await totals() == (n, n)

        await wait_for(all_counted, what="every connection in one scrape")
        for ws in clients:
            await ws.close()

        async def all_closed() -> bool:
            return (await totals())[1] == 0

        await wait_for(all_closed, what="the gauge back to 0")
        # Each worker's histogram of its connections' lives, added up.
        found = scrape((await get_metrics(cli.port)).text)
        assert found[("wsserver_connection_duration_seconds_count", (("route", "pid"),))] == n
        lived = ("wsserver_connection_duration_seconds_bucket", (("le", "+Inf"), ("route", "pid")))
        assert found[lived] == n
