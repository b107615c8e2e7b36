"""A data stream: simulated sensor readings pushed to the client while it talks back.

Run it with ``python -m wsserver examples.stream:routes`` and connect to
``ws://127.0.0.1:8000/ws/data-stream`` (``?interval=0.5`` changes the period).

It speaks the messages of the Sanic-style document we follow, so a client written
against the document works unchanged (timestamps are ISO 8601). The server first sends
``{"type": "connected", "message", "timestamp"}`` (plus ``sensors`` and ``interval``), then
every ``interval`` seconds (``INTERVAL`` by default)
``{"type": "data", "timestamp", "value", "sensor_id", "temperature", "humidity"}`` (plus
``unit`` and ``seq``), taking the sensors in turn, or only the one the client subscribed to.
The client may send:

- ``{"type": "subscribe", "sensor_id": "..."}`` (any id) -> ``{"type": "subscribed",
  "sensor_id", "message"}``, after which the data is that sensor's;
- ``{"type": "unsubscribe"}`` -> ``{"type": "unsubscribed"}``, back to every sensor;
- ``{"type": "ping"}`` -> ``{"type": "pong", "timestamp"}`` (an ``id``, a string, a number or
  null, is echoed).

Invalid JSON is answered ``{"type": "error", "message": "Invalid message format"}``, anything
else unexpected ``{"type": "error", "message": ...}``; the stream goes on.
"""

from __future__ import annotations

import asyncio
import itertools
import json as jsonlib
import logging
import math
import random
import time
from datetime import UTC, datetime
from typing import Any

from wsserver import ConnectionClosed, Request, Router, WebSocket
from wsserver.response import Response, text

logger = logging.getLogger("examples.stream")

routes = Router()

#: Seconds between readings, unless the client asks for ``?interval=``.
INTERVAL = 1.0
#: The range a client may ask for.
MIN_INTERVAL = 0.01
MAX_INTERVAL = 60.0

#: sensor id -> (unit, base value, amplitude)
SENSORS: dict[str, tuple[str, float, float]] = {
    "temperature": ("°C", 21.0, 3.0),
    "humidity": ("%", 45.0, 10.0),
    "pressure": ("hPa", 1013.0, 6.0),
}


class StreamState:
    """What one client is subscribed to."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.sensor_id: str | None = None  # None: every sensor in turn
        self.seq = itertools.count(1)


def now() -> str:
    """The current time in ISO 8601, as the document's messages carry it."""
    return datetime.now(UTC).isoformat()


def read_sensor(sensor_id: str) -> tuple[float, str]:
    """A simulated value of ``sensor_id`` and its unit (any id: unknown ones read 0-100)."""
    unit, base, amplitude = SENSORS.get(sensor_id, ("", 50.0, 40.0))
    wave = math.sin(time.time() / 30.0 + len(sensor_id))
    return round(base + amplitude * wave + random.uniform(-0.5, 0.5), 2), unit


def _interval(request: Request) -> float | None:
    raw = request.args.get("interval")
    if raw is None:
        return INTERVAL
    try:
        value = float(raw)
    except ValueError:
        return None
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:  # also rejects NaN
        return None
    return value


def check_interval(request: Request) -> Response | None:
    """Handshake hook: a bad ``?interval=`` is answered 400 instead of 101."""
    interval = _interval(request)
    if interval is None:
        return text(f"interval must be between {MIN_INTERVAL} and {MAX_INTERVAL} seconds", 400)
    request.ctx.interval = interval
    return None


async def push_readings(ws: WebSocket, state: StreamState) -> None:
    """Send a reading every ``state.interval`` seconds, on a steady clock."""
    loop = asyncio.get_running_loop()
    cycle = itertools.cycle(SENSORS)
    next_at = loop.time()
    try:
        while True:
            next_at += state.interval
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_at = loop.time()  # fell behind (slow client): do not burst
            sensor_id = state.sensor_id or next(cycle)
            # Each sensor read once: a message says one temperature, one humidity.
            readings = {name: read_sensor(name) for name in {sensor_id, "temperature", "humidity"}}
            value, unit = readings[sensor_id]
            await ws.send(
                {
                    "type": "data",
                    "timestamp": now(),
                    "value": value,
                    "sensor_id": sensor_id,
                    "temperature": readings["temperature"][0],
                    "humidity": readings["humidity"][0],
                    "unit": unit,
                    "seq": next(state.seq),
                }
            )
    except ConnectionClosed:
        pass
    except Exception:
        logger.exception("the reading pusher failed")
        await ws.close(1011, "stream failed")


def handle(state: StreamState, message: str | bytes) -> dict[str, Any]:
    """The answer to one client message."""
    if isinstance(message, bytes):
        return {"type": "error", "message": "Binary messages are not supported: send JSON text"}
    try:
        data = jsonlib.loads(message)
    except (ValueError, RecursionError):  # (RecursionError: nested too deep)
        return {"type": "error", "message": "Invalid message format"}
    if not isinstance(data, dict):
        return {"type": "error", "message": "Expected a JSON object"}
    kind = data.get("type")
    if kind == "ping":
        answer: dict[str, Any] = {"type": "pong", "timestamp": now()}
        if "id" in data:
            ping_id = data["id"]
            # (Not NaN or an infinity, which Python reads and JSON cannot say back.)
            if not (
                ping_id is None
                or isinstance(ping_id, str | int)
                or (isinstance(ping_id, float) and math.isfinite(ping_id))
            ):
                return {"type": "error", "message": "'id' must be a string, a number or null"}
            answer["id"] = ping_id
        return answer
    if kind == "subscribe":
        sensor_id = data.get("sensor_id")
        if not isinstance(sensor_id, str) or not sensor_id:
            return {"type": "error", "message": "subscribe needs a sensor_id"}
        state.sensor_id = sensor_id
        return {
            "type": "subscribed",
            "sensor_id": sensor_id,
            "message": f"Subscribed to {sensor_id}",
        }
    if kind == "unsubscribe":
        state.sensor_id = None
        return {"type": "unsubscribed"}
    return {"type": "error", "message": f"Unknown message type: {kind!r}"}


@routes.websocket("/ws/data-stream", on_connect=check_interval)
async def data_stream(request: Request, ws: WebSocket) -> None:
    """Push readings and answer the client at the same time."""
    state = StreamState(getattr(request.ctx, "interval", INTERVAL))
    await ws.send(
        {
            "type": "connected",
            "message": "Connected to the data stream",
            "timestamp": now(),
            "sensors": list(SENSORS),
            "interval": state.interval,
        }
    )
    pusher = asyncio.create_task(push_readings(ws, state))
    try:
        async for message in ws:
            await ws.send(handle(state, message))
    finally:
        pusher.cancel()
        await asyncio.wait({pusher})  # without swallowing our own cancellation
