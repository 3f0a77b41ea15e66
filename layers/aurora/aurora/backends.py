"""Redis and MongoDB clients, chosen by URL and created once per process.

Nothing connects at import time; the first call creates the client and, for
MongoDB, makes sure the indexes exist (once per process start, not per call).
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from collections.abc import Container
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from aurora.errors import ConfigurationError, UnavailableError
from aurora.keyspace import Layout
from aurora.settings import Settings

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    from pymongo.database import Database

log = logging.getLogger("aurora.backends")

_index_lock = threading.Lock()
_indexed: set[tuple[str, str]] = set()
_mongo_clients: list = []  # what _mongo_client made, for close_database_clients()


# Cluster mode needs sharded pub/sub (SPUBLISH/SSUBSCRIBE), new in Redis 7.0.
MIN_CLUSTER_VERSION = (7, 0)

_modes: dict[str, RedisMode] = {}
_modes_lock = threading.Lock()


@dataclass(frozen=True)
class RedisMode:
    """What the Redis at a URL is, found once per process at start."""

    cluster: bool
    version: str

    @property
    def name(self) -> str:
        return "cluster" if self.cluster else "single"


def redis_seeds(url: str) -> list[str]:
    """One URL per seed node of `REDIS_URL`. The URL may name several nodes
    of one cluster, comma-separated, with one set of credentials and options:
    `rediss://user:pass@node-a:6379,node-b:6379,node-c:6379/0`. A process
    that starts while one of them is down still finds the cluster."""
    parts = urlsplit(url)
    auth, _, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return [url]
    prefix = auth + "@" if auth else ""
    return [
        urlunsplit(parts._replace(netloc=prefix + host.strip()))
        for host in hosts.split(",")
        if host.strip()
    ]


def redis_mode(url: str) -> RedisMode:
    """Cluster or single Redis, asked of the first seed that answers
    (`INFO`), once per process; logged. ConfigurationError for a cluster
    older than Redis 7; UnavailableError when no seed answers."""
    mode = _modes.get(url)
    if mode is not None:
        return mode
    import redis

    with _modes_lock:
        if url in _modes:
            return _modes[url]
        failure: Exception | None = None
        for seed in redis_seeds(url):
            probe = redis.Redis.from_url(seed, socket_connect_timeout=3, socket_timeout=3,
                                         decode_responses=True)  # fmt: skip
            try:
                info = probe.info("server") | probe.info("cluster")
                break
            except (redis.RedisError, OSError) as exc:
                failure = exc
            finally:
                probe.close()
        else:
            raise UnavailableError("No Redis node of REDIS_URL answers") from failure
        version = str(info.get("redis_version", "0"))
        mode = RedisMode(cluster=bool(int(info.get("cluster_enabled", 0))), version=version)
        if mode.cluster and _version(version) < MIN_CLUSTER_VERSION:
            raise ConfigurationError(
                f"REDIS_URL names a Redis Cluster running Redis {version}: cluster mode "
                "needs Redis 7.0 or later (sharded pub/sub). Upgrade the cluster, or use "
                "a single Redis (6.2 or later)."
            )
        log.info("redis mode", extra={"mode": mode.name, "redis_version": version})
        _modes[url] = mode
        return mode


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def layout(settings: Settings) -> Layout:
    """The deployment's key layout: the Redis mode and the partition count
    (`STREAM_PARTITIONS`; 0 chooses 1 on a single Redis, 12 on a cluster)."""
    cluster = redis_mode(settings.redis_url).cluster
    partitions = settings.stream_partitions or (CLUSTER_PARTITIONS if cluster else 1)
    return Layout(cluster=cluster, partitions=partitions)


def room_window_key(room: str) -> str:
    """The room's resume window in this process's layout (REST functions,
    which have no layout at hand: from `get_settings()`)."""
    from aurora.settings import get_settings

    return layout(get_settings()).window_key(room)


def is_cluster(client: object) -> bool:
    """Whether `client` (sync or asyncio) talks to a Redis Cluster."""
    redis = sys.modules.get("redis")
    return redis is not None and isinstance(
        client, (redis.RedisCluster, redis.asyncio.RedisCluster)
    )


def execute_then_publish(
    client: object, pipe: redis.client.Pipeline, channel: str, message: str
) -> None:
    """Execute `pipe`, then publish `message` on a global channel: inside its
    transaction on a single Redis, so the notice and the writes are one. On
    a cluster a pipeline cannot carry PUBLISH (redis-py refuses it: the
    message reaches every node wherever it is sent): it follows the writes,
    so a replica that re-checks on the notice finds them. Lost only if this
    process dies in between; the replicas' periodic re-check covers that."""
    if is_cluster(client):
        pipe.execute()
        client.publish(channel, message)
    else:
        pipe.publish(channel, message)
        pipe.execute()


