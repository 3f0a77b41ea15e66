"""Sends on one Redis and on a 3-master Redis Cluster: how the work spreads
over the masters, sends/s, and what cluster mode costs per send.

    .venv/bin/python bench/cluster_sends.py [--seconds 10] [--rooms 3000] [--pipeline 200]
        [--partitions 12]

A lean sender: the real send script (`aurora.sending.SEND_SCRIPT`, its KEYS
and ARGV from `script_call`), many small rooms, pipelined EVALSHA calls from
one process, so Redis and not the client is the limit as far as one Python
process can push it. For each setup it reports, per master, the share of the
XADDs (stream and window), of the publishes and of the Redis CPU (`INFO
commandstats`, `INFO cpu`, measured, not assumed), then sends/s, Redis CPU
per send (all masters together) and the sending process's CPU per send.

Starts its own redis-server and cluster (3 masters, no replicas: their CPU
would be counted nowhere) in a temporary folder, stopped by pid.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import redis

from aurora.keyspace import Layout
from aurora.sending import SEND_SCRIPT, script_call
from aurora.settings import Settings
from local.servers import start_redis, start_redis_cluster


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


def run(url_nodes: list[str], client, layout: Layout, args) -> dict:
    """Send for `args.seconds`; per-node deltas and totals."""
    settings = Settings(env="local", rate_limit_messages=10**9, resume_window=50)
    script = client.register_script(SEND_SCRIPT)
    client.script_load(SEND_SCRIPT)  # on every master: a pipeline sends EVALSHA only
    nodes = {url: redis.Redis.from_url(url, decode_responses=True) for url in url_nodes}
    for node in nodes.values():
        node.config_resetstat()
    before = {url: node_stats(node) for url, node in nodes.items()}
    cpu0, t0, sent = time.process_time(), time.perf_counter(), 0
    rooms = [f"room-{i}" for i in range(args.rooms)]
    while time.perf_counter() - t0 < args.seconds:
        pipe = client.pipeline(transaction=False)
        for i in range(args.pipeline):
            room = rooms[(sent + i) % len(rooms)]
            keys, argv = script_call(settings, layout, room, f"u{i % 50}", f"user{i % 50}", "hi")
            script(keys=keys, args=argv, client=pipe)
        pipe.execute()
        sent += args.pipeline
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    after = {url: node_stats(node) for url, node in nodes.items()}
    delta = {
        url: {k: after[url][k] - before[url][k] for k in ("xadd", "publish", "cpu")}
        for url in nodes
    }
    for node in nodes.values():
        node.close()
    return {"sent": sent, "elapsed": elapsed, "client_cpu": cpu, "nodes": delta}


def report(name: str, result: dict) -> None:
    nodes = result["nodes"]
    total = {k: sum(n[k] for n in nodes.values()) or 1 for k in ("xadd", "publish", "cpu")}
    print(f"\n{name}: {result['sent']:,} sends in {result['elapsed']:.1f} s = "
          f"{result['sent'] / result['elapsed']:,.0f} sends/s")  # fmt: skip
    print(f"  {'node':<26} {'XADD %':>7} {'publish %':>9} {'Redis CPU %':>11}")
    for url, n in nodes.items():
        share = {k: 100 * n[k] / total[k] for k in total}
        print(f"  {url:<26} {share['xadd']:>7.1f} {share['publish']:>9.1f} {share['cpu']:>11.1f}")
    redis_us = 1e6 * sum(n["cpu"] for n in nodes.values()) / result["sent"]
    client_us = 1e6 * result["client_cpu"] / result["sent"]
    print(f"  Redis CPU per send (all nodes): {redis_us:.1f} us; "
          f"sender CPU per send: {client_us:.1f} us")  # fmt: skip
    result["redis_us"], result["client_us"] = redis_us, client_us


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rooms", type=int, default=3000)
    parser.add_argument("--pipeline", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=12)
    args = parser.parse_args()

    print(f"python {platform.python_version()}, {platform.machine()}, {platform.node()}, "
          f"redis-py {redis.__version__}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        single = start_redis(Path(tmp) / "single")
        try:
            client = redis.Redis.from_url(single.url, decode_responses=True)
            one = run([single.url], client, Layout(), args)
            client.close()
        finally:
            single.stop()
        report("single Redis, 1 partition", one)

        cluster = start_redis_cluster(Path(tmp) / "cluster", replicas=0)
        try:
            client = redis.RedisCluster.from_url(cluster.nodes[0].url, decode_responses=True)
            urls = [node.url for node in cluster.nodes]
            three = run(urls, client, Layout(cluster=True, partitions=args.partitions), args)
            client.close()
        finally:
            cluster.stop()
        report(f"cluster, 3 masters, {args.partitions} partitions", three)

    rate = lambda r: r["sent"] / r["elapsed"]  # noqa: E731
    print(f"\nsends/s, 3 masters / 1: {rate(three) / rate(one):.2f} (one machine, shared cores)")
    print(f"cluster overhead per send: Redis CPU x{three['redis_us'] / one['redis_us']:.2f}, "
          f"sender CPU x{three['client_us'] / one['client_us']:.2f}")  # fmt: skip
    # On separate hosts each master gets 1/3 of the sends at its own CPU
    # cost per send: the ceiling is the busiest master's.
    busiest = max(n["cpu"] for n in three["nodes"].values()) / three["sent"]
    single_cost = sum(n["cpu"] for n in one["nodes"].values()) / one["sent"]
    print(
        f"projection, one master per host: x{single_cost / busiest:.2f} the sends/s "
        "a single Redis saturates at (Redis CPU per send of each)"
    )


if __name__ == "__main__":
    main()
