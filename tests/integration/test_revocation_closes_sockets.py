"""A revoked token or session closes its open WebSockets on every replica with
4001 "token revoked": at once through the notice every revocation publishes,
and through each replica's periodic re-check when a notice is lost. Real
parts throughout: the auth function through the local runtime, two replicas,
one redis-server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from contextlib import closing as closed_after

import httpx
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from aurora import keyspace
from aurora.backends import async_redis_client
from aurora.keyspace import REVOCATIONS_CHANNEL, revoked_key
from aurora.sessions import revocation_notice
from aurora.settings import Settings, get_settings
from aurora.tokens import Claims, find_revoked_async, verify_token
from local.runtime import LocalFunction
from tests.conftest import on_single_and_cluster, on_single_redis, plain_client
from tests.support.events import call, event
from tests.support.fanout import receive_json, replica, send_json, settle, token_for

ALICE = {"username": "alice", "password": "securepass123"}
BOB = {"username": "bob", "password": "bobs-secure-pass"}
REVOKED = (4001, "token revoked")


@pytest.fixture
def notices_only(settings: Settings) -> Settings:
    """Replicas whose periodic re-check never runs during a test: only a
    notice (or a resubscribe) can close a socket."""
    return dataclasses.replace(settings, revocation_check_seconds=3600)


async def invoke(fn: LocalFunction, name: str, **kwargs) -> tuple[int, dict]:
    status, body, _ = await asyncio.to_thread(call, fn, event(name, "http-v2", **kwargs))
    return status, body


async def sign_up(auth: LocalFunction, *users: dict) -> None:
    for user in users:
        assert await invoke(auth, "register", body=user) == (200, {"ok": True})


async def login(auth: LocalFunction, user: dict) -> dict:
    status, body = await invoke(auth, "login", body=user)
    assert status == 200, body
    return body


async def open_socket(url: str, token: str) -> ClientConnection:
    """A v1 client authenticated with the subprotocol offer, after `ready`."""
    ws = await connect(url, subprotocols=["aurora.v1", f"bearer.{token}"])
    assert (await receive_json(ws))["type"] == "ready"
    return ws


async def closing(ws: ClientConnection, within: float) -> tuple[int, str] | None:
    """How the server closed `ws` within `within` seconds; None if it stayed open."""
    try:
        async with asyncio.timeout(within):
            while True:
                await ws.recv()
    except ConnectionClosed:
        return ws.close_code, ws.close_reason
    except TimeoutError:
        return None


async def served(ws: ClientConnection) -> bool:
    """The connection is open and answered."""
    await send_json(ws, {"type": "ping"})
    return (await receive_json(ws)) == {"type": "pong"}


async def revoked_metric(url: str) -> dict[str, float]:
    """aurora_fanout_revoked_total by trigger, from the replica's /metrics."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(url.replace("ws://", "http://") + "/metrics")).text
    counts = {}
    for line in text.splitlines():
        if line.startswith("aurora_fanout_revoked_total{"):
            labels, value = line.split(" ")
            counts[labels.split('"')[1]] = float(value)
    return counts


def session_key(settings: Settings, token: str) -> str:
    return keyspace.session_key(verify_token(token, settings).session_id)


@on_single_and_cluster
async def test_logout_closes_that_sessions_sockets_on_every_replica_and_no_other(
    auth, notices_only
):
    await sign_up(auth, ALICE)
    laptop, phone = await login(auth, ALICE), await login(auth, ALICE)
    async with replica(notices_only) as (url_a, _), replica(notices_only) as (url_b, _):
        laptop_a = await open_socket(url_a, laptop["token"])
        laptop_b = await connect(f"{url_b}/?token={laptop['token']}")  # the original protocol
        await send_json(laptop_b, {"text": "hello"})  # its echo: the connection is admitted
        assert (await receive_json(laptop_b))["text"] == "hello"
        phone_a, phone_b = [await open_socket(u, phone["token"]) for u in (url_a, url_b)]

        assert await invoke(auth, "logout", token=laptop["token"]) == (200, {"ok": True})

        assert await closing(laptop_a, within=3) == REVOKED
        assert await closing(laptop_b, within=3) == REVOKED
        # The same user's other session stays open and served on both replicas.
        assert await closing(phone_a, within=0.3) is None
        assert await served(phone_a) and await served(phone_b)
        assert await revoked_metric(url_a) == {"notice": 1.0, "sweep": 0.0}
        assert await revoked_metric(url_b) == {"notice": 1.0, "sweep": 0.0}


