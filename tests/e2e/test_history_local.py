"""History on the local stack as a person runs it: a message sent over the
WebSocket is drained into MongoDB by the scheduled ingest function and then
served by the messages function, as the frame that was broadcast."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
from websockets.asyncio.client import connect

from aurora.stream import parse_id


def login(api: str) -> str:
    creds = {"username": f"hist-{uuid.uuid4().hex[:6]}", "password": "correct-horse-1"}
    assert httpx.post(f"{api}/api/auth/register", json=creds).status_code == 200
    return httpx.post(f"{api}/api/auth/login", json=creds).json()["token"]


def test_a_message_sent_over_the_websocket_is_then_in_the_rooms_history(local_stack):
    api, ws_url = local_stack["api_url"], local_stack["ws_url"]
    token = login(api)
    text = f"for the record {uuid.uuid4().hex}"

    async def send() -> dict:
        async with connect(ws_url, subprotocols=["aurora.v1", f"bearer.{token}"]) as ws:
            assert json.loads(await ws.recv())["type"] == "ready"
            await ws.send(json.dumps({"type": "join", "room": "general"}))
            assert json.loads(await ws.recv())["type"] == "joined"
            await ws.send(json.dumps({"type": "message", "room": "general", "text": text}))
            while True:  # presence frames (who is online) come too: skipped
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["type"] != "presence":
                    return frame

    broadcast = asyncio.run(send())
    assert broadcast["type"] == "message" and broadcast["text"] == text, broadcast

    auth = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 30  # the drain runs every 0.5 s here
    while True:
        page = httpx.get(f"{api}/api/rooms/general/messages", headers=auth).json()
        if any(m["id"] == broadcast["id"] for m in page["messages"]) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    (stored,) = [m for m in page["messages"] if m["id"] == broadcast["id"]]
    assert stored == {k: v for k, v in broadcast.items() if k != "client_id"}

    rooms = httpx.get(f"{api}/api/rooms", headers=auth).json()["rooms"]
    (general,) = [r for r in rooms if r["room"] == "general"]
    # Ours, or a message another test sent there since.
    assert parse_id(general["last_id"]) >= parse_id(broadcast["id"])
    found = httpx.get(f"{api}/api/search", params={"room": "general", "q": text.upper()},
                      headers=auth).json()  # fmt: skip
    assert [m["id"] for m in found["messages"]] == [broadcast["id"]]
    assert httpx.get(f"{api}/api/rooms/general/messages").status_code == 401
