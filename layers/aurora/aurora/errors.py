"""One error family. Each error has a stable `code`; its HTTP status and the
WebSocket close code of a connection it ends are stated here, once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class AuroraError(Exception):
    code = "internal_error"
    status = 500
    # Close codes: the HTTP status as 4xxx (401 -> 4001) for the client's own
    # errors (RFC 6455 leaves 4000-4999 to applications); 1011 for ours:
    # reconnect and retry.
    close_code = 1011
    message = "Internal error"

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        self.message = message or self.message
        if code:
            self.code = code
        super().__init__(self.message)

    def body(self) -> dict[str, str]:
        """The one REST error body: {"error": message, "code": stable_code}."""
        return {"error": self.message, "code": self.code}


class ConfigurationError(AuroraError):
    code = "configuration_error"
    message = "Invalid configuration"


class ValidationError(AuroraError):
    code = "invalid_request"
    status = 400
    close_code = 4000
    message = "Invalid request"


class AuthenticationError(AuroraError):
    code = "unauthorized"
    status = 401
    close_code = 4001
    message = "Unauthorized"


class ForbiddenError(AuroraError):
    code = "forbidden"
    status = 403
    close_code = 4003
    message = "Forbidden"


class NotFoundError(AuroraError):
    code = "not_found"
    status = 404
    close_code = 4004
    message = "Not found"


class ConflictError(AuroraError):
    code = "conflict"
    status = 409
    close_code = 4009
    message = "Conflict"


class RateLimitedError(AuroraError):
    code = "rate_limited"
    status = 429
    close_code = 4029
    message = "Too many requests"

    def __init__(self, retry_after_ms: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class UnavailableError(AuroraError):
    code = "unavailable"
    status = 503
    close_code = 1011
    message = "Service temporarily unavailable"


def invalid_input(
    errors: Sequence[Mapping[str, Any]],
    subject: str,
    *,
    code: str | None = None,
    skip: int = 0,
) -> ValidationError:
    """The ValidationError for the first of pydantic's complaints (`exc.errors()`):
    "<subject>: <field>: <what pydantic says>", the field's path without its
    first `skip` parts (e.g. FastAPI's "body"), or without a field when none
    is left."""
    first = errors[0]
    where = ".".join(str(part) for part in tuple(first.get("loc", ()))[skip:])
    what = first.get("msg", "invalid")
    return ValidationError(
        f"{subject}: {where}: {what}" if where else f"{subject}: {what}", code=code
    )
