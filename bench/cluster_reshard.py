"""Sends while a busy partition's slot moves to another master: how long the
slot stays split, what the senders wait, and that nothing is refused or
written twice.

    .venv/bin/python bench/cluster_reshard.py [--rooms 2000] [--per-migrate 10]
        [--concurrency 32] [--idle-keys 10000]

Starts a 3-master cluster (no replicas) in a temporary folder, stopped by pid.
Fills one partition's slot with `--rooms` rooms that have sent (their keys)
and `--idle-keys` idempotency-sized keys, then moves that slot to another
master as `redis-cli --cluster reshard --cluster-pipeline N` does (SETSLOT
IMPORTING/MIGRATING, `--per-migrate` keys per MIGRATE, SETSLOT NODE), while
`--concurrency` tasks send into those rooms through the fan-out's own path
(`SendBudget.take`, then `Sender.send` with a client_id, on the clients
`aurora.backends` builds). Reports the split, the sends' latency before,
during and after it, refusals, and the stream checked for each acknowledged
message once.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import redis

from aurora.backends import async_redis_client
from aurora.budget import SendBudget
from aurora.keyspace import Layout
from aurora.sending import Accepted, Duplicate, Sender
from aurora.settings import Settings
from local.servers import start_redis_cluster

SETTINGS = Settings(
    env="local",
    rate_limit_messages=10**6,
    resume_window=50,
    user_message_burst=10**9,
    user_messages_per_second=10**6,
)


def move(masters: dict[str, redis.Redis], slot: int, owner: str, target: str, batch: int) -> float:
    """Move `slot` from `owner` to `target`; seconds it stayed split."""
    ids = {a: node.execute_command("CLUSTER", "MYID") for a, node in masters.items()}
    source, (host, port) = masters[owner], target.split(":")
    masters[target].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[owner])
    source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
    started = time.perf_counter()
    while keys := source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
        source.execute_command("MIGRATE", host, port, "", 0, 10_000, "KEYS", *keys)
    for address in [target, owner, *(a for a in masters if a not in (target, owner))]:
        masters[address].execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
    return time.perf_counter() - started


async def main_async(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = start_redis_cluster(Path(tmp) / "cluster", replicas=0)
        try:
            await run(cluster, args)
        finally:
            cluster.stop()


async def run(cluster, args) -> None:
    layout = Layout(cluster=True, partitions=12)
    rooms = []
    i = 0
    while len(rooms) < args.rooms:  # rooms of partition 0 only
        if layout.partition_of(f"room-{i}") == 0:
            rooms.append(f"room-{i}")
        i += 1
    url = cluster.nodes[0].url
    sync = redis.RedisCluster.from_url(url, decode_responses=True)
    stream = layout.room_stream_key(rooms[0])
    slot = sync.keyslot(stream)
    owner = sync.get_node_from_key(stream).name
    target = next(n.name for n in sync.get_primaries() if n.name != owner)
    masters = {n.name: redis.Redis(host=n.host, port=n.port, decode_responses=True)
               for n in sync.get_primaries()}  # fmt: skip
    tag = stream[stream.index("{") : stream.index("}") + 1]
    pipe = masters[owner].pipeline(transaction=False)
    for k in range(args.idle_keys):  # what idempotency keys of the last hours weigh
        pipe.set(f"aurora:bench:{tag}:{k}", "1700000000000-0", px=3_600_000)
    pipe.execute()

    client = async_redis_client(url)
    sender, budget = Sender(client, SETTINGS, layout), SendBudget(client, SETTINGS)
    acked: dict[str, str] = {}
    latencies: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    refused: list[str] = []
    phase = "before"
    stop = asyncio.Event()

    async def one(n: int) -> None:
        room, user, client_id = rooms[n % len(rooms)], f"u{n % 100}", f"c{n}"
        started = time.perf_counter()
        try:
            await budget.take(user, 2)
            outcome = await sender.send(room=room, user_id=user, username=user,
                                        text="hi", client_id=client_id)  # fmt: skip
        except redis.RedisError as exc:
            refused.append(f"{client_id}: {exc!r}")
            return
        assert isinstance(outcome, Accepted | Duplicate), outcome
        acked[client_id] = outcome.id
        latencies[phase].append(time.perf_counter() - started)

    async def worker(first: int) -> None:
        n = first
        while not stop.is_set():
            await one(n)
            n += args.concurrency

    for n in range(len(rooms)):  # every room has its keys
        await one(n)
    latencies["before"].clear()
    workers = [asyncio.create_task(worker(len(rooms) + w)) for w in range(args.concurrency)]
    await asyncio.sleep(1)
    keys = masters[owner].execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
    phase = "during"
    split = await asyncio.to_thread(move, masters, slot, owner, target, args.per_migrate)
    phase = "after"
    await asyncio.sleep(1)
    stop.set()
    await asyncio.gather(*workers)
    await client.aclose()

    entries = sync.xrange(stream)
    by_client = {}
    for entry_id, fields in entries:
        by_client.setdefault(fields.get("client_id"), []).append(entry_id)
    twice = [c for c, ids in by_client.items() if len(ids) > 1]
    missing = [c for c in acked if c not in by_client]
    sync.close()
    for node in masters.values():
        node.close()

    print(f"slot {slot}: {keys:,} keys moved {args.per_migrate} per MIGRATE, split {split:.2f} s")
    for name, values in latencies.items():
        if values:
            values.sort()
            p50, p99 = statistics.median(values), values[int(0.99 * (len(values) - 1))]
            print(f"  sends {name:<6}: {len(values):>6,}  p50 {1e3 * p50:6.1f} ms"
                  f"  p99 {1e3 * p99:7.1f} ms  max {1e3 * values[-1]:7.1f} ms")  # fmt: skip
    print(f"  acknowledged {len(acked):,}, refused {len(refused)}, "
          f"in the stream twice {len(twice)}, missing {len(missing)}")  # fmt: skip
    for line in refused[:5]:
        print("   ", line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rooms", type=int, default=2000)
    parser.add_argument("--per-migrate", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--idle-keys", type=int, default=10_000)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
