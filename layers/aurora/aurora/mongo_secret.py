"""The MongoDB connection string in the cloud: read once per process from
Secrets Manager (`MONGO_URL_SECRET_ID`: a secret id or ARN) through
Powertools' parameters utility, so it never sits in a function's plain
environment. A `MONGO_URL` set directly wins and nothing is fetched (the
local stack, the tests, `sam local`)."""

from __future__ import annotations

from collections.abc import Mapping

from aurora.errors import ConfigurationError


def resolve_mongo_url(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ`, with `MONGO_URL` read from the secret `MONGO_URL_SECRET_ID` names."""
    resolved = dict(environ)
    secret_id = environ.get("MONGO_URL_SECRET_ID", "")
    if not secret_id or environ.get("MONGO_URL"):
        return resolved
    # Imported only when configured: it pulls in boto3 (~280 ms of cold start).
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(secret_id)
    except parameters.exceptions.GetParameterError as exc:
        raise ConfigurationError(f"cannot read MONGO_URL from Secrets Manager: {exc}") from None
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not str(value).strip():
        raise ConfigurationError("the MongoDB URI secret is empty")
    resolved["MONGO_URL"] = str(value).strip()
    return resolved
