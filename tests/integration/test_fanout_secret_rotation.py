"""A JWT secret rotated in Secrets Manager (moto) reaches a running fan-out
replica, read as the fan-out image reads it: the task's environment names the
secret, aurora/secrets.py fetches it with boto3 alone (the image has no
Powertools) and refreshes it every JWT_SECRET_MAX_AGE_SECONDS."""

from __future__ import annotations

import asyncio
import sys
import uuid

import boto3
import pytest
from moto import mock_aws
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from aurora.secrets import resolve_stored_urls
from aurora.settings import Settings
from aurora.tokens import issue_token
from tests.support.fanout import replica

OLD, NEW = "old-fanout-secret-" + "a" * 32, "new-fanout-secret-" + "b" * 32


@pytest.fixture
def secretsmanager(dummy_aws, monkeypatch):
    # What fanout/requirements.txt installs: no aws_lambda_powertools.
    monkeypatch.setitem(sys.modules, "aws_lambda_powertools", None)
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


async def accepted(url: str, token: str) -> bool:
    try:
        async with connect(f"{url}/?token={token}"):
            return True
    except InvalidStatus as refused:
        assert refused.response.status_code == 401
        return False


def signed_with(secret: str, environment: Settings) -> str:
    """A token as a function holding `secret` signs it, for `environment`'s deployment."""
    signer = Settings(env="production", jwt_secret=secret, jwt_issuer=environment.jwt_issuer)
    return issue_token(f"id-{uuid.uuid4().hex[:8]}", "alice", signer)


async def test_a_rotated_secret_reaches_a_running_replica_and_the_previous_one_still_verifies(
    secretsmanager, redis_url
):
    jwt_arn = secretsmanager.create_secret(Name="jwt", SecretString=OLD)["ARN"]
    redis_arn = secretsmanager.create_secret(Name="redis", SecretString=redis_url)["ARN"]
    # deploy/fanout.yaml's task environment: secrets as ids, never as values.
    task_env = {
        "AURORA_ENV": "production",
        "JWT_ISSUER": "aurorachat/test/us-east-1/prod",
        "JWT_SECRET_ID": jwt_arn,
        "REDIS_URL_SECRET_ID": redis_arn,
        "JWT_SECRET_MAX_AGE_SECONDS": "1",
    }
    settings = Settings.from_env(resolve_stored_urls(task_env))
    assert settings.redis_url == redis_url
    async with replica(settings) as (url, _):
        assert await accepted(url, signed_with(OLD, settings))
        assert not await accepted(url, signed_with(NEW, settings))

        # The rotation: the new secret signs, the previous one still verifies.
        secretsmanager.put_secret_value(SecretId=jwt_arn, SecretString=f"{NEW}\n{OLD}\n")
        await asyncio.sleep(1.2)

        assert await accepted(url, signed_with(NEW, settings))
        assert await accepted(url, signed_with(OLD, settings))

        # The previous secret retired: its tokens stop working, without a restart.
        secretsmanager.put_secret_value(SecretId=jwt_arn, SecretString=NEW)
        await asyncio.sleep(1.2)
        assert not await accepted(url, signed_with(OLD, settings))
        assert await accepted(url, signed_with(NEW, settings))
