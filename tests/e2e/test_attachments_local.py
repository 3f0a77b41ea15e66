"""Attachments on the local stack as a person runs it: the emulator started
moto's server as S3, so the same boto3 code path as on AWS runs end to end."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import jwt
from pymongo import MongoClient
from websockets.asyncio.client import connect

from aurora import attachments
from aurora.settings import Settings
from tests.support.files import upload


def login(api: str) -> str:
    creds = {"username": f"carol-{uuid.uuid4().hex[:6]}", "password": "correct-horse-1"}
    assert httpx.post(f"{api}/api/auth/register", json=creds).status_code == 200
    return httpx.post(f"{api}/api/auth/login", json=creds).json()["token"]


def test_a_browser_style_upload_to_the_local_s3_passes_the_attachment_check(
    local_stack, monkeypatch
):
    api = local_stack["api_url"]
    assert local_stack["s3_url"].startswith("http://127.0.0.1:")
    token = login(api)
    content = b"hello attachment\n"
    grant = upload(api, token, "notes.txt", "text/plain", content)
    assert grant["upload"]["url"].startswith(local_stack["s3_url"])
    # No S3_PUBLIC_ENDPOINT_URL here: the browser uses the servers' address.
    assert local_stack["s3_public_url"] == local_stack["s3_url"]

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "local")
    local = Settings(env="local", s3_endpoint_url=local_stack["s3_url"])
    # The stack signed it; here we only need whose upload it is.
    user = jwt.decode(token, options={"verify_signature": False})["userId"]
    client = attachments.s3_client(local_stack["s3_url"], "us-east-1")
    checked = attachments.verify_attachment(grant["attachment"], user, local, client)
    assert checked.size == len(content) and checked.file_type == "text/plain"


def test_a_message_with_an_upload_goes_through_the_stacks_fanout_into_mongodb(local_stack):
    """The fan-out child process got the local S3's settings: its HEAD check
    passes a real upload, and the drain stores the metadata."""
    api, ws_url = local_stack["api_url"], local_stack["ws_url"]
    token = login(api)
    content = b"%PDF-1.4 minimal\n"
    grant = upload(api, token, "report.pdf", "application/pdf", content)

    async def send() -> dict:
        async with connect(ws_url, subprotocols=["aurora.v1", f"bearer.{token}"]) as ws:
            assert json.loads(await ws.recv())["type"] == "ready"
            await ws.send(json.dumps({"type": "join", "room": "files"}))
            assert json.loads(await ws.recv())["type"] == "joined"
            frame = {"type": "message", "room": "files", "text": "the report",
                     "attachments": [grant["attachment"]]}  # fmt: skip
            await ws.send(json.dumps(frame))
            while True:  # presence frames (who is online) come too: skipped
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["type"] != "presence":
                    return frame

    message = asyncio.run(send())
    assert message["type"] == "message", message
    assert message["attachments"] == [grant["attachment"]]

    mongo = MongoClient(local_stack["mongo_url"], serverSelectionTimeoutMS=5000)
    try:
        messages = mongo["aurora"]["messages"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not messages.find_one({"id": message["id"]}):
            time.sleep(0.2)
        stored = messages.find_one({"id": message["id"]})
    finally:
        mongo.close()
    assert stored is not None and stored["attachments"] == [grant["attachment"]]
