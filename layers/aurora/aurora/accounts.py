"""Accounts: registering, logging in, refreshing, logging out, changing a
password. The rules live here; the auth function only wires them to routes.
Each takes its clients (Redis as `cache`, MongoDB as `db`) first. Every input
is checked by its request model, so bad input is refused before either is touched."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)

from aurora import passwords, sessions, throttling, tokens, users
from aurora.errors import AuthenticationError, ValidationError
from aurora.settings import Settings

if TYPE_CHECKING:
    import redis
    from pymongo.database import Database

PASSWORD_MIN, PASSWORD_MAX = 8, 128

# Strict strings: `{"username": {"$ne": null}}` is a type error, never a query.
Text = Annotated[str, StringConstraints(strict=True, max_length=1024)]


# The request models raise our own ValidationError from their checks:
# pydantic lets it through, and the API answers it with its code.


class Credentials(BaseModel):
    """A login."""

    model_config = ConfigDict(extra="ignore")
    username: Text = Field(description=f"{users.USERNAME_RULE} (unique, any case)")
    password: Text = Field(
        description=f"{PASSWORD_MIN}-{PASSWORD_MAX} characters; bcrypt reads the first 72 bytes"
    )

    @model_validator(mode="after")
    def _check(self) -> Credentials:
        _require(self.username, self.password)
        return self


class Registration(Credentials):
    """A new account: the username and password rules apply."""

    @model_validator(mode="after")
    def _check(self) -> Registration:
        _require(self.username, self.password)
        users.check_username(self.username)
        _check_password(self.password)
        return self


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    refresh_token: Text

    @model_validator(mode="after")
    def _check(self) -> RefreshRequest:
        _require(self.refresh_token)
        return self


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="ignore")
    current_password: Text
    new_password: Text

    @model_validator(mode="after")
    def _check(self) -> PasswordChange:
        _require(self.current_password, self.new_password)
        _check_password(self.new_password)
        return self


class LogoutRequest(BaseModel):
    """A logout's optional body: `everywhere` ends every session of the user."""

    model_config = ConfigDict(extra="ignore")
    everywhere: StrictBool = Field(
        default=False, description="End every session of the user, not only this one"
    )


class SessionBody(BaseModel):
    """What login, refresh and a password change answer. `token` is the
    original's field: old clients read only it."""

    token: str
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int


def _session_body(session: sessions.SessionTokens, settings: Settings) -> SessionBody:
    return SessionBody(
        token=session.access_token,
        refresh_token=session.refresh_token,
        expires_in=settings.jwt_ttl_seconds,
    )


def _require(*values: str) -> None:
    # The original answers empty fields like absent ones.
    if not all(values):
        raise ValidationError("Missing fields", code="missing_fields")


def _check_password(password: str) -> None:
    # Characters, not bytes: a longer UTF-8 password is accepted, and bcrypt
    # reads only its first 72 bytes. Deliberate, see aurora.passwords.
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValidationError(
            f"Password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters", code="invalid_password"
        )


def _invalid_credentials() -> AuthenticationError:
    return AuthenticationError("Invalid credentials", code="invalid_credentials")


def register(
    cache: redis.Redis, db: Database, credentials: Registration, settings: Settings, ip: str
) -> str:
    """The new user's id; throttled per client IP."""
    throttling.take_registration(cache, settings, ip)
    hashed = passwords.hash_password(credentials.password, settings.bcrypt_rounds)
    return users.create_user(db, credentials.username, hashed)


def login(
    cache: redis.Redis, db: Database, credentials: Credentials, settings: Settings, ip: str
) -> SessionBody:
    """A new session; AuthenticationError for any wrong name or password, in the
    same time whether or not the user exists; RateLimitedError after too many."""
    throttling.check_login(cache, settings, credentials.username, ip)
    user = users.find_user(db, credentials.username)
    if user is None:
        passwords.burn_verify(credentials.password, settings.bcrypt_rounds)
    elif passwords.verify_password(credentials.password, user["password_hash"]):
        throttling.clear_login_failures(cache, credentials.username, ip)
        session = sessions.open_session(cache, settings, str(user["_id"]), user["username"])
        return _session_body(session, settings)
    throttling.record_login_failure(cache, settings, credentials.username, ip)
    raise _invalid_credentials()


def refresh(cache: redis.Redis, request: RefreshRequest, settings: Settings) -> SessionBody:
    """A new access token and refresh token for a valid, unused refresh token."""
    session = sessions.refresh(cache, settings, request.refresh_token)
    return _session_body(session, settings)


def logout(
    cache: redis.Redis, claims: tokens.Claims, settings: Settings, *, everywhere: bool = False
) -> None:
    """Revoke this access token until it expires, and end its session, or
    (`everywhere`) every session of the user, as a password change does."""
    if everywhere:
        sessions.end_all_sessions(cache, settings, claims, reason="logout_everywhere")
    else:
        sessions.end_session(cache, settings, claims)


def change_password(
    cache: redis.Redis,
    db: Database,
    claims: tokens.Claims,
    change: PasswordChange,
    settings: Settings,
    ip: str,
) -> SessionBody:
    """Set a new password, end every session of the user, and open a new one
    for the caller. Wrong current passwords count as failed logins."""
    throttling.check_login(cache, settings, claims.username, ip)
    user = users.find_user_by_id(db, claims.user_id)
    if user is None or not passwords.verify_password(
        change.current_password, user["password_hash"]
    ):
        throttling.record_login_failure(cache, settings, claims.username, ip)
        raise _invalid_credentials()
    users.set_password_hash(
        db, user["_id"], passwords.hash_password(change.new_password, settings.bcrypt_rounds)
    )
    sessions.end_all_sessions(cache, settings, claims)
    session = sessions.open_session(cache, settings, claims.user_id, user["username"])
    return _session_body(session, settings)