@on_single_and_cluster
async def test_a_password_change_closes_every_session_of_the_user_on_every_replica(
    auth, notices_only
):
    await sign_up(auth, ALICE, BOB)
    laptop, phone, bob = [await login(auth, u) for u in (ALICE, ALICE, BOB)]
    async with replica(notices_only) as (url_a, _), replica(notices_only) as (url_b, _):
        alice_sockets = [
            await open_socket(url, session["token"])
            for url in (url_a, url_b)
            for session in (laptop, phone)
        ]
        bob_a, bob_b = [await open_socket(u, bob["token"]) for u in (url_a, url_b)]
        for ws in (bob_a, bob_b):
            await send_json(ws, {"type": "join", "room": "dev"})
            assert (await receive_json(ws))["type"] == "joined"
        await settle()

        change = {"current_password": ALICE["password"], "new_password": "an0ther-secure-pass"}
        status, fresh = await invoke(auth, "password", body=change, token=laptop["token"])
        assert status == 200, fresh

        for ws in alice_sockets:
            assert await closing(ws, within=3) == REVOKED
        # The session the change opened works on both replicas, and Bob was
        # served throughout: his message crosses from one replica to the other.
        fresh_a, fresh_b = [await open_socket(u, fresh["token"]) for u in (url_a, url_b)]
        await send_json(bob_a, {"type": "message", "room": "dev", "text": "still here"})
        assert (await receive_json(bob_b))["text"] == "still here"
        assert await served(fresh_a) and await served(fresh_b)
        assert await revoked_metric(url_a) == {"notice": 2.0, "sweep": 0.0}


async def test_logout_everywhere_closes_every_session_of_the_user_on_every_replica(
    auth, notices_only
):
    await sign_up(auth, ALICE, BOB)
    laptop, phone, bob = [await login(auth, u) for u in (ALICE, ALICE, BOB)]
    async with replica(notices_only) as (url_a, _), replica(notices_only) as (url_b, _):
        laptop_a, phone_b = (
            await open_socket(url_a, laptop["token"]),
            await open_socket(url_b, phone["token"]),
        )
        bob_a, bob_b = [await open_socket(u, bob["token"]) for u in (url_a, url_b)]

        everywhere = {"everywhere": True}
        assert await invoke(auth, "logout", body=everywhere, token=laptop["token"]) == (
            200,
            {"ok": True},
        )

        assert await closing(laptop_a, within=3) == REVOKED
        assert await closing(phone_b, within=3) == REVOKED
        assert await closing(bob_a, within=0.3) is None  # only the caller's own sessions
        assert await served(bob_a) and await served(bob_b)
        for session in (laptop, phone):
            refresh = {"refresh_token": session["refresh_token"]}
            assert (await invoke(auth, "refresh", body=refresh))[0] == 401


async def test_a_revocation_without_a_notice_is_enforced_by_the_periodic_re_check(auth, settings):
    """A session ended in Redis with no notice at all (as if the notice were
    lost) closes at the next re-check (every second here; the test allows a
    loaded machine 4 s); the user's other session stays."""
    every_second = dataclasses.replace(settings, revocation_check_seconds=1)
    await sign_up(auth, ALICE)
    laptop, phone = await login(auth, ALICE), await login(auth, ALICE)
    async with replica(every_second) as (url_a, _), replica(every_second) as (url_b, _):
        laptop_a, laptop_b = [await open_socket(u, laptop["token"]) for u in (url_a, url_b)]
        phone_a = await open_socket(url_a, phone["token"])
        with closed_after(plain_client(settings.redis_url)) as client:
            assert client.delete(session_key(settings, laptop["token"])) == 1

        assert await closing(laptop_a, within=4) == REVOKED
        assert await closing(laptop_b, within=4) == REVOKED
        assert await served(phone_a)
        assert (await revoked_metric(url_a))["sweep"] == 1.0


# One Redis by nature: dropping every subscriber, ending the session and
# publishing are one transaction, so the notice surely reaches no one; a
# cluster pipeline carries neither CLIENT KILL nor PUBLISH.
@on_single_redis
async def test_a_notice_published_while_the_subscriber_was_disconnected_is_healed_on_reconnect(
    auth, notices_only
):
    await sign_up(auth, ALICE)
    laptop, phone = await login(auth, ALICE), await login(auth, ALICE)
    user_id = verify_token(laptop["token"], notices_only).user_id
    async with replica(notices_only) as (url, _):
        laptop_ws, phone_ws = [await open_socket(url, s["token"]) for s in (laptop, phone)]
        with redis.Redis.from_url(notices_only.redis_url) as client, client.pipeline() as tx:
            # One transaction: drop every subscriber, end the session, publish.
            tx.client_kill_filter(_type="pubsub")
            tx.delete(session_key(notices_only, laptop["token"]))
            tx.publish(REVOCATIONS_CHANNEL, revocation_notice(user_id, "logout"))
            killed, deleted, receivers = tx.execute()
        assert killed >= 1 and deleted == 1 and receivers == 0  # the notice reached no one

        assert await closing(laptop_ws, within=3) == REVOKED
        assert await served(phone_ws)
        assert (await revoked_metric(url))["sweep"] == 1.0


