"""Secrets come from Secrets Manager (moto's implementation, dummy keys) once
per process when the template passes ARNs instead of values."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from aurora.errors import ConfigurationError
from aurora.secrets import resolve_secrets
from aurora.settings import Settings

JWT = "a-real-looking-signing-secret-of-more-than-32-bytes"


@pytest.fixture
def secretsmanager(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("secretsmanager")


def test_arns_are_replaced_by_the_secret_values(secretsmanager):
    mongo = secretsmanager.create_secret(Name="mongo", SecretString="mongodb://db:27017/\n")
    jwt = secretsmanager.create_secret(Name="jwt", SecretString=JWT)
    env = {"MONGO_URL_SECRET_ARN": mongo["ARN"], "JWT_SECRET_ARN": jwt["ARN"], "AURORA_ENV": "dev"}
    resolved = resolve_secrets(env)
    assert resolved["MONGO_URL"] == "mongodb://db:27017/"
    settings = Settings.from_env(resolved)
    assert settings.jwt_secret == JWT
    assert JWT not in repr(settings)


def test_a_value_set_directly_wins_and_nothing_is_fetched():
    class Unreachable:
        def get_secret_value(self, **_):
            raise AssertionError("fetched a secret that was set directly")

    env = {"JWT_SECRET": JWT, "JWT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:x"}
    assert resolve_secrets(env, client=Unreachable())["JWT_SECRET"] == JWT


def test_a_missing_secret_is_a_configuration_error_that_names_the_variable(secretsmanager):
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf"
    with pytest.raises(ConfigurationError, match="JWT_SECRET"):
        resolve_secrets({"JWT_SECRET_ARN": arn})
