"""The pieces a fault test breaks on purpose, each a real process we started
and stop by pid: Redis (with its append-only file), fan-out replicas and the
drain, restartable on the same port and data directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from aurora.backends import database
from aurora.settings import Settings
from fanout.memory import jemalloc_env
from local.servers import ManagedProcess, _spawn, free_port, start_redis, wait_for_port
from tests.support import ROOT
from tests.support.draining import drain_until_idle
from tests.support.settings import TEST_SECRET

ROOM = "resilience"


@dataclass
class Restartable:
    """A server that can be killed and started again on the same port."""

    name: str
    port: int
    data_dir: Path
    process: ManagedProcess | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 15) -> float:
        """Send `sig`, wait for the exit; returns the seconds it took to exit."""
        assert self.process is not None
        started = time.monotonic()
        os.kill(self.process.pid, sig)
        self.process.process.wait(timeout)
        self.process = None
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


@dataclass
class RedisServer(Restartable):
    """redis-server as shipped (AOF, fsync every second, noeviction)."""

    def start(self) -> RedisServer:
        self.process = start_redis(self.data_dir, self.port)
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)


@dataclass
class Replica(Restartable):
    """`python -m fanout`, as deployed, with `env` on top of the tests' settings."""

    env: dict[str, str] = field(default_factory=dict)

    def start(self, *, wait: bool = True) -> Replica:
        # On jemalloc, as the image and the local stack run it (fanout/memory.py).
        env = jemalloc_env() | os.environ | self.env
        env |= {"FANOUT_HOST": "127.0.0.1", "FANOUT_PORT": str(self.port)}
        log = self.data_dir / f"{self.name}.log"
        process = _spawn(self.name, [sys.executable, "-m", "fanout"], log, env=env)
        self.process = ManagedProcess(self.name, process, self.url, log)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.process is not None
        wait_for_port(self.port, self.process.process, timeout)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        path = self.data_dir / f"{self.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def stack_env(redis_url: str, mongo_url: str = "", mongo_db: str = "aurora", **extra: str) -> dict:
    """The environment every process of a fault test shares."""
    return {
        "AURORA_ENV": "local",
        "REDIS_URL": redis_url,
        "MONGO_URL": mongo_url,
        "MONGO_DB": mongo_db,
        "JWT_SECRET": TEST_SECRET,
        # Every message of a test stays resumable; a test sends fewer than this.
        "RESUME_WINDOW": "5000",
        "FANOUT_CONSOLE_LOGS": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "AuroraChatTest",
        "POWERTOOLS_METRICS_DISABLED": "true",
    } | extra


def start_replicas(count: int, data_dir: Path, env: dict[str, str]) -> list[Replica]:
    """`count` replicas started at once (their imports overlap), then waited for."""
    replicas = [
        Replica(f"fanout-{i}", free_port(), data_dir, env=env).start(wait=False)
        for i in range(count)
    ]
    for replica in replicas:
        replica.wait_ready()
    return replicas


def new_redis(data_dir: Path) -> RedisServer:
    return RedisServer("redis", free_port(), data_dir).start()


def drain_process(env: dict[str, str], log: Path) -> subprocess.Popen:
    """The drain in a process of its own, running until killed (see
    tests/support/drain_loop.py)."""
    return _spawn(
        "drain",
        [sys.executable, "-m", "tests.support.drain_loop"],
        log,
        env=os.environ | env | {"PYTHONPATH": str(ROOT)},
    )


@dataclass
class Stack:
    """Redis, replicas and a database of one test."""

    redis: RedisServer
    replicas: list[Replica]
    settings: Settings
    env: dict[str, str]
    data_dir: Path

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.replicas]

    def db(self):
        return database(self.settings)

    def drain_everything(self) -> None:
        """What scheduled runs do, until the stream is empty, reclaiming at
        once whatever a killed run left pending."""
        drain_until_idle(self.settings, consumer="final", claim_idle_ms=0, block_ms=10)

    def stop(self) -> None:
        for replica in self.replicas:
            if replica.process is not None:
                replica.process.terminate()
        for replica in self.replicas:
            if replica.process is not None:
                replica.process.wait()
                replica.process = None


def make_stack(
    data_dir: Path, redis_server: RedisServer, mongo_url: str, mongo_db: str, **env: str
) -> Stack:
    """Two replicas over `redis_server`, with `env` on top of the shared settings."""
    shared = stack_env(redis_server.url, mongo_url, mongo_db, **env)
    settings = Settings(
        env="local",
        redis_url=redis_server.url,
        mongo_url=mongo_url,
        mongo_db=mongo_db,
        jwt_secret=TEST_SECRET,
        bcrypt_rounds=4,
    )
    return Stack(redis_server, start_replicas(2, data_dir, shared), settings, shared, data_dir)
