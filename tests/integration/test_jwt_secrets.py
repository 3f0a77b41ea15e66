"""The JWT secret from SSM Parameter Store or Secrets Manager (moto), read by
aurora/secrets.py: rotation, caching, and refusal of weak secrets."""

from __future__ import annotations

import time
import uuid

import boto3
import pytest
from moto import mock_aws

from aurora import secrets, tokens
from aurora.errors import ConfigurationError
from aurora.settings import Settings, get_settings

OLD, NEW = "old-cloud-secret-" + "a" * 32, "new-cloud-secret-" + "b" * 32


@pytest.fixture
def aws(dummy_aws):
    with mock_aws():
        yield (
            boto3.client("ssm", region_name="us-east-1"),
            boto3.client("secretsmanager", region_name="us-east-1"),
        )


def unique(prefix: str) -> str:
    return f"/aurorachat/test/{prefix}-{uuid.uuid4().hex}"


def test_tokens_are_signed_with_the_first_secret_of_an_ssm_securestring(aws):
    ssm, _ = aws
    name = unique("jwt")
    ssm.put_parameter(Name=name, Value=f"{NEW}\n{OLD}\n", Type="SecureString")
    cloud = Settings(env="production", jwt_secret_parameter=name)
    token = tokens.issue_token("u1", "alice", cloud)
    assert (
        tokens.verify_token(token, Settings(env="production", jwt_secret=NEW)).username == "alice"
    )
    # A token signed with the previous secret still verifies: rotation logs nobody out.
    old_token = tokens.issue_token("u1", "alice", Settings(env="production", jwt_secret=OLD))
    assert tokens.verify_token(old_token, cloud).user_id == "u1"


def test_the_secret_can_live_in_secrets_manager(aws):
    _, sm = aws
    name = unique("jwt")
    sm.create_secret(Name=name, SecretString=NEW)
    cloud = Settings(env="production", jwt_secret_id=name)
    assert secrets.jwt_secrets(cloud) == (NEW,)
    assert tokens.verify_token(tokens.issue_token("u1", "bob", cloud), cloud).username == "bob"


def test_the_stored_secret_is_cached_for_its_max_age(aws):
    ssm, _ = aws
    name = unique("jwt")
    ssm.put_parameter(Name=name, Value=OLD, Type="SecureString")
    settings = Settings(env="production", jwt_secret_parameter=name, jwt_secret_max_age_seconds=1)
    assert secrets.jwt_secrets(settings) == (OLD,)
    ssm.put_parameter(Name=name, Value=NEW, Type="SecureString", Overwrite=True)
    assert secrets.jwt_secrets(settings) == (OLD,)  # no call to SSM per token
    time.sleep(1.1)
    assert secrets.jwt_secrets(settings) == (NEW,)  # a rotation arrives without a redeploy


@pytest.mark.parametrize("stored", ["too-short", "\n\n  \n"])
def test_a_weak_or_empty_stored_secret_is_refused_outside_local_mode(aws, stored):
    ssm, _ = aws
    name = unique("jwt")
    ssm.put_parameter(Name=name, Value=stored, Type="SecureString")
    with pytest.raises(ConfigurationError):
        tokens.issue_token("u1", "alice", Settings(env="production", jwt_secret_parameter=name))


def test_settings_with_a_secret_parameter_need_no_jwt_secret_in_the_environment():
    settings = Settings.from_env({"JWT_SECRET_PARAMETER": "/aurorachat/prod/jwt"})
    assert settings.jwt_secret_parameter == "/aurorachat/prod/jwt"
    with pytest.raises(ConfigurationError):
        Settings.from_env({})  # neither: the development secret is refused


async def test_the_fanout_check_verifies_with_a_stored_secret(aws, redis_url):
    """authenticate_async() reads the secret in a worker thread (a blocking AWS call)."""
    from aurora.backends import async_redis_client

    ssm, _ = aws
    name = unique("jwt")
    ssm.put_parameter(Name=name, Value=NEW, Type="SecureString")
    cloud = Settings(env="production", jwt_secret_parameter=name, redis_url=redis_url)
    client = async_redis_client(redis_url)
    try:
        claims = await tokens.authenticate_async(
            tokens.issue_token("u1", "eve", cloud), cloud, client
        )
    finally:
        await client.aclose()
    assert claims.username == "eve"


def test_a_weak_stored_secret_makes_login_fail_closed_without_naming_it(aws, app_env, monkeypatch):
    from local.runtime import LocalFunction
    from local.template import functions
    from tests.support import ROOT
    from tests.support.events import call, event

    ssm, _ = aws
    name = unique("jwt")
    ssm.put_parameter(Name=name, Value="too-short", Type="SecureString")
    monkeypatch.setenv("AURORA_ENV", "production")
    monkeypatch.setenv("BCRYPT_ROUNDS", "10")  # the least production mode accepts
    monkeypatch.setenv("JWT_SECRET_PARAMETER", name)
    monkeypatch.delenv("JWT_SECRET")
    get_settings.cache_clear()
    (spec,) = [f for f in functions(ROOT / "template.yaml") if f.name == "AuthFunction"]
    fn = LocalFunction(spec, concurrency=1)
    try:
        creds = {"username": "alice", "password": "securepass123"}
        assert call(fn, event("register", "http-v2", body=creds))[0] == 200
        status, body, _ = call(fn, event("login", "http-v2", body=creds))
    finally:
        fn.close()
    assert status == 500
    assert body == {"error": "Service misconfigured", "code": "configuration_error"}
