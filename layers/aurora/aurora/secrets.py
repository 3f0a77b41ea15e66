"""Secrets: the rules a signing secret must meet, and the cloud's secrets
(the JWT signing secrets, the MongoDB and Redis URLs) read from SSM Parameter
Store or Secrets Manager with boto3 alone, so the functions and the fan-out
image read them with this one module.

A stored JWT value holds one secret per line: the first signs new tokens, the
others still verify tokens signed before a rotation. It is cached for
`jwt_secret_max_age_seconds`, so a rotation reaches every warm function and
every running fan-out replica within that time without a redeploy. The
MongoDB and Redis URLs are read once per process (`MONGO_URL_SECRET_ID`,
`REDIS_URL_SECRET_ID`), so they never sit in a plain environment.
"""

from __future__ import annotations

import os
import threading
import time
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


# The URLs that may come from Secrets Manager: the variable a secret id names it in.
STORED_URLS = {"MONGO_URL": "MONGO_URL_SECRET_ID", "REDIS_URL": "REDIS_URL_SECRET_ID"}


def resolve_stored_urls(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ`, with `MONGO_URL` and `REDIS_URL` read from the secrets
    `MONGO_URL_SECRET_ID` and `REDIS_URL_SECRET_ID` name. A URL set directly
    wins and nothing is fetched (the local stack, the tests)."""
    resolved = dict(environ)
    for variable, id_variable in STORED_URLS.items():
        secret_id = environ.get(id_variable, "")
        if not secret_id or environ.get(variable):
            continue
        try:
            with _lock:
                value = _fetch("secretsmanager", secret_id)
        except _aws_errors() as exc:
            raise ConfigurationError(
                f"cannot read {variable} from Secrets Manager: {exc}"
            ) from None
        if not value.strip():
            raise ConfigurationError(f"the {variable} secret is empty")
        resolved[variable] = value.strip()
    return resolved


def clear_cache() -> None:
    """Forget every fetched JWT secret, and the AWS session (tests)."""
    global _session
    with _lock:
        _cache.clear()
        _session = None


# (service, name) -> (monotonic time fetched, value). One lock for the cache
# and the boto3 session (not safe to share between threads otherwise): when
# the value expires, one thread fetches and the others wait for it.
_cache: dict[tuple[str, str], tuple[float, str]] = {}
_session: Any = None
_lock = threading.Lock()


def _fetch_jwt_secrets(settings: JwtSecretSettings) -> tuple[str, ...]:
    if settings.jwt_secret_parameter:
        key = ("ssm", settings.jwt_secret_parameter)
    else:
        key = ("secretsmanager", settings.jwt_secret_id)
    with _lock:
        fetched_at, value = _cache.get(key, (None, ""))
        if fetched_at is None or time.monotonic() - fetched_at >= (
            settings.jwt_secret_max_age_seconds
        ):
            value = _fetch(*key)
            _cache[key] = (time.monotonic(), value)
    return tuple(line.strip() for line in value.splitlines() if line.strip())


def _fetch(service: str, name: str) -> str:
    """A SecureString (decrypted) or a secret's current value, as text. Hold `_lock`."""
    global _session
    if _session is None:
        # Imported only when configured: boto3 costs ~280 ms of cold start.
        import boto3

        _session = boto3.session.Session()
    # A client from a warm session costs ~7 ms, a new session ~90 ms.
    client = _session.client(service)
    if service == "ssm":
        return str(client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])
    answer = client.get_secret_value(SecretId=name)
    if "SecretString" in answer:
        return str(answer["SecretString"])
    return bytes(answer["SecretBinary"]).decode("utf-8")


def _aws_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)
