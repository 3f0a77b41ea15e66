"""Fan-out benchmark: prints figures, asserts nothing (docs/benchmarks.md).

    python bench/fanout_load.py throughput --clients 1000 --rate 40 --seconds 20 [--repeat 5]
    python bench/fanout_load.py throughput ... --repeat 5 --against-stock
    python bench/fanout_load.py throughput ... --frames react
    python bench/fanout_load.py hold --connections 10000
    python bench/fanout_load.py hold --connections 5000 --wave [--allocator pymalloc]
    python bench/fanout_load.py burst --connections 1000 --processes 4 [--profile FILE]

One replica (`python -m fanout`) pinned to core 0; Redis and the load
generators (separate processes) pinned to core 1. Clients are v1 clients of
distinct users whose tokens are minted with the layer's token module.

throughput: N clients in one room, one sender at a fixed total rate. Reports
deliveries/s, end-to-end latency p50/p99 (send time -> receive time, same
clock), loss, the replica's CPU time per delivered frame (utime+stime from
/proc over the measured window / frames it wrote, from its /metrics) and RSS
per connection. With --frames react the sender posts one message, then
reacts to it at the rate (adding and removing a reaction in turn, so each
one changes the counts and is broadcast): the CPU per delivered `react`
frame, to compare with a message's (no latency: a reaction carries no send
time). With --against-stock each run is a pair, the replica with
websockets' stock broadcast() in its member loop (bench/stock_fanout.py) and
then this one, and the figure compared is ours / stock.

burst: N connections opened in the same instant from several processes
(tokens minted before), against a replica with its default bounded
admission: how long until every one is ready and joined, and how many
upgrades were answered 503 and retried.

hold: N idle connections, RSS per connection, and how long the replica takes
to exit on SIGTERM with all of them open (it closes each with 1012). With
--wave they all close instead, and the replica's RSS is read once they have
and again after its own release (fanout/memory.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import multiprocessing as mp
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "aurora")]

from aurora.settings import Settings  # noqa: E402
from aurora.tokens import issue_token  # noqa: E402
from fanout import memory  # noqa: E402
from local.servers import free_port, start_redis, wait_for_port  # noqa: E402

SECRET = "bench-secret-that-is-long-enough-for-hs256-0123456789"  # noqa: S105 - local only
SETTINGS = Settings(env="local", jwt_secret=SECRET)
ROOM = "bench"
SERVER_CORE, LOAD_CORE = 0, 1
TICKS = os.sysconf("SC_CLK_TCK")


def raise_file_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def still_open(port: int) -> float:
    """Connections the replica still counts; busy closing them is "some"."""
    try:
        return metric(port, "aurora_fanout_connections")
    except OSError:  # /metrics did not answer in time
        return 1.0


# One sender stands for many people in these benchmarks (here and
# bench/client_rooms.py): no per-user or per-connection limit, or the limits
# would measure themselves.
ONE_SENDER_FOR_MANY = {
    "RATE_LIMIT_MESSAGES": "1000000",
    "RATE_LIMIT_CHANGES": "1000000",
    "USER_MESSAGES_PER_SECOND": "1000000",
    "USER_MESSAGE_BURST": "1000000",
    "USER_BYTES_PER_WINDOW": str(2**40),
    "INBOUND_FRAMES_PER_SECOND": "1000000",
    "INBOUND_FRAME_BURST": "1000000",
    "FLOOD_FRAMES_PER_SECOND": "1000000",
}

ALLOCATORS = ("jemalloc", "pymalloc", "malloc")


def allocator_env(allocator: str) -> dict[str, str]:
    """The replica's allocator: jemalloc as the image and the local stack
    run it (fanout/memory.py), or CPython's own, or glibc's malloc."""
    if allocator != "jemalloc":
        return {"PYTHONMALLOC": allocator, "LD_PRELOAD": "", "MALLOC_CONF": ""}
    env = memory.jemalloc_env()
    if not env:
        raise SystemExit("no jemalloc here (Debian: apt-get install libjemalloc2)")
    return env


def start_server(
    redis_url: str,
    port: int,
    log,
    stock: bool = False,
    allocator: str = "jemalloc",
    admissions: int = 10**6,
    profile: str | None = None,
) -> subprocess.Popen:
    env = os.environ | {
        **allocator_env(allocator),
        "AURORA_ENV": "local",
        "REDIS_URL": redis_url,
        "JWT_SECRET": SECRET,
        "FANOUT_HOST": "127.0.0.1",
        "FANOUT_PORT": str(port),
        **ONE_SENDER_FOR_MANY,
        # Capacity is measured here, not admission (burst: 0 leaves the default).
        **({"ADMISSIONS_PER_SECOND": str(admissions)} if admissions else {}),
        "PYTHONPATH": f"{ROOT}:{ROOT / 'layers' / 'aurora'}",
    }
    replica = [str(ROOT / "bench" / "stock_fanout.py")] if stock else ["-m", "fanout"]
    if profile:  # written when the replica exits (SIGTERM ends it cleanly)
        replica = ["-m", "cProfile", "-o", profile, *replica]
    process = subprocess.Popen(
        ["taskset", "-c", str(SERVER_CORE), sys.executable, *replica],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=raise_file_limit,
    )
    wait_for_port(port, process)
    return process


# -- load generator processes ---------------------------------------------------------


def _pin_and_loop():
    os.sched_setaffinity(0, {LOAD_CORE})
    raise_file_limit()
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


async def _open(url: str, user: int, join: bool):
    from websockets.asyncio.client import connect

    token = issue_token(f"bench-{user}", f"bench{user}", SETTINGS)
    ws = await connect(url, subprotocols=["aurora.v1", f"bearer.{token}"], compression=None,
                       open_timeout=120)  # fmt: skip
    await ws.recv()  # ready
    if join:
        await ws.send(json.dumps({"type": "join", "room": ROOM}))
        await ws.recv()  # joined
    return ws


class Receiver(asyncio.Protocol):
    """A lean receiving client, so one core of load generators can take 40,000+
    frames/s (a python-websockets client costs ~25 us per frame). The upgrade
    request and every frame it sends are the library's (`Frame.serialize`);
    it only reads the server's unmasked frames itself, and takes the send time
    out of `"text":"<ns>"` without decoding the JSON."""

    def __init__(self, host: str, port: int, token: str, joined: asyncio.Future) -> None:
        self.request = (
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: aurora.v1, bearer.{token}\r\n\r\n"
        ).encode()
        self.joined = joined
        self.buffer = bytearray()
        self.upgraded = False
        self.ready_at = 0.0  # epoch seconds of the `ready` frame
        self.received = 0
        self.latencies: list[float] = []

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def send(self, opcode, payload: bytes) -> None:
        from websockets.frames import Frame

        self.transport.write(Frame(opcode, payload).serialize(mask=True))

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Opcode

        now = time.time_ns()
        buf = self.buffer
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in buf[: buf.find(b"\r\n")]:
                if not self.joined.done():
                    self.joined.set_exception(RuntimeError(bytes(buf[:end]).decode()))
                return
            del buf[: end + 4]
            self.upgraded = True
        while len(buf) >= 2:
            length, start = buf[1] & 0x7F, 2
            if length == 126:
                length, start = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                length, start = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < start + length:
                return
            opcode, payload = buf[0] & 0x0F, bytes(buf[start : start + length])
            del buf[: start + length]
            if opcode == 1:
                if payload.startswith(b'{"type":"message"'):
                    self.received += 1
                    at = payload.find(b'"text":"') + 8
                    sent = int(payload[at : payload.index(b'"', at)])
                    self.latencies.append((now - sent) / 1e6)
                elif payload.startswith(b'{"type":"react"'):
                    self.received += 1
                elif payload.startswith(b'{"type":"ready"'):
                    self.ready_at = time.time()
                    self.send(Opcode.TEXT, json.dumps({"type": "join", "room": ROOM}).encode())
                elif payload.startswith(b'{"type":"joined"'):
                    self.joined.set_result(None)
            elif opcode == 9:
                self.send(Opcode.PONG, payload)


def receivers(url: str, first_user: int, count: int, ready, stop, results) -> None:
    """`count` clients in the room; each records the latency of every message."""
    loop = _pin_and_loop()
    host, port = url.removeprefix("ws://").split(":")

    async def one(user: int) -> Receiver:
        token = issue_token(f"bench-{user}", f"bench{user}", SETTINGS)
        joined = loop.create_future()
        _, protocol = await loop.create_connection(
            lambda: Receiver(host, int(port), token, joined), host, int(port)
        )
        await asyncio.wait_for(joined, 30)
        return protocol

    async def main() -> None:
        clients: list[Receiver] = []
        for start in range(0, count, 100):
            batch = range(first_user + start, first_user + min(start + 100, count))
            clients += await asyncio.gather(*(one(u) for u in batch))
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.2)
        # Let the last frames arrive: until nothing new for 2 s (at most 60 s).
        last, quiet_since, deadline = -1, time.monotonic(), time.monotonic() + 60
        while time.monotonic() - quiet_since < 2 and time.monotonic() < deadline:
            now = sum(c.received for c in clients)
            if now != last:
                last, quiet_since = now, time.monotonic()
            await asyncio.sleep(0.2)
        results.put((sum(c.received for c in clients), [x for c in clients for x in c.latencies]))

    loop.run_until_complete(main())


def sender(url: str, rate: float, seconds: float, results, frames: str = "message") -> None:
    """One client sending `rate` messages (or reactions) per second into the room."""
    loop = _pin_and_loop()

    async def main() -> None:
        ws = await _open(url, 10**9, True)
        sent, frame = 0, None
        if frames == "react":  # one message to react to, then only reactions
            target = {"type": "message", "room": ROOM, "text": str(time.time_ns()),
                      "client_id": "target"}  # fmt: skip
            await ws.send(json.dumps(target))
            while (reply := json.loads(await ws.recv()))["type"] != "ack":
                pass
            frame, sent = {"type": "react", "room": ROOM, "id": reply["id"], "emoji": "👍"}, 1
        drain = asyncio.ensure_future(_drain(ws))
        interval, start, n = 1.0 / rate, time.monotonic(), 0
        while time.monotonic() - start < seconds:
            if frame is None:
                await ws.send(json.dumps({"type": "message", "room": ROOM,
                                          "text": str(time.time_ns())}))  # fmt: skip
            else:  # on, off, on, ...: each one changes the counts
                await ws.send(json.dumps(frame | {"on": n % 2 == 0}))
            sent += 1
            n += 1
            await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))
        drain.cancel()
        results.put(sent)

    loop.run_until_complete(main())


async def _drain(ws) -> None:
    async for _ in ws:
        pass


def openers(url: str, first_user: int, count: int, ready, stop, go, results) -> None:
    """`count` clients that open their connections at once when `go` is set
    (tokens minted before), retry a 503 after about its Retry-After, and
    report when each was ready and joined (epoch seconds) and the 503s."""
    loop = _pin_and_loop()
    host, port = url.removeprefix("ws://").split(":")
    tokens = [issue_token(f"bench-{u}", f"bench{u}", SETTINGS) for u in
              range(first_user, first_user + count)]  # fmt: skip
    busy = 0

    async def one(token: str) -> tuple[float, float]:
        nonlocal busy
        while True:
            joined = loop.create_future()
            transport, protocol = await loop.create_connection(
                functools.partial(Receiver, host, int(port), token, joined), host, int(port)
            )
            try:
                await asyncio.wait_for(joined, 60)
                return protocol.ready_at, time.time()
            except RuntimeError as exc:  # 503 busy: as a client would, after Retry-After
                if " 503 " not in str(exc):
                    raise
                busy += 1
                transport.close()
                await asyncio.sleep(0.5 + random.random())

    async def main() -> None:
        ready.set()
        await asyncio.to_thread(go.wait)
        done = await asyncio.gather(*(one(t) for t in tokens))
        results.put((done, busy))
        await asyncio.to_thread(stop.wait)

    loop.run_until_complete(main())


def holders(url: str, first_user: int, count: int, ready, stop) -> None:
    loop = _pin_and_loop()

    async def main() -> None:
        sockets = []
        for start in range(0, count, 50):
            batch = range(first_user + start, first_user + min(start + 50, count))
            sockets += await asyncio.gather(*(_open(url, u, False) for u in batch))
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.2)

    loop.run_until_complete(main())


# -- the two benchmarks ------------------------------------------------------------


@contextlib.contextmanager
def replica_under_test(
    stock: bool = False,
    allocator: str = "jemalloc",
    admissions: int = 10**6,
    profile: str | None = None,
):
    """Redis pinned to the load core and one fan-out replica (pinned by
    start_server); yields (server process, its port, its ws:// URL)."""
    with tempfile.TemporaryDirectory() as tmp:
        redis = start_redis(Path(tmp))
        subprocess.run(["taskset", "-p", "-c", str(LOAD_CORE), str(redis.pid)],
                       check=True, capture_output=True)  # fmt: skip
        port = free_port()
        with open(Path(tmp) / "fanout.log", "wb") as log:
            server = start_server(redis.url, port, log, stock, allocator, admissions, profile)
            try:
                yield server, port, f"ws://127.0.0.1:{port}"
            finally:
                try:
                    if server.poll() is None:
                        stop_replica(server)
                finally:  # even if it did not exit in time: leave nothing running
                    if server.poll() is None:
                        server.kill()
                    redis.stop()
                    for line in (Path(tmp) / "fanout.log").read_text().splitlines():
                        # What its allocator held at start and after a wave (fanout/memory.py).
                        if "memory released" in line or "fan-out listening" in line:
                            print(f"replica: {line}")


def stop_replica(server: subprocess.Popen) -> float:
    """SIGTERM (the replica closes every client with 1012, then exits); the
    seconds it took to exit."""
    started = time.monotonic()
    server.terminate()
    server.wait(60)
    return time.monotonic() - started


def start_load(ctx, target, total: int, processes: int, extra: tuple, timeout: float) -> list:
    """`processes` load-generator processes sharing `total` clients; returns
    them once every one has connected its share."""
    per = -(-total // processes)
    readies, procs = [], []
    for i in range(processes):
        ready = ctx.Event()
        count = min(per, total - i * per)
        # Daemons: if one fails to connect, the others do not keep this process alive.
        proc = ctx.Process(target=target, args=(extra[0], i * per, count, ready, *extra[1:]),
                           daemon=True)  # fmt: skip
        proc.start()
        readies.append(ready)
        procs.append(proc)
    for ready in readies:
        if not ready.wait(timeout):
            raise SystemExit("load generators did not connect (see their errors above)")
    return procs


def throughput(args) -> None:
    """One run, or `--repeat` runs and the spread of the CPU figure: on a VM
    it moves by 10-20 % within an hour (docs/benchmarks.md). With
    --against-stock, each run is a stock replica then ours, minutes apart, so
    both see the same machine; their ratio moves much less than either."""
    ours, stock = [], []
    for run in range(args.repeat):
        if args.repeat > 1:
            print(f"-- run {run + 1} of {args.repeat}")
        if args.against_stock:
            print("stock websockets.broadcast():")
            stock.append(throughput_once(args, stock=True))
            print("this replica:")
        ours.append(throughput_once(args))
        if args.against_stock:
            ratio = ours[-1] / stock[-1]
            print(f"ours / stock = {ours[-1]:.2f} / {stock[-1]:.2f} us = {ratio:.3f}")
    if args.repeat > 1:
        print(f"server CPU per delivered frame over {args.repeat} runs: {spread(ours)} us")
    if args.against_stock:
        print(f"stock broadcast() over {args.repeat} runs: {spread(stock)} us")
        ratios = [o / s for o, s in zip(ours, stock, strict=True)]
        print(f"ours / stock per run: {spread(ratios, '.3f')}")


def spread(figures: list[float], form: str = ".2f") -> str:
    figures = sorted(figures)
    median = statistics.median(figures)
    return f"min {figures[0]:{form}}, median {median:{form}}, max {figures[-1]:{form}}"


def throughput_once(args, stock: bool = False) -> float:
    """One run; prints its figures and returns the CPU per delivery in us."""
    ctx = mp.get_context("spawn")
    with replica_under_test(stock, args.allocator) as (server, port, url):
        rss_idle = rss_bytes(server.pid)
        stop, results = ctx.Event(), ctx.Queue()
        procs = start_load(ctx, receivers, args.clients, args.processes,
                           (url, stop, results), timeout=120)  # fmt: skip
        rss_connected = rss_bytes(server.pid)
        sent_q = ctx.Queue()
        send_proc = ctx.Process(
            target=sender, args=(url, args.rate, args.seconds, sent_q, args.frames)
        )
        send_proc.start()
        time.sleep(args.warmup)
        cpu0, out0, t0 = (
            cpu_seconds(server.pid),
            metric(port, "aurora_fanout_messages_out_total"),
            time.monotonic(),
        )
        time.sleep(args.seconds - args.warmup - 1)
        cpu1, out1, t1 = (
            cpu_seconds(server.pid),
            metric(port, "aurora_fanout_messages_out_total"),
            time.monotonic(),
        )
        sent = sent_q.get(timeout=60)
        send_proc.join()
        stop.set()
        received, latencies = 0, []
        for _ in procs:
            got, lat = results.get(timeout=120)
            received += got
            latencies += lat
        for proc in procs:
            proc.join()
    deliveries = out1 - out0
    latencies.sort()
    expected = sent * args.clients
    print(f"clients={args.clients} rate={args.rate}/s seconds={args.seconds} "
          f"load-processes={args.processes} frames={args.frames}")  # fmt: skip
    print(f"messages sent={sent} deliveries expected={expected} received={received} "
          f"lost={expected - received}")  # fmt: skip
    print(f"deliveries/s (server, measured window)={deliveries / (t1 - t0):,.0f}")
    if latencies:  # reactions carry no send time
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        p999 = latencies[int(len(latencies) * 0.999) - 1]
        print(f"latency ms p50={statistics.median(latencies):.1f} p99={p99:.1f} "
              f"p99.9={p999:.1f} max={latencies[-1]:.1f} (p99.9/p99={p999 / p99:.2f})")  # fmt: skip
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    print(f"server CPU per delivered frame={(user + system) / deliveries * 1e6:.2f} us "
          f"(user {user / deliveries * 1e6:.2f} + system {system / deliveries * 1e6:.2f}; "
          f"{(user + system) / (t1 - t0) * 100:.0f}% of one core)")  # fmt: skip
    print(f"server RSS per connection={(rss_connected - rss_idle) / args.clients / 1024:.1f} KiB")
    return (user + system) / deliveries * 1e6


def hold(args) -> None:
    ctx = mp.get_context("spawn")
    with replica_under_test(allocator=args.allocator) as (server, port, url):
        time.sleep(0.5)
        rss_idle = rss_bytes(server.pid)
        stop = ctx.Event()
        started = time.monotonic()
        procs = start_load(ctx, holders, args.connections, args.processes,
                           (url, stop), timeout=300)  # fmt: skip
        took = time.monotonic() - started
        time.sleep(args.hold)
        open_now = metric(port, "aurora_fanout_connections")
        rss_full = rss_bytes(server.pid)
        if args.wave:  # the connections close; the replica stays
            stop.set()
            for proc in procs:
                proc.join(60)
            deadline = time.monotonic() + 60
            while still_open(port) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2)
            rss_closed = rss_bytes(server.pid)
            # The replica's own release once the wave is over (fanout/memory.py).
            time.sleep(3 * memory.CHECK_SECONDS)
            rss_after = rss_bytes(server.pid)
        stopped_in = stop_replica(server)  # with every connection still open (unless --wave)
        stop.set()
        for proc in procs:
            proc.join(60)
    print(f"connections requested={args.connections} open={open_now:.0f} "
          f"(opened in {took:.1f} s, held {args.hold} s)")  # fmt: skip
    print(f"server RSS idle={rss_idle / 2**20:.1f} MiB with connections={rss_full / 2**20:.1f} MiB")
    print(f"server RSS per connection={(rss_full - rss_idle) / args.connections / 1024:.1f} KiB")
    if args.wave:
        print(f"server RSS once the wave closed={rss_closed / 2**20:.1f} MiB "
              f"({(rss_closed - rss_idle) / rss_idle * 100:+.1f}% of idle)")  # fmt: skip
        print(f"server RSS after its release={rss_after / 2**20:.1f} MiB "
              f"({(rss_after - rss_idle) / rss_idle * 100:+.1f}% of idle)")  # fmt: skip
    else:
        print(f"SIGTERM to exit with {open_now:.0f} connections open: {stopped_in:.1f} s")


def burst(args) -> None:
    """N connections opened in the same instant by several processes, against
    a replica with its default admission (ADMISSIONS_PER_SECOND), unless
    --admissions says otherwise."""
    ctx = mp.get_context("spawn")
    replica = replica_under_test(admissions=args.admissions, profile=args.profile)
    with replica as (server, port, url):
        time.sleep(0.5)
        stop, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
        procs = start_load(ctx, openers, args.connections, args.processes,
                           (url, stop, go, results), timeout=120)  # fmt: skip
        cpu_before = sum(cpu_seconds(server.pid))
        started = time.time()
        go.set()
        times, busy = [], 0  # (ready, joined) per connection
        for _ in procs:
            each, retried = results.get(timeout=300)
            times += each
            busy += retried
        open_now = metric(port, "aurora_fanout_connections")
        cpu = sum(cpu_seconds(server.pid)) - cpu_before  # to the last join, and a little more
        stop.set()
        for proc in procs:
            proc.join(60)
    print(f"replica CPU during the burst={cpu:.2f} s "
          f"({cpu / args.connections * 1000:.2f} ms per connection)")  # fmt: skip
    print(f"connections={args.connections} load-processes={args.processes} "
          f"admissions/s={args.admissions or 'default'} open={open_now:.0f}")  # fmt: skip
    for name, index in (("ready (admitted, authenticated, slot taken)", 0),
                        ("joined (one room, its presence)", 1)):  # fmt: skip
        took = sorted(each[index] - started for each in times)
        half, most = took[len(took) // 2], took[int(len(took) * 0.9) - 1]
        print(f"{name}: all {len(took)} in {took[-1]:.2f} s (half in {half:.2f} s, "
              f"90% in {most:.2f} s)")  # fmt: skip
    print(f"upgrades answered 503 and retried: {busy}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--clients", type=int, default=1000)
    t.add_argument("--rate", type=float, default=40.0, help="total messages per second")
    t.add_argument("--seconds", type=float, default=20.0)
    t.add_argument("--warmup", type=float, default=3.0)
    t.add_argument("--processes", type=int, default=4, help="receiver processes")
    t.add_argument("--repeat", type=int, default=1, help="runs, each with a fresh replica")
    t.add_argument("--frames", choices=("message", "react"), default="message",
                   help="what the sender sends at the rate")  # fmt: skip
    t.add_argument("--against-stock", action="store_true",
                   help="before each run, the same with websockets' stock broadcast()")  # fmt: skip
    t.add_argument("--allocator", choices=ALLOCATORS, default="jemalloc",
                   help="the replica's allocator (jemalloc: as shipped)")  # fmt: skip
    t.set_defaults(run=throughput)
    h = sub.add_parser("hold")
    h.add_argument("--connections", type=int, default=10_000)
    h.add_argument("--processes", type=int, default=10)
    h.add_argument("--hold", type=float, default=5.0)
    h.add_argument("--allocator", choices=ALLOCATORS, default="jemalloc",
                   help="the replica's allocator (jemalloc: as shipped)")  # fmt: skip
    h.add_argument("--wave", action="store_true",
                   help="then close them all and report the RSS the replica keeps")  # fmt: skip
    h.set_defaults(run=hold)
    b = sub.add_parser("burst")
    b.add_argument("--connections", type=int, default=1000)
    b.add_argument("--processes", type=int, default=4)
    b.add_argument("--admissions", type=int, default=0,
                   help="ADMISSIONS_PER_SECOND of the replica (0: its default)")  # fmt: skip
    b.add_argument("--profile", metavar="FILE",
                   help="run the replica under cProfile, its stats written to FILE")  # fmt: skip
    b.set_defaults(run=burst)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
