"""Access tokens: issued by the auth function, verified by every REST function
and by the fan-out container with this one module."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from aurora.errors import AuthenticationError
from aurora.settings import Settings

ALGORITHM = "HS256"  # pinned: tokens with any other "alg" are refused


@dataclass(frozen=True)
class Claims:
    user_id: str
    username: str
    issued_at: int
    expires_at: int
    token_id: str


def issue_token(user_id: str, username: str, settings: Settings, *, now: int | None = None) -> str:
    """A signed HS256 JWT carrying the original's claims (userId, username, iat, exp)."""
    iat = int(time.time()) if now is None else now
    payload = {
        "userId": user_id,
        "username": username,
        "iat": iat,
        "exp": iat + settings.jwt_ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(payload, settings.jwt_secret, algorithm=ALGORITHM)


def verify_token(token: object, settings: Settings) -> Claims:
    """Claims of a valid token; AuthenticationError for anything else."""
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise AuthenticationError("Missing or malformed token", code="invalid_token")
    try:
        payload = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            leeway=settings.jwt_leeway_seconds,
            options={"require": ["exp", "iat", "userId", "username"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthenticationError("Token expired", code="token_expired") from None
    except jwt.PyJWTError:
        raise AuthenticationError("Invalid token", code="invalid_token") from None
    user_id, username = payload["userId"], payload["username"]
    if not isinstance(user_id, str) or not isinstance(username, str):
        raise AuthenticationError("Invalid token", code="invalid_token")
    return Claims(
        user_id=user_id,
        username=username,
        issued_at=int(payload["iat"]),
        expires_at=int(payload["exp"]),
        token_id=str(payload.get("jti", "")),
    )
