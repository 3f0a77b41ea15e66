"""Secrets: the rules a signing secret must meet, and the cloud's secrets
(the JWT signing secrets, the MongoDB URI) read through Powertools'
parameters utility from SSM Parameter Store or Secrets Manager.

A stored JWT value holds one secret per line: the first signs new tokens, the
others still verify tokens signed before a rotation. Powertools caches it for
`jwt_secret_max_age_seconds`, so a rotation reaches every warm container
within that time without a redeploy. The MongoDB URI is read once per process
(`MONGO_URL_SECRET_ID`), so it never sits in a function's plain environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol

from aurora.errors import ConfigurationError

# The placeholder secret the local stack uses; refused outside local mode.
LOCAL_DEV_SECRET = "aurora-local-development-secret-not-for-production"  # noqa: S105
MIN_SECRET_BYTES = 32

# Set by the Lambda and ECS runtimes, never by the local stack or the tests.
_CLOUD_RUNTIME_VARIABLES = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "ECS_CONTAINER_METADATA_URI",
    "ECS_CONTAINER_METADATA_URI_V4",
)
_CLOUD_EXECUTION_ENVS = ("AWS_Lambda_", "AWS_ECS_")  # AWS_EXECUTION_ENV prefixes


class JwtSecretSettings(Protocol):
    """What `jwt_secrets` reads: `aurora.settings.Settings` (which imports this module)."""

    jwt_secret: str
    jwt_previous_secrets: tuple[str, ...]
    jwt_secret_parameter: str
    jwt_secret_id: str
    jwt_secret_max_age_seconds: int

    @property
    def is_local(self) -> bool: ...


def in_cloud_runtime(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs on Lambda or ECS (`environ`, default: the
    process environment): there the secrets are checked even in local mode."""
    env = os.environ if environ is None else environ
    return any(env.get(name) for name in _CLOUD_RUNTIME_VARIABLES) or env.get(
        "AWS_EXECUTION_ENV", ""
    ).startswith(_CLOUD_EXECUTION_ENVS)


def check_secrets(secrets: tuple[str, ...], source: str) -> None:
    """Refuse the development secret or one too short to resist guessing (HS256)."""
    for secret in secrets:
        if secret == LOCAL_DEV_SECRET:
            raise ConfigurationError(f"{source} is the local development secret; set a real one")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigurationError(f"{source} must be at least {MIN_SECRET_BYTES} bytes")


def jwt_secrets(settings: JwtSecretSettings) -> tuple[str, ...]:
    """The signing secret first, then the ones that only verify."""
    if settings.jwt_secret_parameter or settings.jwt_secret_id:
        secrets = _fetch_jwt_secrets(settings)
        source = settings.jwt_secret_parameter or settings.jwt_secret_id
        if not secrets:
            raise ConfigurationError(f"the JWT secret stored in {source} is empty")
        if not settings.is_local or in_cloud_runtime():
            check_secrets(secrets, source)
        return secrets
    return (settings.jwt_secret, *settings.jwt_previous_secrets)


def resolve_mongo_url(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ`, with `MONGO_URL` read from the secret `MONGO_URL_SECRET_ID` names.
    A `MONGO_URL` set directly wins and nothing is fetched (the local stack, the tests)."""
    resolved = dict(environ)
    secret_id = environ.get("MONGO_URL_SECRET_ID", "")
    if not secret_id or environ.get("MONGO_URL"):
        return resolved
    parameters = _parameters()
    try:
        value = _text(parameters.get_secret(secret_id))
    except parameters.exceptions.GetParameterError as exc:
        raise ConfigurationError(f"cannot read MONGO_URL from Secrets Manager: {exc}") from None
    if not value.strip():
        raise ConfigurationError("the MongoDB URI secret is empty")
    resolved["MONGO_URL"] = value.strip()
    return resolved


def _fetch_jwt_secrets(settings: JwtSecretSettings) -> tuple[str, ...]:
    parameters = _parameters()
    if settings.jwt_secret_parameter:
        value = parameters.get_parameter(
            settings.jwt_secret_parameter,
            decrypt=True,
            max_age=settings.jwt_secret_max_age_seconds,
        )
    else:
        value = parameters.get_secret(
            settings.jwt_secret_id, max_age=settings.jwt_secret_max_age_seconds
        )
    return tuple(line.strip() for line in _text(value).splitlines() if line.strip())


def _parameters() -> Any:
    # Imported only when configured: it pulls in boto3 (~280 ms of cold start).
    from aws_lambda_powertools.utilities import parameters

    return parameters


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
