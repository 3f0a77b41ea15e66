"""The MongoDB URI comes from Secrets Manager (moto's implementation, dummy
keys) when the template passes a secret id instead of the value."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from aurora.errors import ConfigurationError
from aurora.secrets import resolve_mongo_url


@pytest.fixture
def secretsmanager(dummy_aws):
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def test_the_secret_id_is_replaced_by_the_uri_it_names(secretsmanager):
    arn = secretsmanager.create_secret(Name="mongo", SecretString="mongodb://db:27017/\n")["ARN"]
    resolved = resolve_mongo_url({"MONGO_URL_SECRET_ID": arn, "AURORA_ENV": "dev"})
    assert resolved["MONGO_URL"] == "mongodb://db:27017/"
    assert resolved["AURORA_ENV"] == "dev"


def test_a_uri_set_directly_wins_and_nothing_is_fetched():
    env = {"MONGO_URL": "mongodb://here/", "MONGO_URL_SECRET_ID": "arn:aws:secretsmanager:x"}
    # No AWS at all here: a fetch would fail.
    assert resolve_mongo_url(env)["MONGO_URL"] == "mongodb://here/"


def test_a_missing_or_empty_secret_is_a_configuration_error(secretsmanager):
    with pytest.raises(ConfigurationError, match="MONGO_URL"):
        resolve_mongo_url({"MONGO_URL_SECRET_ID": "no-such-secret"})
    secretsmanager.create_secret(Name="blank", SecretString=" ")
    with pytest.raises(ConfigurationError, match="empty"):
        resolve_mongo_url({"MONGO_URL_SECRET_ID": "blank"})
