"""The MongoDB URI and the Redis URL come from Secrets Manager (moto's
implementation, dummy keys) when the template passes a secret id instead of
the value."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from aurora.errors import ConfigurationError
from aurora.secrets import resolve_stored_urls


@pytest.fixture
def secretsmanager(dummy_aws):
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def test_the_secret_id_is_replaced_by_the_uri_it_names(secretsmanager):
    arn = secretsmanager.create_secret(Name="mongo", SecretString="mongodb://db:27017/\n")["ARN"]
    resolved = resolve_stored_urls({"MONGO_URL_SECRET_ID": arn, "AURORA_ENV": "dev"})
    assert resolved["MONGO_URL"] == "mongodb://db:27017/"
    assert resolved["AURORA_ENV"] == "dev"


def test_a_uri_set_directly_wins_and_nothing_is_fetched():
    env = {"MONGO_URL": "mongodb://here/", "MONGO_URL_SECRET_ID": "arn:aws:secretsmanager:x"}
    # No AWS at all here: a fetch would fail.
    assert resolve_stored_urls(env)["MONGO_URL"] == "mongodb://here/"


def test_a_missing_or_empty_secret_is_a_configuration_error(secretsmanager):
    with pytest.raises(ConfigurationError, match="MONGO_URL"):
        resolve_stored_urls({"MONGO_URL_SECRET_ID": "no-such-secret"})
    secretsmanager.create_secret(Name="blank", SecretString=" ")
    with pytest.raises(ConfigurationError, match="empty"):
        resolve_stored_urls({"MONGO_URL_SECRET_ID": "blank"})


def test_the_redis_url_comes_from_its_secret_like_the_mongodb_uri(secretsmanager):
    arn = secretsmanager.create_secret(Name="redis", SecretString="rediss://:t@cache:6379/0\n")
    resolved = resolve_stored_urls({"REDIS_URL_SECRET_ID": arn["ARN"]})
    assert resolved["REDIS_URL"] == "rediss://:t@cache:6379/0"
    direct = {"REDIS_URL": "redis://127.0.0.1/0", "REDIS_URL_SECRET_ID": "arn:aws:x"}
    assert resolve_stored_urls(direct)["REDIS_URL"] == "redis://127.0.0.1/0"
    with pytest.raises(ConfigurationError, match="REDIS_URL"):
        resolve_stored_urls({"REDIS_URL_SECRET_ID": "no-such-secret"})