async def run_script(client: redis.asyncio.Redis, script, keys: list[str], args: list) -> Any:
    """`script` (from `client.register_script`) over `keys`, which share one
    hash slot. On a cluster straight to the node owning that slot
    (`cluster_clients.AsyncRedisCluster.execute_in_slot`): the send path's
    scripts skip redis-py's routing of each command. A script the node does
    not have yet is loaded (on every master) by the usual call."""
    if not hasattr(client, "execute_in_slot"):
        return await script(keys=keys, args=args)
    from redis.crc import key_slot
    from redis.exceptions import NoScriptError

    try:
        return await client.execute_in_slot(
            key_slot(keys[0].encode()), "EVALSHA", script.sha, len(keys), *keys, *args
        )
    except NoScriptError:
        return await script(keys=keys, args=args)


# A script's reply that wrote, but not yet to the replicas REDIS_REPLICA_ACKS
# asks for: a failover now could lose it, so the caller keeps it and tries
# again (a message's client_id is answered once).
_NOT_REPLICATED = "Not yet safely stored; retry (a message with the same client_id)"


def _replicated(reply: Any, acks: int, settings: Settings, wrote: Container[int]) -> Any:
    if int(reply[0]) in wrote and acks < settings.redis_replica_acks:
        raise UnavailableError(_NOT_REPLICATED)
    return reply


async def run_script_replicated(
    client: redis.asyncio.Redis, script, keys: list[str], args: list, settings: Settings, *,
    wrote: Container[int],
) -> Any:  # fmt: skip
    """`run_script`, followed on the same connection by a WAIT for
    `REDIS_REPLICA_ACKS` replicas (WAIT counts what the connection it
    arrives on wrote, so the two travel in one pipeline on one connection).
    A reply whose kind (its first element) is in `wrote` raises
    UnavailableError unless that many replicas have its writes. With none
    asked for, `run_script` alone."""
    replicas = settings.redis_replica_acks
    if replicas <= 0:
        return await run_script(client, script, keys, args)
    wait = ("WAIT", replicas, settings.redis_replica_ack_timeout_ms)
    if hasattr(client, "execute_in_slot_pipeline"):
        evalsha = ("EVALSHA", script.sha, len(keys), *keys, *args)
        reply, acks = await client.execute_in_slot_pipeline(
            keys[0], [evalsha, wait], script=script.script
        )
    else:
        async with client.pipeline(transaction=False) as pipe:
            await script(keys=keys, args=args, client=pipe)  # loads it first if needed
            pipe.execute_command(*wait)
            reply, acks = await pipe.execute()
    return _replicated(reply, int(acks), settings, wrote)


def run_script_replicated_sync(
    client: redis.Redis, script, keys: list[str], args: list, settings: Settings, *,
    wrote: Container[int],
) -> Any:  # fmt: skip
    """`run_script_replicated` for a synchronous client (REST functions). On
    a cluster the pipeline goes to the master owning `keys`' slot; a slot map
    out of date answers MOVED, which raises (503: the caller retries, and
    redis-py's next routed command refreshes the map)."""
    replicas = settings.redis_replica_acks
    if replicas <= 0:
        return script(keys=keys, args=args)
    target = client
    if is_cluster(client):
        target = client.get_redis_connection(client.get_node_from_key(keys[0]))
    pipe = target.pipeline(transaction=False)
    script(keys=keys, args=args, client=pipe)
    pipe.execute_command("WAIT", replicas, settings.redis_replica_ack_timeout_ms)
    reply, acks = pipe.execute()
    return _replicated(reply, int(acks), settings, wrote)


def pipelined_script(
    client: redis.Redis, script: str, calls: list[tuple[list[str], list[str]]]
) -> list:
    """`script` (its source) over many (keys, args), each set within one hash
    slot, in one pipelined round trip; the replies in order. A cluster
    pipeline cannot load a script first (a single Redis's does): on
    NOSCRIPT, load it on every primary and go again."""
    from redis.exceptions import NoScriptError

    registered = client.register_script(script)

    def run() -> list:
        pipe = client.pipeline(transaction=False)
        for keys, args in calls:
            registered(keys=keys, args=args, client=pipe)
        return pipe.execute()

    try:
        return run()
    except NoScriptError:
        client.script_load(script)
        return run()


def slot_batches(client: object, keys: list[str], size: int) -> list[list[int]]:
    """Positions of `keys` in batches of at most `size` for a script or a
    transaction. On a cluster each batch also stays within one hash slot
    (Redis refuses a script that crosses slots); elsewhere, runs of `size`."""
    if not is_cluster(client):
        return [list(range(i, min(i + size, len(keys)))) for i in range(0, len(keys), size)]
    from redis.crc import key_slot

    by_slot: dict[int, list[int]] = {}
    for position, key in enumerate(keys):
        by_slot.setdefault(key_slot(key.encode()), []).append(position)
    return [group[i : i + size] for group in by_slot.values() for i in range(0, len(group), size)]


