"""Auth function: register, login, health. Wiring only; logic in `aurora.accounts`."""

from aws_lambda_powertools import Logger

from aurora import accounts
from aurora.backends import database
from aurora.http import create_api, lambda_handler
from aurora.settings import get_settings

logger = Logger(service="auth")
app = create_api("AuroraChat auth")


@app.post("/api/auth/register")
def register(credentials: accounts.Credentials) -> dict:
    settings = get_settings()
    user_id = accounts.register(database(settings), credentials, settings)
    logger.info("user registered", extra={"user_id": user_id})
    return {"ok": True}


@app.post("/api/auth/login")
def login(credentials: accounts.Credentials) -> dict:
    settings = get_settings()
    return {"token": accounts.login(database(settings), credentials, settings)}


@app.get("/api/health")
def health() -> dict:
    return {"ok": True, "service": "auth"}


handler = lambda_handler(app, logger)
