"""The fan-out container with real Redis, spoken to in the original protocol
(token in the URL, untyped `{"text"}` frames to `general`): rate limits, bad
input, and delivery across replicas."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
import redis
import redis.asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from aurora.sending import Sender
from tests.conftest import on_single_and_cluster, plain_client
from tests.support.fanout import receive_json, replica, settle, token_for


@on_single_and_cluster
async def test_a_message_reaches_every_client_in_the_room(settings):
    async with replica(settings) as (url, _):
        async with connect(f"{url}/?token={token_for(settings, 'alice')}") as alice, \
                connect(f"{url}/?token={token_for(settings, 'bob')}") as bob:  # fmt: skip
            await settle()
            await alice.send(json.dumps({"text": "hello"}))
            got_alice, got_bob = await receive_json(alice), await receive_json(bob)
    assert got_alice == got_bob
    assert got_bob["user"] == "alice" and got_bob["text"] == "hello"
    assert isinstance(got_bob["ts"], int) and got_bob["room"] == "general"
    assert got_bob["ts"] == int(got_bob["id"].split("-")[0])


@on_single_and_cluster
async def test_every_accepted_message_is_queued_for_persistence_under_its_id(
    settings, redis_layout
):
    async with replica(settings) as (url, _):
        async with connect(f"{url}/?token={token_for(settings, 'alice')}") as alice:
            await settle()
            await alice.send(json.dumps({"text": "keep me"}))
            frame = await receive_json(alice)
    r = plain_client(settings.redis_url)
    ((entry_id, fields),) = r.xrange(redis_layout.room_stream_key("general"))
    r.close()
    assert entry_id == frame["id"]
    assert fields == {"v": "1", "room": "general", "user_id": "id-alice", "username": "alice",
                      "text": "keep me", "n": "1"}  # fmt: skip


@on_single_and_cluster
async def test_a_message_sent_to_one_replica_reaches_clients_of_another(settings):
    async with replica(settings) as (url_a, _), replica(settings) as (url_b, _):
        async with connect(f"{url_a}/?token={token_for(settings, 'alice')}") as alice, \
                connect(f"{url_b}/?token={token_for(settings, 'bob')}") as bob:  # fmt: skip
            await settle()
            await alice.send(json.dumps({"text": "across"}))
            assert (await receive_json(bob))["text"] == "across"


@on_single_and_cluster
async def test_the_fourth_message_in_a_second_is_rate_limited(settings):
    async with replica(settings) as (url, _):
        async with connect(f"{url}/?token={token_for(settings, 'alice')}") as alice:
            await settle()
            for i in range(4):
                await alice.send(json.dumps({"text": f"m{i}"}))
            frames = [await receive_json(alice) for _ in range(4)]
    limited = [f for f in frames if f.get("type") == "rate_limited"]
    assert len(limited) == 1 and 0 < limited[0]["retry_after_ms"] <= 1000
    assert [f["text"] for f in frames if f.get("type") == "message"] == ["m0", "m1", "m2"]


@pytest.mark.parametrize(
    "query",
    ["?token=", "?token=not-a-jwt", "?token=eyJhbGciOiJub25lIn0.eyJ1c2VySWQiOiJ4In0."],
)
async def test_a_missing_or_forged_token_is_refused_at_the_upgrade_with_401(settings, query):
    async with replica(settings) as (url, _):
        with pytest.raises(InvalidStatus) as caught:
            async with connect(f"{url}/{query}"):
                pass
        assert caught.value.response.status_code == 401
        # ...and the server keeps serving.
        async with connect(f"{url}/?token={token_for(settings, 'alice')}") as ok:
            await ok.send(json.dumps({"text": "still here"}))
            assert (await receive_json(ok))["text"] == "still here"


async def test_a_token_signed_with_another_secret_is_refused(settings):
    other = dataclasses.replace(settings, jwt_secret="another-secret-" * 4)
    async with replica(settings) as (url, _):
        with pytest.raises(InvalidStatus):
            async with connect(f"{url}/?token={token_for(other, 'mallory')}"):
                pass


async def test_bad_frames_get_error_frames_and_the_connection_keeps_working(settings):
    nested = '{"text": ' + "[" * 5000 + "]" * 5000 + "}"  # deeper than Python's recursion limit
    bad = ["{nope", "[]", '{"text": 12}', '{"text": {"$gt": ""}}', '{"type": "x"}', b"\x00\x01",
           nested]  # fmt: skip
    async with replica(settings) as (url, _):
        async with connect(f"{url}/?token={token_for(settings, 'alice')}") as alice:
            await settle()
            codes = []
            for frame in bad:
                await alice.send(frame)
                reply = await receive_json(alice)
                assert reply["type"] == "error" and reply["message"]
                codes.append(reply["code"])
            await alice.send(json.dumps({"text": "<script>alert(1)</script>"}))
            echoed = await receive_json(alice)
    assert codes == ["bad_json", "bad_frame", "bad_field", "bad_field", "unknown_type",
                     "unsupported_frame", "bad_json"]  # fmt: skip
    assert echoed["text"] == "<script>alert(1)</script>"  # stored and sent as text, as is


async def test_an_oversized_frame_closes_only_that_connection(settings):
    small = dataclasses.replace(settings, max_frame_bytes=1024)
    async with replica(small) as (url, _):
        async with connect(f"{url}/?token={token_for(small, 'bob')}") as bob:
            async with connect(f"{url}/?token={token_for(small, 'alice')}") as alice:
                await alice.send(json.dumps({"text": "x" * 5000}))
                with pytest.raises(ConnectionClosed) as caught:
                    await asyncio.wait_for(alice.recv(), 5)
                assert caught.value.rcvd.code == 1009
            await settle()
            await bob.send(json.dumps({"text": "fine"}))
            assert (await receive_json(bob))["text"] == "fine"


async def test_health_check_answers_without_a_token(settings):
    async with replica(settings) as (url, _):
        reader, writer = await asyncio.open_connection(*url.removeprefix("ws://").split(":"))
        writer.write(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        status = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await writer.wait_closed()
    assert b"200" in status


async def test_a_foreign_browser_origin_is_refused(settings):
    prod_like = dataclasses.replace(settings, env="prod", allowed_origins=("https://chat.example",))
    async with replica(prod_like) as (url, _):
        with pytest.raises(InvalidStatus) as caught:
            async with connect(
                f"{url}/?token={token_for(settings, 'ann')}", origin="https://evil.example"
            ):
                pass
        assert caught.value.response.status_code == 403


async def test_redis_unreachable_answers_unavailable_instead_of_dropping(settings):
    from local.servers import free_port

    async with replica(settings) as (url, server):
        async with connect(f"{url}/?token={token_for(settings, 'alice')}") as alice:
            dead_url = f"redis://127.0.0.1:{free_port()}/0"
            dead = redis.asyncio.Redis.from_url(dead_url, socket_connect_timeout=0.5)
            server.replica.sender = Sender(dead, settings)
            await alice.send(json.dumps({"text": "lost?"}))
            reply = await receive_json(alice)
            await dead.aclose()
    assert reply["type"] == "error" and reply["code"] == "unavailable"
