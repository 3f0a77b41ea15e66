"""Sends on one Redis, on a one-master Redis Cluster and on 3 masters: how the
work spreads over the masters, sends/s, and what cluster mode costs per send.

    .venv/bin/python bench/cluster_sends.py [--seconds 10] [--rooms 3000] [--pipeline 200]
        [--partitions 12] [--concurrency 64]

Two senders, each run against every setup:
- lean: the real send script (`aurora.sending.SEND_SCRIPT`, its KEYS and ARGV
  from `script_call`) for many small rooms, pipelined from one process, so
  Redis and not the client is the limit as far as one Python process can push
  it. On a cluster each batch is split by the slot of each send (the room's
  partition, known up front) into one plain pipeline per master, as the
  fan-out sends (`AsyncRedisCluster.execute_in_slot`); on 3 masters also
  through redis-py's cluster pipeline, which routes every command itself.
- fan-out path: what a fan-out replica runs per message, the user's budget
  (`SendBudget.take`) then the room's script (`Sender.send`), over asyncio
  with `--concurrency` sends at a time, on the clients `aurora.backends`
  builds.

For each: sends/s, Redis CPU per send (all masters together, `INFO cpu`) and
the sending process's CPU per send, and the ratios to one Redis. For the lean
sender on 3 masters, each master's share of the XADDs (stream and window), of
the publishes and of the Redis CPU (`INFO commandstats`: measured, not
assumed). The one-master cluster separates what cluster mode costs a Redis
from what spreading the sends over three processes on one machine costs.

Starts its own redis-servers (clusters without replicas: their CPU would be
counted nowhere) in a temporary folder, stopped by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from redis.crc import key_slot

from aurora.backends import async_redis_client
from aurora.budget import SendBudget
from aurora.keyspace import Layout
from aurora.sending import SEND_SCRIPT, Sender, script_call
from aurora.settings import Settings
from local.servers import start_redis, start_redis_cluster

SETTINGS = Settings(
    env="local",
    rate_limit_messages=10**9,
    resume_window=50,
    user_message_burst=10**9,
    user_messages_per_second=10**6,
)

Batch = list[tuple[list[str], list]]


def node_stats(client: redis.Redis) -> dict[str, float]:
    """Calls of the commands that count and the server's CPU seconds so far."""
    stats = client.info("commandstats")
    cpu = client.info("cpu")

    def calls(name: str) -> int:
        return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))

    return {
        "xadd": calls("xadd"),
        "publish": calls("publish") + calls("spublish"),
        "cpu": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
    }


class Measure:
    """Per-node deltas of `node_stats` and this process's CPU over a block."""

    def __init__(self, urls: list[str]) -> None:
        self.nodes = {url: redis.Redis.from_url(url, decode_responses=True) for url in urls}

    def __enter__(self) -> Measure:
        for node in self.nodes.values():
            node.flushall()
            node.config_resetstat()
        self._before = {url: node_stats(node) for url, node in self.nodes.items()}
        self._cpu, self._t0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *_exc) -> None:
        self.elapsed = time.perf_counter() - self._t0
        self.client_cpu = time.process_time() - self._cpu
        after = {url: node_stats(node) for url, node in self.nodes.items()}
        self.by_node = {
            url: {k: after[url][k] - self._before[url][k] for k in after[url]} for url in self.nodes
        }
        for node in self.nodes.values():
            node.close()


def plain_pipeline(client: redis.Redis) -> Callable[[Batch], None]:
    """Through one pipeline of `client` (a single Redis, or redis-py's cluster
    pipeline, which finds each command's node itself)."""
    script = client.register_script(SEND_SCRIPT)

    def send(batch: Batch) -> None:
        pipe = client.pipeline(transaction=False)
        for keys, argv in batch:
            script(keys=keys, args=argv, client=pipe)
        pipe.execute()

    return send


def by_slot(client: redis.RedisCluster) -> Callable[[Batch], None]:
    """One plain pipeline per master, each send to the master of its known slot."""
    sha = client.register_script(SEND_SCRIPT).sha
    links: dict[str, redis.Redis] = {}

    def link(slot: int) -> redis.Redis:
        node = client.nodes_manager.get_node_from_slot(slot)
        if node.name not in links:
            links[node.name] = redis.Redis(host=node.host, port=node.port, decode_responses=True)
        return links[node.name]

    def send(batch: Batch) -> None:
        pipes: dict[int, redis.client.Pipeline] = {}
        for keys, argv in batch:
            target = link(key_slot(keys[0].encode()))
            pipe = pipes.get(id(target)) or pipes.setdefault(
                id(target), target.pipeline(transaction=False)
            )
            pipe.execute_command("EVALSHA", sha, len(keys), *keys, *argv)
        for pipe in pipes.values():
            pipe.execute()

    return send


def lean(
    urls: list[str], send: Callable[[Batch], None], layout: Layout, args, seconds: float
) -> Measure:
    rooms = [f"room-{i}" for i in range(args.rooms)]
    sent = 0
    with Measure(urls) as measure:
        while time.perf_counter() - measure._t0 < seconds:
            batch = [
                script_call(SETTINGS, layout, rooms[(sent + i) % len(rooms)],
                            f"u{i % 50}", f"user{i % 50}", "hi")
                for i in range(args.pipeline)
            ]  # fmt: skip
            send(batch)
            sent += len(batch)
    measure.sent = sent
    return measure


