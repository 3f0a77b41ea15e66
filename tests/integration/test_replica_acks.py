"""REDIS_REPLICA_ACKS on a real Redis and a real replica: a message, edit or
delete is acknowledged only once a replica has it (WAIT on the connection
that wrote it); without one the sender gets `unavailable`, and its resend
with the same client_id is answered once, under the first id."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import redis

from aurora import changes
from aurora.backends import database, layout, redis_client
from aurora.errors import UnavailableError
from aurora.settings import Settings
from aurora.tokens import Claims
from local.servers import ManagedProcess, attach_replica, start_redis
from tests.integration.test_fanout_v1 import join, v1
from tests.support.fanout import receive_json, replica, send_json

ROOM = "vault"


@pytest.fixture
def primary(tmp_path) -> Iterator[ManagedProcess]:
    server = start_redis(tmp_path / "primary")
    yield server
    server.stop()


@pytest.fixture
def strict(settings: Settings, primary: ManagedProcess) -> Settings:
    return dataclasses.replace(
        settings, redis_url=primary.url, redis_replica_acks=1, redis_replica_ack_timeout_ms=1000
    )


def start_replica(primary: ManagedProcess, data_dir) -> ManagedProcess:
    """A second redis-server replicating `primary`, once the primary counts it."""
    node = start_redis(data_dir)
    attach_replica(primary, node)
    return node


def kill(node: ManagedProcess) -> None:
    """The replica lost (and no waiting on a graceful shutdown)."""
    node.process.kill()
    node.process.wait(10)


async def send(ws, frame: dict) -> dict:
    await send_json(ws, frame)
    return await reply_to(ws, frame["client_id"])


async def reply_to(ws, client_id: str) -> dict:
    """The ack or error answering `client_id` (not the broadcast of a change)."""
    while True:
        reply = await receive_json(ws)
        if reply.get("client_id") == client_id and reply["type"] not in ("message", "edit"):
            return reply


# With a replica up, a WAIT can still time out: a freshly synced replica on a
# loaded machine may answer late. The client's answer to `unavailable` is to
# send again with the same client_id, which these tests do, a few times.
RESENDS = 5


async def resent_until_answered(ws, frame: dict) -> dict:
    for _ in range(RESENDS):
        reply = await send(ws, frame)
        if reply.get("code") != "unavailable":
            break
    return reply


def message(client_id: str) -> dict:
    return {"type": "message", "room": ROOM, "text": client_id, "client_id": client_id}


async def test_a_send_is_acknowledged_only_once_a_replica_has_it(strict, primary, tmp_path):
    async with replica(strict) as (url, _):
        alice = await v1(url, strict, "alice")
        await join(alice, ROOM)

        refused = await send(alice, message("c1"))  # no replica: WAIT times out
        assert refused["type"] == "error" and refused["code"] == "unavailable", refused

        node = start_replica(primary, tmp_path / "replica")
        try:
            # The first write, now replicated: answered under its id.
            again = await resent_until_answered(alice, message("c1"))
            assert again["type"] == "ack" and again.get("duplicate") is True, again
            fresh = await resent_until_answered(alice, message("c2"))
            assert fresh["type"] == "ack" and not fresh.get("duplicate"), fresh
            # Acknowledged means on the replica already, not eventually.
            on_replica = redis.Redis.from_url(node.url, decode_responses=True)
            stream = layout(strict).room_stream_key(ROOM)
            ids = [entry_id for entry_id, _ in on_replica.xrange(stream)]
            assert ids == [again["id"], fresh["id"]]
            on_replica.close()

            # A change too: edited with the replica up; refused once it is gone.
            edited = await resent_until_answered(alice, {"type": "edit", "room": ROOM,
                "id": fresh["id"], "text": "edited", "client_id": "e1"})  # fmt: skip
            assert edited["type"] == "ack", edited
        finally:
            kill(node)
        lost = await send(alice, {"type": "edit", "room": ROOM, "id": fresh["id"],
                                  "text": "again", "client_id": "e2"})  # fmt: skip
        assert lost["type"] == "error" and lost["code"] == "unavailable", lost
        await alice.close()


async def test_a_rest_change_waits_for_a_replica_too(strict, primary, tmp_path):
    async with replica(strict) as (url, _):
        alice = await v1(url, strict, "alice")
        await join(alice, ROOM)
        node = start_replica(primary, tmp_path / "replica")
        try:
            sent = await resent_until_answered(alice, message("c1"))
            assert sent["type"] == "ack", sent
        finally:
            kill(node)
        await alice.close()
    claims = Claims("id-alice", "alice", 0, 2**31, "t")
    edit = changes.Change("edit", ROOM, sent["id"], text="over REST")
    client, db = redis_client(strict.redis_url), database(strict)
    with pytest.raises(UnavailableError):
        changes.over_rest(db, client, strict, claims, edit)

    node = start_replica(primary, tmp_path / "replica-2")
    try:
        for _ in range(RESENDS):  # as a client answers a 503: again
            try:
                done = changes.over_rest(db, client, strict, claims, edit)
                break
            except UnavailableError:
                continue
        else:
            pytest.fail("the edit was refused with a replica up")
        assert done["message_id"] == sent["id"] and done["id"]
    finally:
        kill(node)
