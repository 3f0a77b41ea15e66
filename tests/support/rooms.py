"""Helpers for tests of rooms, moderation and presence: people with tokens,
requests through the messages function's real handler, WebSocket clients."""

from __future__ import annotations

import dataclasses
import json
from urllib.parse import urlencode

from websockets.asyncio.client import connect

from aurora import users
from aurora.backends import database
from aurora.settings import Settings
from aurora.tokens import issue_token
from local.runtime import LocalFunction
from tests.support.draining import drain_until_idle
from tests.support.events import call, event
from tests.support.fanout import receive_json, send_json


@dataclasses.dataclass
class Person:
    name: str
    user_id: str
    token: str


def person(cfg: Settings, name: str) -> Person:
    user_id = users.create_user(database(cfg), name, "not-a-real-hash")
    return Person(name, user_id, issue_token(user_id, name, cfg))


def rest(
    fn: LocalFunction, method: str, path: str, who: Person | None, body=None, **query: str
) -> tuple[int, dict]:
    """One request through the function, from the sample event of its routes."""
    request = event("rooms", "http-v2", token=who.token if who else None)
    request["rawPath"] = request["requestContext"]["http"]["path"] = path
    request["requestContext"]["http"]["method"] = method
    request["rawQueryString"] = urlencode(query)
    request["queryStringParameters"] = query or None
    request["body"] = body if body is None or isinstance(body, str) else json.dumps(body)
    if body is not None:
        request["headers"]["content-type"] = "application/json"
    status, answer, _ = call(fn, request)
    return status, answer


def link(fn: LocalFunction, who: Person, url: str) -> int:
    request = event("attachments", "http-v2", token=who.token)
    request["rawPath"] = request["requestContext"]["http"]["path"] = "/api/attachments/link"
    request["requestContext"]["http"]["method"] = "GET"
    request["rawQueryString"] = urlencode({"url": url})
    request["queryStringParameters"] = {"url": url}
    request["body"] = None
    return call(fn, request)[0]


def drain(cfg: Settings, **kwargs) -> None:
    """Run the drain until the streams are empty (`kwargs`: the Drain's)."""
    drain_until_idle(cfg, **kwargs)


async def client(url: str, who: Person):
    ws = await connect(url, max_queue=None)  # tests read some frames only: never stall
    await send_json(ws, {"type": "auth", "token": who.token})
    assert (await receive_json(ws))["type"] == "ready"
    return ws


async def answer(ws, who: Person, timeout: float = 3.0) -> dict:
    """The next frame that answers this client (ack, error, joined, left, its own typing)."""
    while True:
        frame = await receive_json(ws, timeout)
        if frame["type"] in ("ack", "error", "joined", "left", "pong"):
            return frame
        if frame["type"] == "typing" and frame["user_id"] == who.user_id:
            return frame