async def fanout_path(url: str, urls: list[str], layout: Layout, args, seconds: float) -> Measure:
    client = async_redis_client(url)
    sender, budget = Sender(client, SETTINGS, layout), SendBudget(client, SETTINGS)
    sent = 0

    async def one(i: int) -> None:
        user = f"u{i % 50}"
        await budget.take(user, 2)
        await sender.send(room=f"room-{i % args.rooms}", user_id=user, username=user, text="hi")

    async def worker(first: int) -> None:
        nonlocal sent
        i = first
        while time.perf_counter() - measure._t0 < seconds:
            await one(i)
            sent += 1
            i += args.concurrency

    await asyncio.gather(*(one(i) for i in range(args.concurrency)))  # scripts loaded
    with Measure(urls) as measure:
        await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
    await client.aclose()
    measure.sent = sent
    return measure


class Total:
    """The sum of one sender's rounds on one setup."""

    def __init__(self) -> None:
        self.sent, self.elapsed, self.client_cpu = 0, 0.0, 0.0
        self.by_node: dict[str, dict[str, float]] = {}

    def add(self, m: Measure) -> None:
        self.sent += m.sent
        self.elapsed += m.elapsed
        self.client_cpu += m.client_cpu
        for url, stats in m.by_node.items():
            mine = self.by_node.setdefault(url, dict.fromkeys(stats, 0.0))
            for k, v in stats.items():
                mine[k] += v


def per_send(m: Total) -> tuple[float, float, float]:
    """(sends/s, Redis CPU µs per send, sender CPU µs per send)"""
    redis_cpu = sum(n["cpu"] for n in m.by_node.values())
    return m.sent / m.elapsed, 1e6 * redis_cpu / m.sent, 1e6 * m.client_cpu / m.sent


def spread(m: Total) -> None:
    total = {k: sum(n[k] for n in m.by_node.values()) or 1 for k in ("xadd", "publish", "cpu")}
    print(f"\n  {'master':<26} {'XADD %':>7} {'publish %':>9} {'Redis CPU %':>11}")
    for url, n in m.by_node.items():
        share = {k: 100 * n[k] / total[k] for k in total}
        print(f"  {url:<26} {share['xadd']:>7.1f} {share['publish']:>9.1f} {share['cpu']:>11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0, help="per sender and setup")
    parser.add_argument("--rounds", type=int, default=10, help="the seconds in as many turns")
    parser.add_argument("--rooms", type=int, default=3000)
    parser.add_argument("--pipeline", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    print(f"python {platform.python_version()}, {platform.machine()}, {platform.node()}, "
          f"redis-py {redis.__version__}")  # fmt: skip
    single_layout, cluster_layout = Layout(), Layout(cluster=True, partitions=args.partitions)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        # Every setup runs at once and they take turns, `--rounds` times: a
        # machine whose load changes during the run changes every setup's
        # figures alike, so the ratios hold.
        server = start_redis(Path(tmp) / "single")
        stack.callback(server.stop)
        single = stack.enter_context(redis.Redis.from_url(server.url, decode_responses=True))
        single.script_load(SEND_SCRIPT)
        setups = {"1 Redis": ([server.url], single, single_layout)}
        for masters in (1, 3):
            name = f"{masters} master{'s' if masters > 1 else ''}"
            cluster = start_redis_cluster(Path(tmp) / name, masters=masters, replicas=0)
            stack.callback(cluster.stop)
            urls = [node.url for node in cluster.nodes]
            client = redis.RedisCluster.from_url(urls[0], decode_responses=True)
            stack.callback(client.close)
            client.script_load(SEND_SCRIPT)  # on every master
            setups[name] = (urls, client, cluster_layout)

        runs: dict[tuple[str, str], Callable[[float], Measure]] = {}
        for name, (urls, client, lay) in setups.items():
            cluster = name != "1 Redis"
            send = by_slot(client) if cluster else plain_pipeline(client)
            runs[name, "lean"] = functools.partial(lean, urls, send, lay, args)
            if name == "3 masters":
                runs[name, "lean, redis-py routing"] = functools.partial(
                    lean, urls, plain_pipeline(client), lay, args
                )
            runs[name, "fan-out path"] = functools.partial(_fanout, urls, lay, args)
        totals = {key: Total() for key in runs}
        for _ in range(args.rounds):
            for key, run in runs.items():
                totals[key].add(run(args.seconds / args.rounds))

    print("\nper send, µs of CPU: Redis (all masters together), the sender; x: against 1 Redis")
    print(f"{'setup':<10} {'sender':<24} {'sends/s':>8} {'Redis':>7} {'sender':>7}   "
          "x Redis, sender")  # fmt: skip
    for (setup, sender), m in totals.items():
        rate, redis_us, client_us = per_send(m)
        base = per_send(totals["1 Redis", sender.split(",")[0]])
        print(f"{setup:<10} {sender:<24} {rate:>8,.0f} {redis_us:>7.1f} {client_us:>7.1f}   "
              f"x{redis_us / base[1]:.2f}, x{client_us / base[2]:.2f}")  # fmt: skip
    three = totals["3 masters", "lean"]
    spread(three)
    rate = per_send(three)[0] / per_send(totals["1 Redis", "lean"])[0]
    print(f"\nlean sends/s, 3 masters / 1 Redis: {rate:.2f} (one machine, shared cores)")
    # On separate hosts each master gets 1/3 of the sends at its own CPU
    # cost per send: the ceiling is the busiest master's.
    busiest = max(n["cpu"] for n in three.by_node.values()) / three.sent
    single_cost = per_send(totals["1 Redis", "lean"])[1] / 1e6
    print(
        f"projection, one master per host: x{single_cost / busiest:.2f} the sends/s "
        "a single Redis saturates at (Redis CPU per send of each)"
    )


def _fanout(urls: list[str], layout: Layout, args, seconds: float) -> Measure:
    return asyncio.run(fanout_path(urls[0], urls, layout, args, seconds))


if __name__ == "__main__":
    main()
