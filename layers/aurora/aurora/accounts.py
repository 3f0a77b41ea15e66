"""Registering users and logging them in."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from aurora import passwords, tokens, users
from aurora.errors import AuthenticationError, ValidationError
from aurora.settings import Settings

if TYPE_CHECKING:
    from pymongo.database import Database

USERNAME_RULE = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
PASSWORD_MIN, PASSWORD_MAX = 8, 128

# Strict strings: `{"username": {"$ne": null}}` is a type error, never a query.
Field = Annotated[str, StringConstraints(strict=True, max_length=1024)]


class Credentials(BaseModel):
    model_config = ConfigDict(extra="ignore")
    username: Field
    password: Field


def _require(credentials: Credentials) -> None:
    # The original answers empty fields like absent ones.
    if not credentials.username or not credentials.password:
        raise ValidationError("Missing fields", code="missing_fields")


def register(db: Database, credentials: Credentials, settings: Settings) -> str:
    _require(credentials)
    if not USERNAME_RULE.match(credentials.username):
        raise ValidationError(
            "Username must be 3-32 characters: letters, digits, '_', '.', '-'",
            code="invalid_username",
        )
    if not PASSWORD_MIN <= len(credentials.password) <= PASSWORD_MAX:
        raise ValidationError(
            f"Password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters", code="invalid_password"
        )
    hashed = passwords.hash_password(credentials.password, settings.bcrypt_rounds)
    return users.create_user(db, credentials.username, hashed)


def login(db: Database, credentials: Credentials, settings: Settings) -> str:
    """A fresh access token; AuthenticationError for any wrong name or password,
    in the same time whether or not the user exists."""
    _require(credentials)
    user = users.find_user(db, credentials.username)
    if user is None:
        passwords.burn_verify(credentials.password, settings.bcrypt_rounds)
    elif passwords.verify_password(credentials.password, user["password_hash"]):
        return tokens.issue_token(str(user["_id"]), user["username"], settings)
    raise AuthenticationError("Invalid credentials", code="invalid_credentials")
