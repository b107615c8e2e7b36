"""The benchmark harness's order of measurements and its baseline columns (benchmarks/)."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.matrix import select_servers
from benchmarks.run import rotated

from .conftest import StartServer
from .helpers import echo_routes


def test_each_round_starts_one_server_further_on() -> None:
    servers = select_servers("wsserver,aiohttp,picows,asgi-wsserver")
    orders = [[s.key for s in rotated(servers, r)] for r in range(5)]
    assert orders[0] == ["wsserver", "aiohttp", "picows", "asgi-wsserver"]
    assert orders[1] == ["aiohttp", "picows", "asgi-wsserver", "wsserver"]
    assert orders[4] == orders[0]
    # Over as many rounds as columns, each column takes every place once.
    for place in range(len(servers)):
        assert sorted(order[place] for order in orders[:4]) == sorted(orders[0])
    assert rotated([], 3) == []


def test_baseline_columns_need_a_baseline() -> None:
    with pytest.raises(SystemExit, match="asgi-wsserver-base"):
        select_servers("asgi-wsserver,asgi-wsserver-base")
    assert "asgi-wsserver-base" not in [s.key for s in select_servers(None)]
    with pytest.raises(SystemExit, match="asgi-wsserver-base-uvloop"):
        select_servers("asgi-wsserver-base-uvloop")
    assert "asgi-wsserver-base-uvloop" not in [s.key for s in select_servers(None)]


def test_the_instruction_counter_sends_what_the_server_parses() -> None:
    # benchmarks.instructions writes its frames by hand: our own parser must
    # read them as the message it means, and its answer's length must be right.
    from benchmarks.instructions import client_frame, echoed_length
    from wsserver.protocol.connection import Connection
    from wsserver.protocol.frames import build_frame

    for size in (0, 32, 125, 126, 65535, 65536, 70000):
        for text in (True, False):
            message = "x" * size if text else b"x" * size
            conn = Connection(max_size=None)
            assert conn.receive_data(client_frame(text, size)) == [message]
            assert echoed_length(size) == len(build_frame(1 if text else 2, message, True, False))


async def test_the_instruction_counters_handshake_loop_completes_real_handshakes(
    run_server: StartServer,
) -> None:
    # `--handshakes` counts (f)'s loop: each turn must be a whole handshake,
    # 101 then a closing handshake the server completes, or the count means
    # something else.
    from benchmarks.instructions import handshakes

    server = await run_server(echo_routes())
    port = server.sockets[0].getsockname()[1]
    await asyncio.to_thread(handshakes, port, 3, None)
    for _ in range(100):
        if server.counters.close_codes_received[1000] == 3:
            break
        await asyncio.sleep(0.01)
    assert server.counters.handshakes[101] == 3
    assert server.counters.close_codes_received[1000] == 3
    assert server.counters.close_codes_sent[1000] == 3
