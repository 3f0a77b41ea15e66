"""S3_PUBLIC_ENDPOINT_URL: presigned URLs name the address browsers reach S3 at
(docker compose: the host's port), while servers keep their own address and
the attachment URL every server checks stays on it. Signing is offline: no
network, dummy credentials."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from aurora import attachments
from aurora.errors import ConfigurationError
from aurora.settings import Settings

SERVERS = "http://s3:5000"  # how containers reach S3 (the compose service name)
BROWSERS = "http://localhost:9000"  # how the host's browser reaches the same S3
USER = "u" * 24


@pytest.fixture(autouse=True)
def clients(dummy_aws) -> Iterator[None]:
    attachments.s3_client.cache_clear()
    yield
    attachments.s3_client.cache_clear()


def grant(settings: Settings) -> dict:
    request = attachments.UploadRequest(filename="cat.png", content_type="image/png", size=10)
    client = attachments.s3_client(settings.s3_endpoint_url, "us-east-1")
    signer = attachments.presigning_client(settings, "us-east-1")
    return attachments.create_upload(request, USER, settings, client, signer)


def test_the_public_endpoint_is_read_from_the_environment_and_empty_by_default():
    assert Settings().s3_public_endpoint_url == ""
    env = {"AURORA_ENV": "local", "AWS_ENDPOINT_URL_S3": SERVERS}
    assert Settings.from_env(env).s3_presign_endpoint_url == SERVERS
    public = Settings.from_env(env | {"S3_PUBLIC_ENDPOINT_URL": BROWSERS})
    assert (public.s3_endpoint_url, public.s3_public_endpoint_url) == (SERVERS, BROWSERS)
    assert public.s3_presign_endpoint_url == BROWSERS


@pytest.mark.parametrize(
    "bad", ["localhost:9000", "ftp://localhost:9000", "http://", "http://x/?a=b"]
)
def test_a_public_endpoint_that_is_not_an_http_url_is_refused(bad):
    with pytest.raises(ConfigurationError, match="S3_PUBLIC_ENDPOINT_URL"):
        Settings.from_env({"AURORA_ENV": "local", "S3_PUBLIC_ENDPOINT_URL": bad})


def test_without_a_public_endpoint_the_servers_client_signs():
    settings = Settings(env="local", s3_endpoint_url=SERVERS)
    signer = attachments.presigning_client(settings, "us-east-1")
    assert signer is attachments.s3_client(SERVERS, "us-east-1")
    assert grant(settings)["upload"]["url"] == f"{SERVERS}/{settings.attachments_bucket}"


def test_an_upload_is_presigned_for_the_public_endpoint_and_checked_on_the_servers_one():
    settings = Settings(env="local", s3_endpoint_url=SERVERS, s3_public_endpoint_url=BROWSERS)
    granted = grant(settings)
    assert granted["upload"]["url"] == f"{BROWSERS}/{settings.attachments_bucket}"
    # The metadata names the object at the servers' address: a fan-out that
    # knows only that address (no public one) still recognises it as ours.
    url = granted["attachment"]["url"]
    assert url.startswith(f"{SERVERS}/{settings.attachments_bucket}/attachments/{USER}/")
    fanout = Settings(env="local", s3_endpoint_url=SERVERS)
    key = attachments.key_from_url(fanout, url, attachments.s3_client(SERVERS, "us-east-1"))
    assert key is not None and key.endswith("/cat.png")


def test_a_download_link_is_signed_for_the_public_host_not_rewritten_to_it():
    settings = Settings(env="local", s3_endpoint_url=SERVERS, s3_public_endpoint_url=BROWSERS)
    servers_only = Settings(env="local", s3_endpoint_url=SERVERS)
    url = grant(settings)["attachment"]["url"]
    for _ in range(3):  # both signed within one second, so only the host differs
        public = urlsplit(attachments.download_link(url, settings, *pair(settings))["url"])
        private = urlsplit(attachments.download_link(url, servers_only, *pair(servers_only))["url"])
        signed, other = parse_qs(public.query), parse_qs(private.query)
        if signed["X-Amz-Date"] == other["X-Amz-Date"]:
            break
    assert f"{public.scheme}://{public.netloc}" == BROWSERS and public.path == private.path
    assert signed["X-Amz-SignedHeaders"] == ["host"]
    # SigV4 covers the Host header: the servers' URL with its host swapped
    # would carry a signature S3 (or MinIO) refuses for localhost:9000.
    assert signed["X-Amz-Signature"] != other["X-Amz-Signature"]


def pair(settings: Settings) -> tuple[object, object]:
    """The servers' client and the signer, as the attachments function builds them."""
    client = attachments.s3_client(settings.s3_endpoint_url, "us-east-1")
    return client, attachments.presigning_client(settings, "us-east-1")
