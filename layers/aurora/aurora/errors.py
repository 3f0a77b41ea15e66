"""One error family. Each error has a stable `code`; the HTTP status and the
WebSocket close code are mapped here, once."""

from __future__ import annotations


class AuroraError(Exception):
    code = "internal_error"
    status = 500
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
    message = "Invalid request"


class AuthenticationError(AuroraError):
    code = "unauthorized"
    status = 401
    message = "Unauthorized"


class ForbiddenError(AuroraError):
    code = "forbidden"
    status = 403
    message = "Forbidden"


class ConflictError(AuroraError):
    code = "conflict"
    status = 409
    message = "Conflict"


class RateLimitedError(AuroraError):
    code = "rate_limited"
    status = 429
    message = "Too many requests"

    def __init__(self, retry_after_ms: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class UnavailableError(AuroraError):
    code = "unavailable"
    status = 503
    message = "Service temporarily unavailable"
