"""The JWT signing secrets: from the environment, or in the cloud from SSM
Parameter Store or Secrets Manager through Powertools' parameters utility.

A stored value holds one secret per line: the first signs new tokens, the
others still verify tokens signed before a rotation. Powertools caches the
value for `jwt_secret_max_age_seconds`, so a rotation reaches every warm
container within that time without a redeploy.
"""

from __future__ import annotations

from aurora.errors import ConfigurationError
from aurora.settings import Settings, check_secrets


def jwt_secrets(settings: Settings) -> tuple[str, ...]:
    """The signing secret first, then the ones that only verify."""
    if settings.jwt_secret_parameter or settings.jwt_secret_id:
        secrets = _fetch(settings)
        source = settings.jwt_secret_parameter or settings.jwt_secret_id
        if not secrets:
            raise ConfigurationError(f"the JWT secret stored in {source} is empty")
        if not settings.is_local:
            check_secrets(secrets, source)
        return secrets
    return (settings.jwt_secret, *settings.jwt_previous_secrets)


def _fetch(settings: Settings) -> tuple[str, ...]:
    # Imported only when configured: it pulls in boto3 (~280 ms of cold start).
    from aws_lambda_powertools.utilities import parameters

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
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return tuple(line.strip() for line in str(value).splitlines() if line.strip())
