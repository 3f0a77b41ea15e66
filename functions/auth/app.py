"""Auth function: register, login, refresh, logout, password change, me,
health. Wiring only; the rules live in `aurora.accounts`.

No Powertools Tracer here: it would add ~300 ms to every cold start (X-Ray
SDK and botocore) to trace a function whose time is one bcrypt call.
"""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from fastapi import Request

from aurora import accounts
from aurora.backends import database, redis_client
from aurora.errors import AuroraError
from aurora.http import User, client_ip, create_api, error_responses, lambda_handler
from aurora.settings import get_settings

logger = Logger(service="auth")
metrics = Metrics(namespace="AuroraChat", service="auth")
app = create_api("AuroraChat auth")


@app.post("/api/auth/register", responses=error_responses(400, 409, 429, 503))
def register(credentials: accounts.Registration, request: Request) -> dict:
    settings = get_settings()
    cache, db = redis_client(settings.redis_url), database(settings)
    user_id = accounts.register(cache, db, credentials, settings, client_ip(request))
    logger.info("user registered", extra={"user_id": user_id})
    metrics.add_metric(name="UserRegistered", unit=MetricUnit.Count, value=1)
    return {"ok": True}


@app.post("/api/auth/login", responses=error_responses(400, 401, 429, 503))
def login(credentials: accounts.Credentials, request: Request) -> accounts.SessionBody:
    settings = get_settings()
    cache, db = redis_client(settings.redis_url), database(settings)
    try:
        return accounts.login(cache, db, credentials, settings, client_ip(request))
    except AuroraError as refused:
        logger.info("login refused", extra={"code": refused.code})
        metrics.add_metric(name="LoginRefused", unit=MetricUnit.Count, value=1)
        raise


@app.post("/api/auth/refresh", responses=error_responses(400, 401, 503))
def refresh(body: accounts.RefreshRequest) -> accounts.SessionBody:
    settings = get_settings()
    return accounts.refresh(redis_client(settings.redis_url), body, settings)


@app.post("/api/auth/logout", responses=error_responses(400, 401, 503))
def logout(user: User, body: accounts.LogoutRequest | None = None) -> dict:
    settings = get_settings()
    everywhere = body is not None and body.everywhere
    accounts.logout(redis_client(settings.redis_url), user, settings, everywhere=everywhere)
    return {"ok": True}


@app.post("/api/auth/password", responses=error_responses(400, 401, 429, 503))
def change_password(
    change: accounts.PasswordChange, request: Request, user: User
) -> accounts.SessionBody:
    settings = get_settings()
    cache, db = redis_client(settings.redis_url), database(settings)
    session = accounts.change_password(cache, db, user, change, settings, client_ip(request))
    logger.info("password changed", extra={"user_id": user.user_id})
    return session


@app.get("/api/auth/me", responses=error_responses(401, 503))
def me(user: User) -> dict:
    return {"userId": user.user_id, "username": user.username, "exp": user.expires_at}


@app.get("/api/health")
def health() -> dict:
    return {"ok": True, "service": "auth"}


handler = lambda_handler(app, logger, metrics)
