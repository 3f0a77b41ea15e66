"""Fixtures that start real servers: redis-server and SecantusDB (MongoDB wire
protocol), each on an ephemeral port in a temporary folder, stopped by pid."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from aurora.settings import Settings
from local.servers import (
    ManagedProcess,
    RedisClusterNodes,
    start_mongo,
    start_redis,
    start_redis_cluster,
)
from tests.support.servers import redis_binaries
from tests.support.settings import DUMMY_AWS_SESSION, TEST_SECRET


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[ManagedProcess]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory) -> Iterator[RedisClusterNodes]:
    """3 masters and 3 replicas on loopback (a few seconds, once per run)."""
    cluster = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory) -> Iterator[ManagedProcess]:
    server = start_mongo(tmp_path_factory.mktemp("mongo"))
    yield server
    server.stop()


# Tests that must hold on both kinds of Redis take this mark: they run once
# on a single Redis and once on the cluster, through the same fixtures.
on_single_and_cluster = pytest.mark.parametrize("redis_url", ["single", "cluster"], indirect=True)

# Tests that need one Redis server by nature take this mark instead, and say
# why: they kill or restart it, or need one transaction over what a cluster
# spreads across nodes. They run on a single Redis under `--redis=cluster` too.
on_single_redis = pytest.mark.parametrize("redis_url", ["single"], indirect=True)


@pytest.fixture
def redis_url(request) -> Iterator[str]:
    """A clean Redis for each test: a single redis-server, or the cluster
    when the test is parametrized with "cluster" (`on_single_and_cluster`)."""
    import redis

    if getattr(request, "param", request.config.getoption("--redis")) == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        client = redis.RedisCluster.from_url(cluster.url.replace(",", "/0,", 1).split(",")[0])
        client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
        client.close()
        yield cluster.url
        return
    server = request.getfixturevalue("redis_server")
    client = redis.Redis.from_url(server.url)
    client.flushdb()
    client.close()
    yield server.url


@pytest.fixture
def redis_layout(settings: Settings):
    """Where this test's Redis keeps messages and room keys (single or cluster)."""
    from aurora.backends import layout

    return layout(settings)


def plain_client(url: str, *, decode: bool = True):
    """A client of the Redis at `url` (replies decoded unless `decode` is
    false), a RedisCluster for a cluster; the caller closes it."""
    import redis

    from aurora.backends import redis_mode, redis_seeds

    if redis_mode(url).cluster:
        return redis.RedisCluster.from_url(redis_seeds(url)[0], decode_responses=decode)
    return redis.Redis.from_url(url, decode_responses=decode)


@pytest.fixture
def mongo_db_name(mongo_server: ManagedProcess, request) -> str:
    """A database of its own for each test."""
    return "t_" + str(abs(hash(request.node.nodeid)) % 10**10)


@pytest.fixture
def settings(redis_url: str, mongo_server: ManagedProcess, mongo_db_name: str) -> Settings:
    return Settings(
        env="local",
        redis_url=redis_url,
        mongo_url=mongo_server.url,
        mongo_db=mongo_db_name,
        jwt_secret=TEST_SECRET,
        bcrypt_rounds=4,
    )


@pytest.fixture
def app_env(settings: Settings, monkeypatch) -> Settings:
    """The environment a deployed function would see, for handler tests."""
    from aurora.settings import get_settings

    env = {
        "AURORA_ENV": settings.env,
        "REDIS_URL": settings.redis_url,
        "MONGO_URL": settings.mongo_url,
        "MONGO_DB": settings.mongo_db,
        "JWT_SECRET": settings.jwt_secret,
        "BCRYPT_ROUNDS": str(settings.bcrypt_rounds),
        "POWERTOOLS_METRICS_NAMESPACE": "AuroraChatTest",
        "POWERTOOLS_SERVICE_NAME": "aurorachat",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--redis",
        choices=("single", "cluster"),
        default="single",
        help="the Redis of tests not parametrized over both (default single): "
        "`--redis=cluster` runs the whole suite on the test cluster",
    )


def pytest_report_header(config) -> list[str]:
    return [
        f"redis: {config.getoption('--redis')} (both for tests marked on_single_and_cluster)",
        f"redis-server binaries: {', '.join(redis_binaries()) or 'none'}",
        f"chromium: {shutil.which('chromium') or 'not installed'}",
        f"CI: {os.environ.get('CI', 'no')}",
    ]


@pytest.fixture
def dummy_aws(monkeypatch) -> Iterator[None]:
    """Dummy AWS credentials (never real ones), no endpoint override, and
    the cache of fetched secrets empty before and after."""
    from aurora import secrets

    for name, value in DUMMY_AWS_SESSION.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    secrets.clear_cache()
    yield
    secrets.clear_cache()
