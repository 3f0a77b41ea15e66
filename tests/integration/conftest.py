"""Fixtures for integration tests that need S3: moto's server on loopback
(a real S3 API over HTTP, in memory), with the attachments bucket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from moto.server import ThreadedMotoServer

from aurora import attachments
from aurora.settings import Settings
from local.buckets import ensure_bucket
from local.runtime import LocalFunction
from local.servers import free_port
from tests.conftest import plain_client
from tests.support.events import template_function
from tests.support.settings import DUMMY_AWS


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch, settings: Settings):
    """A boto3 S3 client on the local S3, dummy credentials in the environment."""
    for name, value in DUMMY_AWS.items():
        monkeypatch.setenv(name, value)
    env = DUMMY_AWS | {
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "ATTACHMENTS_BUCKET": settings.attachments_bucket,
    }
    ensure_bucket(env)
    attachments.s3_client.cache_clear()
    yield attachments.s3_client(s3_endpoint, "us-east-1")
    attachments.s3_client.cache_clear()


@pytest.fixture
def auth(app_env: Settings) -> Iterator[LocalFunction]:
    """The auth function, loaded as the emulator loads it, with the test's settings."""
    fn = template_function("AuthFunction", concurrency=1)
    yield fn
    fn.close()


@pytest.fixture
def r(settings: Settings) -> Iterator[redis.Redis]:
    """A plain Redis client on the test's database (or cluster), replies decoded."""
    client = plain_client(settings.redis_url)
    yield client
    client.close()