async def test_a_notice_alone_closes_nothing_and_junk_notices_are_ignored(
    auth, notices_only, caplog
):
    """Only the state in Redis revokes: a forged notice naming a user whose
    sessions are intact, or malformed ones, leave the replica serving (and
    its subscriber running: junk is not worth a reconnect)."""
    await sign_up(auth, ALICE)
    session = await login(auth, ALICE)
    user_id = verify_token(session["token"], notices_only).user_id
    async with replica(notices_only) as (url, _):
        ws = await open_socket(url, session["token"])
        with closed_after(plain_client(notices_only.redis_url)) as client:
            deep = "[" * 5000 + "]" * 5000  # deeper than Python's recursion limit
            for junk in ("not json", "[]", '{"user_id": 5}', "{}", b"\xff\xfe", deep):
                client.publish(REVOCATIONS_CHANNEL, junk)
            client.publish(REVOCATIONS_CHANNEL, revocation_notice(user_id, "logout"))
        assert await closing(ws, within=1) is None
        assert await served(ws)
        assert caplog.text.count("malformed revocation notice ignored") == 6
        assert "subscriber failed" not in caplog.text
        # And a real revocation is still enforced afterwards.
        assert await invoke(auth, "logout", token=session["token"]) == (200, {"ok": True})
        assert await closing(ws, within=3) == REVOKED


@pytest.mark.parametrize(
    "reason",
    ["logout", "logout_everywhere", "password_change", "refresh_token_reused", "session_limit"],
)
def test_every_revocation_publishes_a_notice_naming_the_user(auth, settings, monkeypatch, reason):
    monkeypatch.setenv("MAX_SESSIONS_PER_USER", "1")
    get_settings.cache_clear()
    call(auth, event("register", "http-v2", body=ALICE))
    session = call(auth, event("login", "http-v2", body=ALICE))[1]
    user_id = verify_token(session["token"], settings).user_id
    with closed_after(plain_client(settings.redis_url)) as client, client.pubsub() as notices:
        notices.subscribe(REVOCATIONS_CHANNEL)
        assert notices.get_message(timeout=1)["type"] == "subscribe"
        if reason == "logout":
            status = call(auth, event("logout", "http-v2", token=session["token"]))[0]
        elif reason == "logout_everywhere":
            everywhere = {"everywhere": True}
            sample = event("logout", "http-v2", body=everywhere, token=session["token"])
            status = call(auth, sample)[0]
        elif reason == "password_change":
            change = {"current_password": ALICE["password"], "new_password": "an0ther-pass!"}
            status = call(auth, event("password", "http-v2", body=change, token=session["token"]))[
                0
            ]
        elif reason == "refresh_token_reused":
            first = {"refresh_token": session["refresh_token"]}
            assert call(auth, event("refresh", "http-v2", body=first))[0] == 200
            status = call(auth, event("refresh", "http-v2", body=first))[0]  # a replay
        else:  # a second login ends the first session (MAX_SESSIONS_PER_USER=1)
            status = call(auth, event("login", "http-v2", body=ALICE))[0]
        assert status == (401 if reason == "refresh_token_reused" else 200)
        notice = notices.get_message(timeout=2)
    assert json.loads(notice["data"]) == {"user_id": user_id, "reason": reason}


async def test_the_re_check_of_many_connections_answers_each_one(settings):
    """Thousands of keys (several script calls in one round trip): each answer
    belongs to its own token; tokens without a session are checked by jti."""
    now = int(time.time())
    accepted = [
        Claims(f"u{i}", f"user{i}", now, now + 600, f"jti{i}", "" if i % 11 == 0 else f"sid{i}")
        for i in range(1500)
    ]
    client = plain_client(settings.redis_url)
    with closed_after(client), client.pipeline(transaction=False) as pipe:
        for i, claims in enumerate(accepted):
            if claims.session_id and i % 5:
                pipe.hset(keyspace.session_key(claims.session_id), "user_id", claims.user_id)
            if i % 7 == 0:
                pipe.set(revoked_key(claims.token_id), "1")
        pipe.execute()
    expected = [i % 7 == 0 or (i % 11 != 0 and i % 5 == 0) for i in range(len(accepted))]
    client = async_redis_client(settings.redis_url)
    try:
        assert await find_revoked_async(client, accepted) == expected
        assert await find_revoked_async(client, []) == []
    finally:
        await client.aclose()


async def test_while_redis_is_down_open_sockets_stay_and_revocation_resumes_after(
    settings, tmp_path, caplog
):
    """A re-check that cannot reach Redis closes nobody (no reconnect storm);
    once Redis is back, a revocation is enforced again."""
    from local.servers import start_redis

    own = start_redis(tmp_path / "redis")
    port = int(own.url.rsplit(":", 1)[1].split("/")[0])
    restarted = None
    local = dataclasses.replace(settings, redis_url=own.url, revocation_check_seconds=1)
    token = token_for(local, "alice")
    try:
        async with replica(local) as (url, _):
            alice = await open_socket(url, token)
            own.stop()
            assert await closing(alice, within=2.5) is None  # two failed sweeps
            assert await served(alice)
            assert "revocation re-check failed" in caplog.text
            restarted = start_redis(tmp_path / "redis", port)
            with redis.Redis.from_url(own.url) as client:
                claims = verify_token(token, local)
                client.set(revoked_key(claims.token_id), "1")
            assert await closing(alice, within=4) == REVOKED
    finally:
        own.stop()
        if restarted is not None:
            restarted.stop()
