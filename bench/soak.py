"""Soak: a steady chat for a long time over two fan-out replicas, with the drain
storing into MongoDB, sampled every interval. Prints one line per sample
(delivered/s, latency p99, RSS of each replica, Redis memory, stream length)
and, at the end, each replica's RSS growth from the end of minute 2 to the
end of the run (the leak check: at most ~2 MiB per replica).

    python bench/soak.py --minutes 10 --clients 200 --rate 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "aurora")]

from websockets.asyncio.client import connect  # noqa: E402

from aurora.keyspace import STREAM_KEY  # noqa: E402
from aurora.settings import Settings  # noqa: E402
from aurora.tokens import issue_token  # noqa: E402
from local.servers import free_port, start_mongo  # noqa: E402
from tests.support.faults import drain_process, new_redis, stack_env, start_replicas  # noqa: E402
from tests.support.settings import TEST_SECRET  # noqa: E402

ROOM = "soak"


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Load:
    """Readers spread over the replicas, one sender per replica; latencies
    from the send time each message carries."""

    def __init__(self, urls: list[str], clients: int, rate: float, settings: Settings) -> None:
        self.urls, self.clients, self.rate, self.settings = urls, clients, rate, settings
        self.delivered = 0
        self.latencies: list[float] = []
        self.closed = 0  # connections the server closed (none expected)
        self.running = True

    def _token(self, i: int) -> str:
        return issue_token(f"soak-{i}", f"soak{i}", self.settings)

    async def _open(self, i: int):
        ws = await connect(self.urls[i % len(self.urls)], max_size=None, ping_interval=None,
                           subprotocols=["aurora.v1", f"bearer.{self._token(i)}"])  # fmt: skip
        await ws.recv()  # ready
        await ws.send(json.dumps({"type": "join", "room": ROOM}))
        return ws

    async def reader(self, ws) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                frame = json.loads(raw)
                if frame.get("type") == "message":
                    self.delivered += 1
                    self.latencies.append(time.time() * 1000 - float(frame["text"]))
        if self.running:
            self.closed += 1

    async def sender(self, ws, rate: float) -> None:
        while self.running:
            await ws.send(json.dumps({"type": "message", "room": ROOM,
                                      "text": f"{time.time() * 1000:.3f}"}))  # fmt: skip
            await asyncio.sleep(1 / rate)

    async def run(self, until: asyncio.Event) -> None:
        sockets = []
        for start in range(0, self.clients, 50):
            batch = range(start, min(start + 50, self.clients))
            sockets += await asyncio.gather(*(self._open(i) for i in batch))
        senders = [await self._open(self.clients + i) for i in range(len(self.urls))]
        # Senders read too: a client that stops reading is cut off (4008).
        tasks = [asyncio.create_task(self.reader(ws)) for ws in sockets + senders]
        tasks += [asyncio.create_task(self.sender(ws, self.rate / len(senders))) for ws in senders]
        await until.wait()
        self.running = False
        for ws in sockets + senders:
            await ws.close()
        for task in tasks:
            task.cancel()


async def soak(args, urls, pids, r, settings) -> None:
    load = Load(urls, args.clients, args.rate, settings)
    done = asyncio.Event()
    runner = asyncio.create_task(load.run(done))
    started = time.monotonic()
    samples = []
    print("minute  delivered/s  p99 ms  " + "  ".join(f"RSS{i} MiB" for i in range(len(pids)))
          + "  redis MiB  stream  closed")  # fmt: skip
    while time.monotonic() - started < args.minutes * 60:
        await asyncio.sleep(args.interval)
        delivered, load.delivered = load.delivered, 0
        latencies, load.latencies = sorted(load.latencies), []
        p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
        rss = [rss_mib(pid) for pid in pids]
        memory = r.info("memory")["used_memory"] / 2**20
        minute = (time.monotonic() - started) / 60
        samples.append((minute, rss))
        print(f"{minute:6.1f}  {delivered / args.interval:11,.0f}  {p99:6.1f}  "
              + "  ".join(f"{x:8.1f}" for x in rss)
              + f"  {memory:9.1f}  {r.xlen(STREAM_KEY):6}  {load.closed:6}",
              flush=True)  # fmt: skip
    done.set()
    await runner
    after_two = [s for s in samples if s[0] >= 2] or samples
    first, final = after_two[0][1], samples[-1][1]
    growth = ", ".join(
        f"replica {i}: {b - a:+.1f} MiB" for i, (a, b) in enumerate(zip(first, final, strict=True))
    )
    print(f"RSS growth from minute {after_two[0][0]:.1f} to {samples[-1][0]:.1f}: {growth}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=200, help="readers, over two replicas")
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second in all")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        redis_server = new_redis(data / "redis")
        mongo = start_mongo(data / "mongo", free_port())
        # The shipped resume window (the tests' is larger), the send rate out of the way.
        env = stack_env(redis_server.url, mongo.url, "soak", RESUME_WINDOW="500",
                        RATE_LIMIT_MESSAGES="1000000")  # fmt: skip
        replicas = start_replicas(2, data, env)
        drain = drain_process(env, data / "drain.log")
        settings = Settings(env="local", redis_url=redis_server.url, jwt_secret=TEST_SECRET)
        r = redis_server.client()
        try:
            asyncio.run(soak(args, [x.url for x in replicas], [x.pid for x in replicas], r,
                             settings))  # fmt: skip
        finally:
            drain.kill()
            drain.wait(10)
            for replica in replicas:
                replica.stop()
            mongo.stop()
            redis_server.stop()


if __name__ == "__main__":
    main()
