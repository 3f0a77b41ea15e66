"""Secrets read from AWS Secrets Manager once per process (cold start).

In the cloud the template passes `MONGO_URL_SECRET_ARN` and `JWT_SECRET_ARN`
instead of the secrets themselves, so the MongoDB URI and the JWT secret never sit in a function's
plain environment. A value set directly (`MONGO_URL`, `JWT_SECRET`, as the
local stack and the tests do) wins and nothing is fetched.
"""

from __future__ import annotations

from collections.abc import Mapping

from aurora.errors import ConfigurationError

# Each variable that may come from Secrets Manager, and the one naming its secret.
SECRET_VARIABLES = {"MONGO_URL": "MONGO_URL_SECRET_ARN", "JWT_SECRET": "JWT_SECRET_ARN"}


def resolve_secrets(environ: Mapping[str, str], client: object | None = None) -> dict[str, str]:
    """`environ` plus each secret whose ARN it names (`JWT_SECRET` from `JWT_SECRET_ARN`...)."""
    resolved = dict(environ)
    wanted = {
        name: environ[arn_variable]
        for name, arn_variable in SECRET_VARIABLES.items()
        if environ.get(arn_variable) and not environ.get(name)
    }
    if not wanted:
        return resolved
    # Imported only where a secret is actually fetched: boto3 costs ~300 ms.
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = client or boto3.client("secretsmanager")
    for name, arn in wanted.items():
        try:
            value = client.get_secret_value(SecretId=arn).get("SecretString")
        except (BotoCoreError, ClientError) as exc:  # not found, denied, unreachable
            raise ConfigurationError(f"cannot read {name} from Secrets Manager: {exc}") from None
        if not value:
            raise ConfigurationError(f"the secret for {name} has no SecretString")
        resolved[name] = value.strip()
    return resolved
