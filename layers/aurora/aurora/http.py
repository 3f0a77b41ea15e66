"""What every REST function shares: the FastAPI app factory with the one
error body, and the Lambda entry point (Mangum + Powertools logging)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from aurora import tokens
from aurora.backends import redis_client
from aurora.errors import (
    AuroraError,
    AuthenticationError,
    ConfigurationError,
    UnavailableError,
    ValidationError,
    invalid_input,
)
from aurora.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}


class ErrorBody(BaseModel):
    """The one REST error body."""

    error: str
    code: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route's error statuses (all with ErrorBody)."""
    return {status: {"model": ErrorBody} for status in statuses}


# Bearer token failures answer with the RFC 6750 challenge.
_BEARER_ERRORS = {"invalid_token", "token_expired", "token_revoked"}

_HTTP_ERRORS = {
    400: ("malformed_json", "Malformed JSON body"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
}


def _validation_error(exc: RequestValidationError) -> ValidationError:
    """Map pydantic's report to our error family (400, like the original)."""
    errors = exc.errors()
    kinds = {e.get("type") for e in errors}
    if "json_invalid" in kinds:
        return ValidationError("Malformed JSON body", code="malformed_json")
    if kinds == {"missing"}:
        return ValidationError("Missing fields", code="missing_fields")
    if tuple(errors[0].get("loc", ())) == ("body",):
        return ValidationError(
            "Request body must be a JSON object (Content-Type: application/json)"
        )
    # The field's path without its source ("body", "query"...).
    return invalid_input(errors, "Invalid request", skip=1)


def create_api(title: str) -> FastAPI:
    import redis as redis_lib

    # No docs pages per function: the docs function serves one merged document.
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(AuroraError)
    async def aurora_error(_: Request, exc: AuroraError) -> JSONResponse:
        headers = {}
        retry_after = getattr(exc, "retry_after_ms", None)
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, -(-retry_after // 1000)))
        if exc.code in _BEARER_ERRORS:
            headers["WWW-Authenticate"] = (
                f'Bearer error="invalid_token", error_description="{exc.code}"'
            )
        body = exc.body()
        if isinstance(exc, ConfigurationError):
            # For the operator's logs, not for the client: it may name where secrets live.
            body["error"] = "Service misconfigured"
        return JSONResponse(body, status_code=exc.status, headers=headers)

    @app.exception_handler(redis_lib.RedisError)
    async def redis_down(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(UnavailableError().body(), status_code=UnavailableError.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        error = _validation_error(exc)
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        # FastAPI's own 4xx: unknown route, wrong method, an undecodable body.
        code, message = _HTTP_ERRORS.get(exc.status_code, ("http_error", str(exc.detail)))
        return JSONResponse(
            {"error": message, "code": code}, status_code=exc.status_code, headers=exc.headers
        )

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return app


def client_ip(request: Request) -> str:
    """The caller's address as API Gateway saw it (Mangum takes it from the
    event's requestContext, never from a spoofable X-Forwarded-For)."""
    return request.client.host if request.client and request.client.host else "unknown"


_bearer = HTTPBearer(auto_error=False, description="An access token from login or refresh")


def authenticated(
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> tokens.Claims:
    """FastAPI dependency: the claims of the request's valid, unrevoked bearer token."""
    if credentials is None:
        raise AuthenticationError("Missing bearer token", code="invalid_token")
    settings = get_settings()
    return tokens.authenticate(credentials.credentials, settings, redis_client(settings.redis_url))


# A route's caller: `user: User` in its parameters (401 without a valid token).
User = Annotated[tokens.Claims, Depends(authenticated)]


def read_budgeted(user: User) -> tokens.Claims:
    """FastAPI dependency: `User`, and one request taken from the caller's read
    budget (429 `rate_limited` with Retry-After past it)."""
    from aurora.budget import take_read

    settings = get_settings()
    take_read(redis_client(settings.redis_url), settings, user.user_id)
    return user


# The caller of a route that reads MongoDB at length (history, search, listing).
Reader = Annotated[tokens.Claims, Depends(read_budgeted)]


def without_stage(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the routes expect it. An HTTP API (2.0) stage other than
    `$default` prefixes every path it sends with its name (`/dev/api/...`)
    while the routes are declared without it (`/api/...`): strip it, so the
    stack works under any stage name. REST API (1.0) paths carry no stage."""
    context = event.get("requestContext") or {}
    stage, http = context.get("stage"), context.get("http")
    if event.get("version") != "2.0" or not stage or stage == "$default" or not http:
        return event
    prefix = f"/{stage}/"
    if not http.get("path", "").startswith(prefix):
        return event
    path = http["path"][len(prefix) - 1 :]
    raw = event.get("rawPath", "")
    return {
        **event,
        "rawPath": raw[len(prefix) - 1 :] if raw.startswith(prefix) else raw,
        "requestContext": {**context, "http": {**http, "path": path}},
    }


def lambda_handler(app: FastAPI, logger: Logger, metrics: Metrics | None = None):
    """The Lambda entry point for an API function: API Gateway HTTP API (2.0)
    and REST API (1.0) events in, proxy responses out. The correlation id is
    the API Gateway request id (the same path in both payload formats)."""
    from aws_lambda_powertools.logging import correlation_paths
    from mangum import Mangum

    asgi = Mangum(app, lifespan="off")

    @logger.inject_lambda_context(
        correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
    )
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            return asgi(without_stage(event), context)
        finally:
            # EMF lines only when a route recorded something (no empty-set warning).
            if metrics is not None and metrics.metric_set:
                metrics.flush_metrics()
                metrics.clear_metrics()  # flush does not when metrics are disabled

    return handler
