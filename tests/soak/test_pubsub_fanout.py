"""Publish/subscribe at scale, against a real redis-server: 1,000 subscribers in 2 processes."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from ..redis_server import RedisServer
from ..test_cli import Cli
from ..test_pubsub import _cli_presence_is, process, wait_for


@pytest.mark.soak
async def test_a_thousand_subscribers_get_every_message_exactly_once(
    redis_server: RedisServer,
) -> None:
    async with process(redis_server) as one, process(redis_server) as two:
        counts: dict[int, list[str]] = {}

        async def member(index: int, cli: Cli, ready: asyncio.Event) -> None:
            async with websockets.connect(cli.url + "/sub/big") as ws:
                await ws.recv()
                got = counts[index] = []
                ready.set()
                while len(got) < 100:
                    got.append(await asyncio.wait_for(ws.recv(), 60))

        readies = [asyncio.Event() for _ in range(1000)]
        tasks = [
            asyncio.create_task(member(i, one if i % 2 else two, readies[i])) for i in range(1000)
        ]
        for ready in readies:
            await asyncio.wait_for(ready.wait(), 60)
        await wait_for(lambda: _cli_presence_is(one, "big", 1000), what="presence")
        # The sender is a subscriber too (the route publishes what it receives to its topic).
        sender = await websockets.connect(two.url + "/sub/big")
        await sender.recv()
        for i in range(100):
            await sender.send(f"m{i}")
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
        expected = [f"m{i}" for i in range(100)]
        assert all(got == expected for got in counts.values())
        await sender.close()