# 12 partitions divide evenly over 1, 2, 3, 4, 6 or 12 masters.
CLUSTER_PARTITIONS = 12


def _cluster_kwargs(url: str) -> dict:
    """The seeds after the first, as startup nodes: `from_url` takes one."""
    nodes = []
    for seed in redis_seeds(url)[1:]:
        parts = urlsplit(seed)
        nodes.append((parts.hostname, parts.port or 6379))
    return {"startup_nodes": nodes} if nodes else {}


@lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    """A synchronous Redis client (connection pool) for Lambda handlers: a
    `RedisCluster` when the URL names a cluster, the same commands either way."""
    import redis

    options = dict(
        decode_responses=True,
        # Bytes that are not UTF-8 (written by something other than our send
        # script) must not make a whole reply unreadable: they decode to
        # lone surrogates, and the drain dead-letters that one entry.
        encoding_errors="surrogateescape",
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    if redis_mode(url).cluster:
        from redis.cluster import ClusterNode

        from aurora.cluster_clients import RedisCluster

        nodes = [ClusterNode(h, p) for h, p in _cluster_kwargs(url).get("startup_nodes", [])]
        return RedisCluster.from_url(redis_seeds(url)[0], startup_nodes=nodes or None, **options)
    return redis.Redis.from_url(url, **options)


def async_redis_client(url: str, *, max_connections: int = 64) -> redis.asyncio.Redis:
    """An asyncio Redis client for the fan-out container (one per event loop).

    Its pool is bounded and blocking: a burst of commands (thousands of clients
    connecting at once) waits for a free connection instead of failing. On a
    cluster, a `RedisCluster` with as many connections per node."""

    if not redis_mode(url).cluster:
        return async_redis_client_for_single(url, max_connections=max_connections)
    from redis.asyncio.cluster import ClusterNode

    from aurora.cluster_clients import AsyncRedisCluster

    nodes = [ClusterNode(h, p) for h, p in _cluster_kwargs(url).get("startup_nodes", [])]
    return AsyncRedisCluster.from_url(
        redis_seeds(url)[0],
        startup_nodes=nodes or None,
        max_connections=max_connections,
        decode_responses=True,
        socket_connect_timeout=5,
        health_check_interval=30,
    )


def async_redis_client_for_single(url: str, *, max_connections: int = 64) -> redis.asyncio.Redis:
    """The asyncio client of a single Redis, without asking its mode."""
    import redis.asyncio

    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        decode_responses=True,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    return redis.asyncio.Redis.from_pool(pool)


@lru_cache(maxsize=8)
def _mongo_client(url: str):  # -> pymongo.MongoClient
    from pymongo import MongoClient

    client = MongoClient(url, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000, tz_aware=True)
    atexit.register(client.close)  # end its server sessions cleanly when the process exits
    _mongo_clients.append(client)
    return client


def close_database_clients() -> None:
    """Close this process's MongoDB clients now, not at exit: a host that
    stops its own database server (the local stack) closes them first, else
    pymongo would wait for that server at exit to end its sessions."""
    while _mongo_clients:
        _mongo_clients.pop().close()
    _mongo_client.cache_clear()
    with _index_lock:
        _indexed.clear()


def database(settings: Settings) -> Database:
    """The AuroraChat database, with its indexes ensured once per process."""
    db = _mongo_client(settings.mongo_url)[settings.mongo_db]
    key = (settings.mongo_url, settings.mongo_db)
    if key not in _indexed:
        with _index_lock:
            if key not in _indexed:
                from aurora import message_state, messages, rooms, users

                users.ensure_indexes(db)
                messages.ensure_indexes(db)
                message_state.ensure_indexes(db)
                rooms.ensure_indexes(db)
                _indexed.add(key)
    return db


class redis_unavailable:
    """`with redis_unavailable("Cannot check the token now, retry"):` turns
    what redis-py raises (Redis unreachable, a timeout, a refused command) and
    an OSError on the way (e.g. the TimeoutError of a wait for a connection)
    into UnavailableError: 503 over HTTP, 1011 or an `unavailable` error
    frame over a WebSocket. For sync and async code alike; the cause stays
    attached for the logs. Costs nothing until something is raised."""

    __slots__ = ("_message",)

    def __init__(self, message: str | None = None) -> None:
        self._message = message

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb) -> bool:
        if exc is None or isinstance(exc, UnavailableError):
            return False
        # A redis-py error means redis-py is imported: no import here.
        redis = sys.modules.get("redis")
        if isinstance(exc, OSError) or (redis is not None and isinstance(exc, redis.RedisError)):
            raise UnavailableError(self._message) from exc
        return False
