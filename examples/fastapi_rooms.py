"""A FastAPI application on wsserver: a JSON route and a WebSocket route with a path parameter.

Needs FastAPI (``pip install fastapi``). Run it with
``python -m wsserver examples.fastapi_rooms:app`` and connect to
``ws://127.0.0.1:8000/ws/lobby``; ``GET /health`` answers ``{"ok": true}``.
It is the example of the README's "Running ASGI apps".
"""

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@app.websocket("/ws/{room}")
async def room(websocket: WebSocket, room: str) -> None:
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_json({"room": room, "echo": text})
    except WebSocketDisconnect:
        pass
