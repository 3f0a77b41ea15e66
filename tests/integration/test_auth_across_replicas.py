"""Tokens, revocation and throttling shared through Redis: what one auth
container or fan-out replica decides, every other one enforces."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import redis.asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from local.runtime import LocalFunction
from local.servers import free_port
from tests.support.events import call, event, template_function
from tests.support.fanout import receive_json, replica

ALICE = {"username": "alice", "password": "securepass123"}


def auth_container() -> LocalFunction:
    return template_function("AuthFunction", concurrency=1)


async def invoke(fn: LocalFunction, name: str, **kwargs) -> tuple[int, dict]:
    status, body, _ = await asyncio.to_thread(call, fn, event(name, "http-v2", **kwargs))
    return status, body


async def connects(url: str, token: str) -> int:
    """101 if the replica accepts the token, else the status it answered."""
    try:
        async with connect(f"{url}/?token={token}"):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def login(auth: LocalFunction) -> dict:
    status, body = await invoke(auth, "login", body=ALICE)
    assert status == 200, body
    return body


async def test_a_logged_out_token_is_refused_by_every_replica(auth, settings):
    await invoke(auth, "register", body=ALICE)
    session, other = await login(auth), await login(auth)
    async with replica(settings) as (url_a, _), replica(settings) as (url_b, _):
        assert [await connects(u, session["token"]) for u in (url_a, url_b)] == [101, 101]
        assert await invoke(auth, "logout", token=session["token"]) == (200, {"ok": True})
        assert [await connects(u, session["token"]) for u in (url_a, url_b)] == [401, 401]
        # Only that session ended.
        assert [await connects(u, other["token"]) for u in (url_a, url_b)] == [101, 101]


async def test_a_password_change_locks_every_session_out_of_every_replica(auth, settings):
    await invoke(auth, "register", body=ALICE)
    laptop, phone = await login(auth), await login(auth)
    change = {"current_password": ALICE["password"], "new_password": "an0ther-secure-pass"}
    status, fresh = await invoke(auth, "password", body=change, token=laptop["token"])
    assert status == 200
    async with replica(settings) as (url_a, _), replica(settings) as (url_b, _):
        for old in (laptop, phone):
            assert [await connects(u, old["token"]) for u in (url_a, url_b)] == [401, 401]
        assert [await connects(u, fresh["token"]) for u in (url_a, url_b)] == [101, 101]


async def test_a_replica_that_cannot_reach_redis_refuses_with_503_not_an_open_door(auth, settings):
    await invoke(auth, "register", body=ALICE)
    session = await login(auth)
    async with replica(settings) as (url, server):
        original, server.redis = (
            server.redis,
            redis.asyncio.Redis.from_url(
                f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5
            ),
        )
        try:
            assert await connects(url, session["token"]) == 503
        finally:
            await server.redis.aclose()
            server.redis = original  # closed by the shutdown, with what still uses it


async def test_failed_logins_are_counted_across_auth_containers(auth, app_env):
    await invoke(auth, "register", body=ALICE)
    second = auth_container()
    try:
        wrong = {"username": "alice", "password": "wrong-password"}
        for i in range(5):
            assert (await invoke((auth, second)[i % 2], "login", body=wrong))[0] == 401
        assert (await invoke(second, "login", body=ALICE))[0] == 429
        assert (await invoke(auth, "login", body=ALICE))[0] == 429
    finally:
        second.close()


async def test_the_message_rate_limit_holds_across_replicas(auth, settings):
    """Three messages per window per user, wherever they connect."""
    await invoke(auth, "register", body=ALICE)
    token = (await login(auth))["token"]
    slow = dataclasses.replace(settings, rate_limit_window_ms=60_000)
    async with replica(slow) as (url_a, _), replica(slow) as (url_b, _):
        async with (
            connect(f"{url_a}/?token={token}") as on_a,
            connect(f"{url_b}/?token={token}") as on_b,
        ):
            await asyncio.sleep(0.1)  # both replicas subscribed before anyone publishes
            for ws, text in ((on_a, "a1"), (on_a, "a2"), (on_b, "b1"), (on_b, "b2")):
                await ws.send(json.dumps({"text": text}))
                await asyncio.sleep(0.05)
            frames = [await receive_json(on_b) for _ in range(4)]
    assert [f.get("text") for f in frames if f["type"] == "message"] == ["a1", "a2", "b1"]
    assert [f["type"] for f in frames].count("rate_limited") == 1
