"""The whole message path on the local stack started as a person starts it:
REST register and login, two WebSocket clients, the scheduled drain."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
from pymongo import MongoClient
from websockets.asyncio.client import connect


def register_and_login(api: str, username: str) -> str:
    creds = {"username": username, "password": "correct-horse-1"}
    assert httpx.post(f"{api}/api/auth/register", json=creds).json() == {"ok": True}
    response = httpx.post(f"{api}/api/auth/login", json=creds)
    assert response.status_code == 200
    return response.json()["token"]


@pytest.mark.parametrize("stack", ["local_stack", "cluster_stack"])
def test_register_login_chat_and_the_drain_stores_the_message_exactly_once(stack, request):
    local_stack = request.getfixturevalue(stack)
    api, ws = local_stack["api_url"], local_stack["ws_url"]
    alice = register_and_login(api, f"alice-{uuid.uuid4().hex[:6]}")
    bob = register_and_login(api, f"bob-{uuid.uuid4().hex[:6]}")
    text = f"hello {uuid.uuid4()}"

    async def chat() -> tuple[dict, dict]:
        async with connect(f"{ws}/?token={alice}") as a, connect(f"{ws}/?token={bob}") as b:
            await asyncio.sleep(0.2)
            await a.send(json.dumps({"text": text}))
            got_a = json.loads(await asyncio.wait_for(a.recv(), 5))
            got_b = json.loads(await asyncio.wait_for(b.recv(), 5))
            return got_a, got_b

    got_alice, got_bob = asyncio.run(chat())
    assert got_alice == got_bob and got_bob["text"] == text

    mongo = MongoClient(local_stack["mongo_url"], serverSelectionTimeoutMS=5000)
    try:
        messages = mongo["aurora"]["messages"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and messages.count_documents({"text": text}) == 0:
            time.sleep(0.2)
        time.sleep(1.5)  # a few more drain runs: still exactly one
        docs = list(messages.find({"text": text}))
    finally:
        mongo.close()
    assert len(docs) == 1
    assert docs[0]["id"] == got_bob["id"]


def test_the_api_refuses_junk_and_keeps_serving(local_stack):
    api = local_stack["api_url"]
    junk = httpx.post(f"{api}/api/auth/login", content=b"\xff{junk",
                      headers={"content-type": "application/json"})  # fmt: skip
    assert junk.status_code == 400 and junk.json()["code"] == "malformed_json"
    assert httpx.get(f"{api}/api/nope").status_code == 404
    assert httpx.get(f"{api}/api/health").json()["ok"] is True


def test_cors_allows_localhost_pages_on_other_ports(local_stack):
    api = local_stack["api_url"]
    preflight = httpx.options(
        f"{api}/api/auth/login",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"},
    )  # fmt: skip
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
    foreign = httpx.get(f"{api}/api/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in foreign.headers


def test_the_stack_writes_where_scripts_can_find_it(local_stack):
    for key in ("api_url", "ws_url", "frontend_url", "redis_url", "mongo_url"):
        assert local_stack[key]
    assert httpx.get(local_stack["frontend_url"]).status_code == 200
